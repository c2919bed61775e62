// libFuzzer harness for the TFLite importer (models/import/tflite.h) and the FlatBuffers reader
// under it (tensor/io/flatbuffer.h). Built and run by scripts/fuzz.sh; not part of the regular
// build. Any input must import or throw Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "models/import/tflite.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    scalpel::models::import_tflite(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const scalpel::Error&) {
  }
  return 0;
}
