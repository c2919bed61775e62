#pragma once
// A small reader of the protobuf wire format (https://protobuf.dev/programming-guides/encoding/),
// enough to read ONNX files without generated code or libprotobuf.
//
//   ProtoReader r(bytes, "model.onnx");
//   while (r.next()) {
//     switch (r.field()) {
//       case 1: ir_version = r.int64(); break;
//       case 7: read_graph(r.message()); break;   // a nested reader, one level deeper
//       default: break;                          // unread fields are skipped
//     }
//   }
//
// next() reads one field's key and its whole payload (varint, 64-bit, length-delimited or
// 32-bit), so unknown fields cost nothing; the accessors check the field's wire type. Repeated
// numeric fields are accepted packed or unpacked (append_*), as the encoding allows.
// Every read is bounds-checked: a truncated buffer, a varint longer than 10 bytes, a length
// beyond the buffer, a field number 0, a group (wire types 3 and 4), a wire-type mismatch or
// nesting deeper than kMaxDepth throws Error naming the source and the byte offset (from the
// start of the outermost buffer).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace scalpel {

enum class WireType : uint8_t { Varint = 0, Fixed64 = 1, Bytes = 2, Fixed32 = 5 };

class ProtoReader {
 public:
  // Messages nested deeper than this are refused (protobuf's own default recursion limit).
  static constexpr int kMaxDepth = 100;

  // `base` is the offset of `bytes` in the outermost buffer (for error messages).
  ProtoReader(std::string_view bytes, std::string_view source, size_t base = 0, int depth = 0);

  // Reads the next field; false at the end of the message.
  bool next();
  uint32_t field() const { return field_; }
  WireType wire_type() const { return wire_; }
  // Offset of the current field's key in the outermost buffer.
  size_t field_offset() const { return base_ + key_pos_; }
  const std::string& source() const { return source_; }

  // The current field's value; Error when its wire type does not fit.
  uint64_t varint() const;
  int64_t int64() const { return static_cast<int64_t>(varint()); }
  int32_t int32() const { return static_cast<int32_t>(varint()); }  // negative: 10-byte varint
  bool boolean() const { return varint() != 0; }
  uint32_t fixed32() const;
  uint64_t fixed64() const;
  float float32() const;
  double float64() const;
  std::string_view bytes() const;
  std::string string() const { return std::string(bytes()); }
  // A reader of the current length-delimited field as a nested message.
  ProtoReader message() const;

  // Appends the current field's value(s): one value (unpacked) or a packed run.
  void append_int64s(std::vector<int64_t>& out) const;     // int64 / int32 / enum (varint)
  void append_uint64s(std::vector<uint64_t>& out) const;   // uint64 (varint)
  void append_floats(std::vector<float>& out) const;       // float (32-bit)
  void append_doubles(std::vector<double>& out) const;     // double (64-bit)

  [[noreturn]] void fail_at(size_t offset, std::string_view what) const;

 private:
  uint64_t read_varint(size_t& pos, std::string_view what) const;
  void expect(WireType type, std::string_view what) const;

  std::string_view bytes_;
  std::string source_;
  size_t base_ = 0;
  int depth_ = 0;
  size_t pos_ = 0;
  // The current field.
  uint32_t field_ = 0;
  WireType wire_ = WireType::Varint;
  size_t key_pos_ = 0;
  size_t value_pos_ = 0;  // start of the payload (after the length prefix for Bytes)
  uint64_t value_ = 0;    // varint / fixed value
  std::string_view payload_;
};

}  // namespace scalpel
