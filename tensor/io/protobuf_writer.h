#pragma once
// ProtoWriter: protobuf's wire format written by hand (no libprotobuf, no generated code), for
// the few messages an exporter needs (models/export/onnx.cpp writes ONNX's ModelProto).
//
// A message is a sequence of fields, each a tag (field number << 3 | wire type) then its value:
//   wire type 0  varint     int32/int64/enum/bool (negative int64: 10 bytes, two's complement)
//   wire type 2  length-delimited: bytes, strings, nested messages (a varint length, then bytes)
//   wire type 5  32-bit     float (little-endian)
// A nested message is written into its own ProtoWriter and added with message(). Repeated
// scalars are written one field each (proto2's unpacked form, which every parser reads).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace scalpel {

class ProtoWriter {
 public:
  ProtoWriter& varint(int field, uint64_t value) {
    tag(field, 0);
    put_varint(value);
    return *this;
  }
  ProtoWriter& int64(int field, int64_t value) { return varint(field, static_cast<uint64_t>(value)); }
  ProtoWriter& float32(int field, float value) {
    tag(field, 5);
    char bytes[4];
    std::memcpy(bytes, &value, 4);  // x86 and ARM Linux are little-endian, as the format
    out_.append(bytes, 4);
    return *this;
  }
  ProtoWriter& bytes(int field, std::string_view value) {
    tag(field, 2);
    put_varint(value.size());
    out_.append(value);
    return *this;
  }
  ProtoWriter& message(int field, const ProtoWriter& nested) { return bytes(field, nested.out_); }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void tag(int field, int wire_type) { put_varint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type)); }
  void put_varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }
  std::string out_;
};

}  // namespace scalpel
