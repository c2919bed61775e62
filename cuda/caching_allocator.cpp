#include "cuda/caching_allocator.h"

#include "tensor/error.h"

namespace scalpel::cuda {

CachingAllocator::~CachingAllocator() { empty_cache(); }

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = round_size(nbytes == 0 ? 1 : nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= size;
    stats_.in_use_bytes += size;
    ++stats_.cache_hits;
    return p;
  }
  void* p = raw_.allocate(size);
  if (p == nullptr && stats_.cached_bytes > 0) {
    for (auto& [bytes, blocks] : free_)
      for (void* b : blocks) raw_.release(b);
    free_.clear();
    stats_.cached_bytes = 0;
    p = raw_.allocate(size);
  }
  if (p == nullptr)
    fail("out of {} memory: cannot allocate {:.1f} MiB ({:.1f} MiB in use); try a smaller "
         "--batch or --device cpu",
         device_.str(), size / 1048576.0, stats_.in_use_bytes / 1048576.0);
  ++stats_.raw_allocations;
  stats_.in_use_bytes += size;
  return p;
}

void CachingAllocator::deallocate(void* ptr, size_t nbytes) {
  if (ptr == nullptr) return;
  const size_t size = round_size(nbytes == 0 ? 1 : nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  free_[size].push_back(ptr);
  stats_.in_use_bytes -= size;
  stats_.cached_bytes += size;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [bytes, blocks] : free_)
    for (void* b : blocks) raw_.release(b);
  free_.clear();
  stats_.cached_bytes = 0;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace scalpel::cuda
