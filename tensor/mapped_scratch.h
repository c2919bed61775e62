#pragma once
// Per-thread working memory that only grows (im2col columns, Winograd tiles), in pages mapped
// outside the malloc heap. A grow-only heap vector frees its old block and takes a larger one
// among the activations' heap chunks, which then cannot merge with their neighbours: that
// moved resnet50 batch 8's peak RSS by 15-50 MB with unrelated changes (docs/performance.md,
// "Issue 21, session 5"). Pages are faulted in when first touched; contents are not kept when
// the buffer grows. Page-aligned.
#include <cstddef>
#include <cstdint>

namespace scalpel {

class MappedScratch {
 public:
  MappedScratch() = default;
  MappedScratch(const MappedScratch&) = delete;
  MappedScratch& operator=(const MappedScratch&) = delete;
  ~MappedScratch();

  // At least n elements of T, valid until get() asks for more.
  template <typename T>
  T* get(int64_t n) {
    return static_cast<T*>(get_bytes(static_cast<size_t>(n) * sizeof(T)));
  }

 private:
  void* get_bytes(size_t bytes);
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace scalpel
