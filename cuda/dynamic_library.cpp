// dlopen of vendor libraries (see dynamic_library.h).
#include "cuda/dynamic_library.h"

#include <dlfcn.h>

namespace scalpel::cuda {

void* open_first(const std::vector<std::string>& candidates, std::string& error) {
  error.clear();
  for (const std::string& file : candidates) {
    if (void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL)) return handle;
    const char* why = dlerror();
    error += (error.empty() ? "" : "; ") + std::string(why ? why : file + ": not loadable");
  }
  return nullptr;
}

}  // namespace scalpel::cuda
