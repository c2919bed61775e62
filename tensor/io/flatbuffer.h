#pragma once
// A small, bounds-checked reader of FlatBuffers binaries (https://flatbuffers.dev), enough for
// schema-less access to TFLite models: tables through their vtables, scalars with defaults,
// strings, vectors of scalars / tables / strings, unions (a type field plus a table field).
// No generated code: the caller names fields by their id (the order in the .fbs schema, a
// union counting as two ids: its type, then its value).
//
//   FlatBuffer fb(bytes, "model.tflite");           // checks the root offset
//   fb.has_identifier("TFL3")
//   Table model = fb.root();
//   Vector subgraphs = model.vector(2, "subgraphs");
//   Table sg = subgraphs.table(0);
//   int32_t n = sg.vector(0, "tensors").size();
//
// Every offset is checked against the buffer before it is followed, every length against the
// bytes left, and tables nest at most kMaxDepth deep (a crafted file can point a table at one
// of its ancestors). A violation throws Error naming the source, what was read and the byte
// offset: "model.tflite: flatbuffer: subgraphs[0].tensors: vector at offset 1234 claims 10^9
// elements of 4 bytes, only 56 bytes left". Reading never allocates in proportion to a size
// the file claims. Views returned (strings, byte vectors) point into the caller's buffer.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "tensor/error.h"

namespace scalpel::flatbuffers {

inline constexpr int kMaxDepth = 32;

class Table;
class Vector;

// The buffer, its name for errors, and the root table.
class FlatBuffer {
 public:
  FlatBuffer(std::string_view bytes, std::string source);
  // The 4-byte file identifier after the root offset (e.g. "TFL3").
  bool has_identifier(std::string_view id) const;
  Table root() const;

  std::string_view bytes() const { return bytes_; }
  const std::string& source() const { return source_; }
  // Error "<source>: flatbuffer: <what> at offset <pos>: <message>".
  [[noreturn]] void fail_at(std::string_view what, size_t pos, std::string_view message) const;
  // Checks that [pos, pos + n) lies inside the buffer.
  void need(size_t pos, uint64_t n, std::string_view what) const;
  template <typename T>
  T load(size_t pos, std::string_view what) const {
    need(pos, sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + pos, sizeof value);
    return value;
  }
  // The position a 32-bit unsigned offset stored at `pos` points to.
  size_t follow(size_t pos, std::string_view what) const;

 private:
  std::string_view bytes_;
  std::string source_;
};

class Table {
 public:
  Table() = default;
  // The table at `pos`, its vtable checked. `path` names it in errors ("subgraphs[0]").
  Table(const FlatBuffer* fb, size_t pos, std::string path, int depth);

  bool valid() const { return fb_ != nullptr; }
  bool has(int field) const { return field_pos(field, 0) != 0; }
  const std::string& path() const { return path_; }
  size_t pos() const { return pos_; }

  // Scalar field (integers, bool as uint8_t, float, double), or `fallback` when absent.
  template <typename T>
  T scalar(int field, T fallback, std::string_view name) const {
    static_assert(std::is_arithmetic_v<T>);
    const size_t at = field_pos(field, sizeof(T), name);
    return at == 0 ? fallback : fb_->load<T>(at, field_name(name));
  }
  // Sub-table; an invalid Table when absent.
  Table table(int field, std::string_view name) const;
  // String; "" when absent.
  std::string_view string(int field, std::string_view name) const;
  // Vector of elements of `element_size` bytes (4 for offsets to tables / strings); an empty
  // vector when absent.
  Vector vector(int field, std::string_view name, size_t element_size = 4) const;

 private:
  // Position of the field's data, 0 when absent; checks that `size` bytes fit the table.
  size_t field_pos(int field, size_t size, std::string_view name = "") const;
  std::string field_name(std::string_view name) const;

  const FlatBuffer* fb_ = nullptr;
  size_t pos_ = 0, vtable_ = 0;
  uint16_t vtable_size_ = 0, table_size_ = 0;
  std::string path_;
  int depth_ = 0;
};

class Vector {
 public:
  Vector() = default;
  Vector(const FlatBuffer* fb, size_t length_pos, size_t element_size, std::string path, int depth);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::string& path() const { return path_; }

  template <typename T>
  T scalar(size_t i) const {
    static_assert(std::is_arithmetic_v<T>);
    check(i, sizeof(T));
    return fb_->load<T>(data_ + i * sizeof(T), path_);
  }
  Table table(size_t i) const;
  std::string_view string(size_t i) const;
  // The elements' raw bytes (a [ubyte] vector: tensor data).
  std::string_view bytes() const;

 private:
  void check(size_t i, size_t element_size) const;

  const FlatBuffer* fb_ = nullptr;
  size_t data_ = 0, size_ = 0, element_size_ = 1;
  std::string path_;
  int depth_ = 0;
};

}  // namespace scalpel::flatbuffers
