// libFuzzer harness for the zip reader (tensor/io/zip.h): parse, then read every entry.
// Built and run by scripts/fuzz.sh; not part of the regular build.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tensor/error.h"
#include "tensor/io/zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const scalpel::ZipReader zip(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const scalpel::ZipReader::Entry& entry : zip.entries()) {
      try {
        zip.read(entry);
      } catch (const scalpel::Error&) {
      }
    }
  } catch (const scalpel::Error&) {
  }
  return 0;
}
