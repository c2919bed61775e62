#pragma once
// A copy of some values that ends where an unreadable page begins, for tests that a kernel reads
// nothing past the end of its operand: a read there (rather than a prefetch or a masked-off
// lane) crashes the test.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <vector>

namespace scalpel::test {

template <typename T>
class GuardedCopy {
 public:
  explicit GuardedCopy(const std::vector<T>& values) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t payload = values.size() * sizeof(T), readable = (payload + page - 1) / page * page;
    bytes_ = readable + page;
    void* base = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw std::runtime_error("GuardedCopy: mmap failed");
    base_ = static_cast<char*>(base);
    if (mprotect(base_ + readable, page, PROT_NONE) != 0) throw std::runtime_error("GuardedCopy: mprotect failed");
    data_ = reinterpret_cast<T*>(base_ + readable - payload);
    std::memcpy(data_, values.data(), payload);
  }
  ~GuardedCopy() { munmap(base_, bytes_); }
  GuardedCopy(const GuardedCopy&) = delete;
  GuardedCopy& operator=(const GuardedCopy&) = delete;
  const T* data() const { return data_; }

 private:
  size_t bytes_ = 0;
  char* base_ = nullptr;
  T* data_ = nullptr;
};

}  // namespace scalpel::test
