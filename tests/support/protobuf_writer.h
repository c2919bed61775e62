#pragma once
// Writes protobuf wire format by hand, for tests of the reader (tensor/io/protobuf.h) and of the
// ONNX importer (small ModelProtos built field by field, bad ones included).
//
//   ProtoWriter w;
//   w.varint(1, 8).string(2, "name").message(7, ProtoWriter().varint(1, 5));
//   std::string bytes = w.bytes();
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace scalpel::test {

class ProtoWriter {
 public:
  static std::string encode_varint(uint64_t value) {
    std::string out;
    do {
      uint8_t byte = value & 0x7F;
      value >>= 7;
      if (value != 0) byte |= 0x80;
      out.push_back(static_cast<char>(byte));
    } while (value != 0);
    return out;
  }
  static std::string key(uint32_t field, uint32_t wire) { return encode_varint((uint64_t{field} << 3) | wire); }

  ProtoWriter& varint(uint32_t field, uint64_t value) {
    bytes_ += key(field, 0) + encode_varint(value);
    return *this;
  }
  ProtoWriter& fixed32(uint32_t field, uint32_t value) {
    bytes_ += key(field, 5);
    bytes_.append(reinterpret_cast<const char*>(&value), 4);
    return *this;
  }
  ProtoWriter& fixed64(uint32_t field, uint64_t value) {
    bytes_ += key(field, 1);
    bytes_.append(reinterpret_cast<const char*>(&value), 8);
    return *this;
  }
  ProtoWriter& float32(uint32_t field, float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    return fixed32(field, bits);
  }
  ProtoWriter& string(uint32_t field, std::string_view value) {
    bytes_ += key(field, 2) + encode_varint(value.size());
    bytes_ += value;
    return *this;
  }
  ProtoWriter& message(uint32_t field, const ProtoWriter& inner) { return string(field, inner.bytes()); }
  ProtoWriter& packed_varints(uint32_t field, const std::vector<int64_t>& values) {
    std::string run;
    for (const int64_t v : values) run += encode_varint(static_cast<uint64_t>(v));
    return string(field, run);
  }
  ProtoWriter& packed_floats(uint32_t field, const std::vector<float>& values) {
    return string(field, std::string_view(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  }
  ProtoWriter& raw(std::string_view bytes) {
    bytes_ += bytes;
    return *this;
  }

  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

}  // namespace scalpel::test
