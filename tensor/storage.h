#pragma once
// Reference-counted, 64-byte aligned memory owned by one allocator on one device.
// Tensors share a Storage through std::shared_ptr; views never copy it.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/device.h"

namespace scalpel {

// An allocator hands out device memory. The CPU allocator is built in; the CUDA backend
// registers its caching allocators (real and emulated) with register_allocator().
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual Device device() const = 0;
};

Allocator* cpu_allocator();

// The CPU allocator maps blocks of kCachedBlockMin bytes or more itself and keeps them when
// freed, for reuse (tensor/storage.cpp says why). Bound: live + cached <= the most bytes live
// at once so far (high_water) plus an eighth (kCacheSlackDivisor), and cached <= kMaxCachedBytes. Stats count blocks of that
// class only: cached, live (handed out, not yet freed), the high-water mark, and how many
// requests were served from the cache (hits) or with new memory (misses).
inline constexpr size_t kCachedBlockMin = size_t(8) << 20;
inline constexpr size_t kMaxCachedBytes = size_t(1) << 30;
inline constexpr size_t kCacheSlackDivisor = 8;
struct CpuCacheStats {
  size_t cached_bytes = 0, live_bytes = 0, high_water = 0;
  int64_t hits = 0, misses = 0;
};
CpuCacheStats cpu_allocator_stats();
// Unmaps every cached block and restarts the high-water mark from the live bytes.
void cpu_allocator_release_cache();
// The allocator for a device; throws Error when no backend for it is linked in or available.
Allocator* allocator_for(Device device);
void register_allocator(DeviceType type, Allocator* allocator);

// Copies nbytes between two devices. Backends register how for their device type (and count
// every host<->device transfer so benchmarks can show them); CPU<->CPU is a memcpy.
using DeviceCopyFn = void (*)(void* dst, Device dst_device, const void* src, Device src_device,
                              size_t nbytes);
void register_device_copy(DeviceType type, DeviceCopyFn fn);
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

class Storage {
 public:
  Storage(size_t nbytes, Allocator* allocator);
  // Wraps memory owned elsewhere (e.g. an mmapped file); `keep_alive` holds the owner.
  Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;  // null when the memory is borrowed
  std::shared_ptr<void> keep_alive_;
};

}  // namespace scalpel
