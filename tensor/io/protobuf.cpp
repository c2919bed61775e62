#include "tensor/io/protobuf.h"

#include <cstring>

#include "tensor/error.h"

namespace scalpel {

namespace {

std::string_view wire_name(WireType type) {
  switch (type) {
    case WireType::Varint: return "varint";
    case WireType::Fixed64: return "64-bit";
    case WireType::Bytes: return "length-delimited";
    case WireType::Fixed32: return "32-bit";
  }
  return "?";
}

template <typename T>
T load_le(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));  // x86-64 and aarch64 Linux are little-endian
  return value;
}

}  // namespace

ProtoReader::ProtoReader(std::string_view bytes, std::string_view source, size_t base, int depth)
    : bytes_(bytes), source_(source), base_(base), depth_(depth) {
  if (depth > kMaxDepth) {
    fail("{}: bad protobuf at offset {}: messages nested deeper than {} levels", source_, base_,
         kMaxDepth);
  }
}

void ProtoReader::fail_at(size_t offset, std::string_view what) const {
  fail("{}: bad protobuf at offset {}: {}", source_, base_ + offset, what);
}

uint64_t ProtoReader::read_varint(size_t& pos, std::string_view what) const {
  uint64_t value = 0;
  const size_t start = pos;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= bytes_.size()) {
      fail("{}: truncated protobuf: {} at offset {} runs past the end ({} bytes)", source_, what,
           base_ + start, base_ + bytes_.size());
    }
    const uint8_t byte = static_cast<uint8_t>(bytes_[pos++]);
    value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return value;
  }
  fail_at(start, fmt::format("{} is a varint longer than 10 bytes", what));
}

bool ProtoReader::next() {
  if (pos_ >= bytes_.size()) return false;
  key_pos_ = pos_;
  const uint64_t key = read_varint(pos_, "field key");
  const uint64_t number = key >> 3;
  if (number == 0 || number > 0x1FFFFFFF) {
    fail_at(key_pos_, fmt::format("field number {} is out of range", number));
  }
  field_ = static_cast<uint32_t>(number);
  const uint32_t wire = static_cast<uint32_t>(key & 7);
  switch (wire) {
    case 0:
      wire_ = WireType::Varint;
      value_pos_ = pos_;
      value_ = read_varint(pos_, fmt::format("field {}", field_));
      break;
    case 1:
    case 5: {
      wire_ = wire == 1 ? WireType::Fixed64 : WireType::Fixed32;
      const size_t size = wire == 1 ? 8 : 4;
      value_pos_ = pos_;
      if (bytes_.size() - pos_ < size) {
        fail("{}: truncated protobuf: field {} ({}) at offset {} needs {} bytes, {} left", source_,
             field_, wire_name(wire_), base_ + pos_, size, bytes_.size() - pos_);
      }
      value_ = size == 8 ? load_le<uint64_t>(bytes_.data() + pos_) : load_le<uint32_t>(bytes_.data() + pos_);
      pos_ += size;
      break;
    }
    case 2: {
      wire_ = WireType::Bytes;
      const uint64_t length = read_varint(pos_, fmt::format("length of field {}", field_));
      value_pos_ = pos_;
      if (length > bytes_.size() - pos_) {
        fail("{}: truncated protobuf: field {} at offset {} declares {} bytes, {} left", source_,
             field_, base_ + key_pos_, length, bytes_.size() - pos_);
      }
      payload_ = bytes_.substr(pos_, static_cast<size_t>(length));
      pos_ += static_cast<size_t>(length);
      break;
    }
    case 3:
    case 4: fail_at(key_pos_, fmt::format("field {} is a group (wire type {}), not supported", field_, wire));
    default: fail_at(key_pos_, fmt::format("field {} has the invalid wire type {}", field_, wire));
  }
  return true;
}

void ProtoReader::expect(WireType type, std::string_view what) const {
  if (wire_ != type) {
    fail_at(key_pos_, fmt::format("field {} is {}, expected {} ({})", field_, wire_name(wire_),
                                  wire_name(type), what));
  }
}

uint64_t ProtoReader::varint() const {
  expect(WireType::Varint, "an integer");
  return value_;
}

uint32_t ProtoReader::fixed32() const {
  expect(WireType::Fixed32, "a 32-bit value");
  return static_cast<uint32_t>(value_);
}

uint64_t ProtoReader::fixed64() const {
  expect(WireType::Fixed64, "a 64-bit value");
  return value_;
}

float ProtoReader::float32() const {
  const uint32_t bits = fixed32();
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

double ProtoReader::float64() const {
  const uint64_t bits = fixed64();
  double value;
  std::memcpy(&value, &bits, 8);
  return value;
}

std::string_view ProtoReader::bytes() const {
  expect(WireType::Bytes, "bytes, a string or a message");
  return payload_;
}

ProtoReader ProtoReader::message() const {
  return ProtoReader(bytes(), source_, base_ + value_pos_, depth_ + 1);
}

void ProtoReader::append_int64s(std::vector<int64_t>& out) const {
  if (wire_ != WireType::Bytes) {
    out.push_back(int64());
    return;
  }
  // A packed run: the payload is a sequence of varints, read by a reader of its own bytes.
  ProtoReader run(payload_, source_, base_ + value_pos_, depth_);
  size_t pos = 0;
  while (pos < run.bytes_.size()) {
    out.push_back(static_cast<int64_t>(run.read_varint(pos, fmt::format("packed field {}", field_))));
  }
}

void ProtoReader::append_uint64s(std::vector<uint64_t>& out) const {
  if (wire_ != WireType::Bytes) {
    out.push_back(varint());
    return;
  }
  ProtoReader run(payload_, source_, base_ + value_pos_, depth_);
  size_t pos = 0;
  while (pos < run.bytes_.size()) {
    out.push_back(run.read_varint(pos, fmt::format("packed field {}", field_)));
  }
}

void ProtoReader::append_floats(std::vector<float>& out) const {
  if (wire_ != WireType::Bytes) {
    out.push_back(float32());
    return;
  }
  if (payload_.empty()) return;  // (memcpy into out.data() of an empty vector would be UB)
  if (payload_.size() % 4 != 0) {
    fail_at(value_pos_, fmt::format("packed floats of field {} take {} bytes, not a multiple of 4",
                                    field_, payload_.size()));
  }
  const size_t first = out.size();
  out.resize(first + payload_.size() / 4);
  std::memcpy(out.data() + first, payload_.data(), payload_.size());
}

void ProtoReader::append_doubles(std::vector<double>& out) const {
  if (wire_ != WireType::Bytes) {
    out.push_back(float64());
    return;
  }
  if (payload_.empty()) return;  // (memcpy into out.data() of an empty vector would be UB)
  if (payload_.size() % 8 != 0) {
    fail_at(value_pos_, fmt::format("packed doubles of field {} take {} bytes, not a multiple of 8",
                                    field_, payload_.size()));
  }
  const size_t first = out.size();
  out.resize(first + payload_.size() / 8);
  std::memcpy(out.data() + first, payload_.data(), payload_.size());
}

}  // namespace scalpel
