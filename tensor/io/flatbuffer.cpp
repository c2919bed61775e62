#include "tensor/io/flatbuffer.h"

#include <fmt/format.h>

#include <utility>

namespace scalpel::flatbuffers {

namespace {

std::string join(const std::string& path, std::string_view name) {
  if (path.empty()) return std::string(name);
  return fmt::format("{}.{}", path, name);
}

// The string whose 32-bit length sits at `pos`: its bytes and the terminating NUL must fit.
std::string_view string_at(const FlatBuffer& fb, size_t pos, std::string_view what) {
  const uint32_t length = fb.load<uint32_t>(pos, what);
  fb.need(pos + 4, uint64_t{length} + 1, what);
  return fb.bytes().substr(pos + 4, length);
}

}  // namespace

FlatBuffer::FlatBuffer(std::string_view bytes, std::string source)
    : bytes_(bytes), source_(std::move(source)) {
  // The root offset, then a table of at least its vtable offset.
  if (bytes_.size() < 8) {
    fail("{}: flatbuffer: {} bytes is too short for a FlatBuffers file (truncated?)", source_,
         bytes_.size());
  }
}

bool FlatBuffer::has_identifier(std::string_view id) const {
  return id.size() == 4 && bytes_.substr(4, 4) == id;
}

Table FlatBuffer::root() const { return Table(this, follow(0, "root table"), "", 0); }

void FlatBuffer::fail_at(std::string_view what, size_t pos, std::string_view message) const {
  fail("{}: flatbuffer: {} at offset {}: {}", source_, what.empty() ? "root" : what, pos, message);
}

void FlatBuffer::need(size_t pos, uint64_t n, std::string_view what) const {
  if (pos > bytes_.size() || n > bytes_.size() - pos) {
    fail_at(what, pos,
            fmt::format("needs {} bytes, only {} left (truncated or corrupt file)", n,
                        pos > bytes_.size() ? 0 : bytes_.size() - pos));
  }
}

size_t FlatBuffer::follow(size_t pos, std::string_view what) const {
  const uint32_t offset = load<uint32_t>(pos, what);
  const uint64_t target = uint64_t{pos} + offset;
  if (offset == 0 || target >= bytes_.size()) {
    fail_at(what, pos,
            fmt::format("offset {} points outside the {} bytes of the file", offset, bytes_.size()));
  }
  return static_cast<size_t>(target);
}

Table::Table(const FlatBuffer* fb, size_t pos, std::string path, int depth)
    : fb_(fb), pos_(pos), path_(std::move(path)), depth_(depth) {
  if (depth > kMaxDepth) {
    fb->fail_at(path_, pos, fmt::format("tables nested more than {} deep (a cycle?)", kMaxDepth));
  }
  const int32_t to_vtable = fb->load<int32_t>(pos, path_);
  const int64_t vtable = static_cast<int64_t>(pos) - to_vtable;
  if (vtable < 0 || vtable > static_cast<int64_t>(fb->bytes().size())) {
    fb->fail_at(path_, pos, fmt::format("vtable offset {} points outside the file", to_vtable));
  }
  vtable_ = static_cast<size_t>(vtable);
  vtable_size_ = fb->load<uint16_t>(vtable_, path_ + " vtable");
  table_size_ = fb->load<uint16_t>(vtable_ + 2, path_ + " vtable");
  if (vtable_size_ < 4 || vtable_size_ % 2 != 0) {
    fb->fail_at(path_, vtable_, fmt::format("vtable of {} bytes is malformed", vtable_size_));
  }
  if (table_size_ < 4) {
    fb->fail_at(path_, pos, fmt::format("table of {} bytes is malformed", table_size_));
  }
  fb->need(vtable_, vtable_size_, path_ + " vtable");
  fb->need(pos_, table_size_, path_);
}

std::string Table::field_name(std::string_view name) const { return join(path_, name); }

size_t Table::field_pos(int field, size_t size, std::string_view name) const {
  const size_t slot = 4 + 2 * static_cast<size_t>(field);
  if (field < 0 || slot + 2 > vtable_size_) return 0;  // written by an older schema: absent
  const uint16_t offset = fb_->load<uint16_t>(vtable_ + slot, path_ + " vtable");
  if (offset == 0) return 0;
  if (offset < 4 || uint64_t{offset} + size > table_size_) {
    fb_->fail_at(field_name(name), pos_,
                 fmt::format("field {} at {} + {} bytes lies outside its table of {} bytes", field,
                             offset, size, table_size_));
  }
  return pos_ + offset;
}

Table Table::table(int field, std::string_view name) const {
  const size_t at = field_pos(field, 4, name);
  if (at == 0) return {};
  return Table(fb_, fb_->follow(at, field_name(name)), field_name(name), depth_ + 1);
}

std::string_view Table::string(int field, std::string_view name) const {
  const size_t at = field_pos(field, 4, name);
  if (at == 0) return {};
  return string_at(*fb_, fb_->follow(at, field_name(name)), field_name(name));
}

Vector Table::vector(int field, std::string_view name, size_t element_size) const {
  const size_t at = field_pos(field, 4, name);
  if (at == 0) return {};
  return Vector(fb_, fb_->follow(at, field_name(name)), element_size, field_name(name), depth_ + 1);
}

Vector::Vector(const FlatBuffer* fb, size_t length_pos, size_t element_size, std::string path,
               int depth)
    : fb_(fb), element_size_(element_size), path_(std::move(path)), depth_(depth) {
  const uint32_t length = fb->load<uint32_t>(length_pos, path_);
  data_ = length_pos + 4;
  const uint64_t bytes = uint64_t{length} * element_size;
  if (bytes > fb->bytes().size() - data_) {
    fb->fail_at(path_, length_pos,
                fmt::format("vector claims {} elements of {} bytes, only {} bytes left", length,
                            element_size, fb->bytes().size() - data_));
  }
  size_ = length;
}

void Vector::check(size_t i, size_t element_size) const {
  if (fb_ == nullptr) fail("flatbuffer: index {} of an absent vector", i);
  if (element_size != element_size_) {
    fb_->fail_at(path_, data_, fmt::format("read as {}-byte elements, declared {}", element_size,
                                           element_size_));
  }
  if (i >= size_) {
    fb_->fail_at(path_, data_, fmt::format("index {} is beyond the {} elements", i, size_));
  }
}

Table Vector::table(size_t i) const {
  check(i, 4);
  const std::string path = fmt::format("{}[{}]", path_, i);
  return Table(fb_, fb_->follow(data_ + 4 * i, path), path, depth_ + 1);
}

std::string_view Vector::string(size_t i) const {
  check(i, 4);
  const std::string path = fmt::format("{}[{}]", path_, i);
  return string_at(*fb_, fb_->follow(data_ + 4 * i, path), path);
}

std::string_view Vector::bytes() const {
  if (size_ == 0) return {};
  return fb_->bytes().substr(data_, size_ * element_size_);
}

}  // namespace scalpel::flatbuffers
