// libFuzzer harness for the protobuf wire-format reader (tensor/io/protobuf.h) behind the ONNX
// importer: reads every field, descending into each length-delimited field that parses as a
// message, and every packed numeric run. Built and run by scripts/fuzz.sh; not part of the
// regular build.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tensor/error.h"
#include "tensor/io/protobuf.h"

namespace {

void walk(scalpel::ProtoReader r) {
  while (r.next()) {
    if (r.wire_type() != scalpel::WireType::Bytes) continue;
    try {
      std::vector<int64_t> ints;
      r.append_int64s(ints);
    } catch (const scalpel::Error&) {
    }
    try {
      std::vector<float> floats;
      r.append_floats(floats);
    } catch (const scalpel::Error&) {
    }
    try {
      walk(r.message());
    } catch (const scalpel::Error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    walk(scalpel::ProtoReader(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz"));
  } catch (const scalpel::Error&) {
  }
  return 0;
}
