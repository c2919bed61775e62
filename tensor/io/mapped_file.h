#pragma once
// A whole file mapped read-only into memory, so readers parse it in place without copying
// (a 100 MB checkpoint costs page cache, not a second buffer). Error names the path when the
// file cannot be opened or mapped.
#include <string>
#include <string_view>

namespace scalpel {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;  // null for an empty file
  size_t size_ = 0;
};

}  // namespace scalpel
