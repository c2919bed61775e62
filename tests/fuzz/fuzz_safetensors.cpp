// libFuzzer harness for the safetensors reader (tensor/io/safetensors.h), JSON header included.
// Built and run by scripts/fuzz.sh; not part of the regular build.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tensor/error.h"
#include "tensor/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    scalpel::parse_safetensors(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const scalpel::Error&) {
  }
  return 0;
}
