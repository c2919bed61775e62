#pragma once
// cuDNN is opened at run time (dlopen) rather than linked, so that a scalpel built with cuDNN
// still starts on a machine without it: everything but `--conv-engine cudnn` runs, and asking
// for cuDNN there says what is missing (cuda::cudnn::initialize). loader.cpp defines every
// cuDNN function scalpel calls as a forwarder to the library's symbol.
#include <string>

#include "cuda/dynamic_library.h"

namespace scalpel::cuda::cudnn {

using cuda::open_first;  // (cuda/dynamic_library.h)

// Why the cuDNN library did not load ("" when it did). Tries libcudnn.so.<major> on the
// loader's search path (LD_LIBRARY_PATH, ld.so.cache), then the file CMake found at build time.
const std::string& load_error();

// The library's symbol `name`, or nullptr when the library or the symbol is missing.
void* symbol(const char* name);

}  // namespace scalpel::cuda::cudnn
