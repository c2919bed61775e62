#pragma once
// A caching allocator: freed blocks are kept in per-size free lists and handed out again
// instead of going back to the driver (cudaMalloc/cudaFree synchronize the device and cost
// tens of microseconds; a training step frees and reallocates the same sizes every time).
// Sizes are rounded up to 512 bytes so that nearby sizes share blocks. When the raw
// allocation fails, the cache is emptied and the allocation retried once.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "tensor/storage.h"

namespace scalpel::cuda {

struct RawMemory {
  void* (*allocate)(size_t bytes);  // null when out of memory
  void (*release)(void* ptr);
};

struct AllocatorStats {
  uint64_t in_use_bytes = 0, cached_bytes = 0;
  uint64_t cache_hits = 0, raw_allocations = 0;
};

class CachingAllocator final : public Allocator {
 public:
  CachingAllocator(Device device, RawMemory raw) : device_(device), raw_(raw) {}
  ~CachingAllocator() override;
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  Device device() const override { return device_; }

  // Returns every cached block to the raw allocator.
  void empty_cache();
  AllocatorStats stats() const;

  static size_t round_size(size_t nbytes) { return (nbytes + 511) / 512 * 512; }

 private:
  Device device_;
  RawMemory raw_;
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;  // rounded size -> cached blocks
  AllocatorStats stats_;
};

}  // namespace scalpel::cuda
