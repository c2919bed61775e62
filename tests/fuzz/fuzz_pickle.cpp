// libFuzzer harness for the restricted unpickler (tensor/io/pickle.h). Built and run by
// scripts/fuzz.sh; not part of the regular build. Any input must parse or throw Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tensor/error.h"
#include "tensor/io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    // Several pickles in a row, as in a legacy torch.save file.
    scalpel::pickle::Unpickler unpickler(bytes, "fuzz");
    for (int i = 0; i < 8 && unpickler.position() < bytes.size(); ++i) unpickler.load();
  } catch (const scalpel::Error&) {
  }
  return 0;
}
