#pragma once
// Bounds-checked little-endian reads from a byte buffer, shared by the file-format readers.
// Every read checks the remaining length first and throws Error naming the source, the
// offset and what was being read, so a truncated file is an Error and never a crash.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "tensor/error.h"

namespace scalpel {

class ByteReader {
 public:
  ByteReader(std::string_view bytes, std::string_view source, size_t pos = 0)
      : bytes_(bytes), source_(source), pos_(pos) {
    SCALPEL_CHECK(pos <= bytes.size(), "{}: offset {} is beyond the end of the data ({} bytes)",
                  source, pos, bytes.size());
  }

  size_t pos() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }

  // The next n bytes as a view; `what` names them in the error when fewer remain.
  std::string_view take(uint64_t n, std::string_view what) {
    if (n > remaining()) {
      fail("{}: truncated: {} needs {} bytes at offset {}, only {} left", source_, what, n, pos_,
           remaining());
    }
    std::string_view out = bytes_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return out;
  }

  // Little-endian unsigned integer of sizeof(T) bytes.
  template <typename T>
  T read_le(std::string_view what) {
    const std::string_view raw = take(sizeof(T), what);
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      value |= static_cast<T>(static_cast<uint8_t>(raw[i])) << (8 * i);
    }
    return value;
  }
  uint8_t u8(std::string_view what) { return read_le<uint8_t>(what); }
  uint16_t u16(std::string_view what) { return read_le<uint16_t>(what); }
  uint32_t u32(std::string_view what) { return read_le<uint32_t>(what); }
  uint64_t u64(std::string_view what) { return read_le<uint64_t>(what); }

 private:
  std::string_view bytes_;
  std::string_view source_;
  size_t pos_ = 0;
};

}  // namespace scalpel
