#include "tensor/mapped_scratch.h"

#include <sys/mman.h>

#include "tensor/error.h"

namespace scalpel {

MappedScratch::~MappedScratch() {
  if (data_) munmap(data_, bytes_);
}

void* MappedScratch::get_bytes(size_t bytes) {
  if (bytes <= bytes_ && data_) return data_;
  constexpr size_t kPage = 4096;
  const size_t rounded = (bytes == 0 ? 1 : bytes + kPage - 1) / kPage * kPage;
  if (data_) munmap(data_, bytes_);
  data_ = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data_ == MAP_FAILED) {
    data_ = nullptr;
    bytes_ = 0;
  }
  SCALPEL_CHECK(data_ != nullptr, "out of memory mapping {} bytes of scratch", rounded);
  bytes_ = rounded;
  return data_;
}

}  // namespace scalpel
