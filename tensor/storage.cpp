#include "tensor/storage.h"

#include <sys/mman.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <array>
#include <iterator>
#include <map>
#include <unordered_map>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "tensor/error.h"

namespace scalpel {
namespace {

constexpr size_t kAlignment = 64;  // one cache line; AVX-512 loads stay aligned

// Activation memory is reused instead of going back to the OS between calls. By default
// glibc serves a block above its mmap threshold (dynamic, at most 32 MiB) with a fresh mmap
// and unmaps it on free, and returns the free top of its heap to the OS (trim threshold), so
// a model whose activations are large page-faults and zeroes them anew on every call. On an
// AMD EPYC KVM guest that was half of mobilenet_v2's CPU time at batch 8 (8 x 96 x 112 x 112
// floats = 38.5 MB per expand output; docs/performance.md). So the CPU allocator
//   - fixes glibc's mmap threshold at its maximum, 32 MiB, and its trim threshold at 1 GiB
//     (mallopt, once, before the first allocation): smaller blocks stay in the heap;
//   - maps blocks of kCachedBlockMin (8 MiB) or more itself and keeps them when freed, in a
//     size-keyed cache: the next request takes the smallest cached block that holds it,
//     already faulted in. Left to glibc's heap, activations of 8-32 MiB fragmented it: which
//     free chunks could merge depended on the order of the small allocations between them,
//     so unrelated changes moved resnet50 batch 8's peak RSS between 288 and 421 MB. A larger
//     cached block rather than a new mapping: it is resident already, a new one adds its
//     size to the RSS and faults (allowing at most 2x the request made mobilenet_v2 batch 8
//     map and fault blocks on every call, 1.5x its time);
//   - bounds that cache by what the program has needed: the mapped bytes (live + cached) stay
//     within the most bytes that were live at once (the high-water mark) plus an eighth, and
//     cached <= kMaxCachedBytes; beyond, the largest cached blocks are unmapped. Bounded in
//     bytes only, the cache held blocks of sizes no later call asked for on top of the live
//     ones (resnet50 batch 8 inference: +45 MB of peak RSS; docs/performance.md, "Peak RSS").
//     The eighth lets blocks of a slightly different size order stay cached; a quarter kept
//     9 MB more of resnet50 batch 8's peak (351 vs 342 MB) with no fewer new mappings in steady
//     state (none either way, inference and training, the zoo's four benchmark models).
class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, static_cast<int>(kCachedBlockMin));
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  }

  void* allocate(size_t nbytes) override {
    if (nbytes < kCachedBlockMin) {
      size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
      void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
      SCALPEL_CHECK(p != nullptr, "out of memory allocating {} bytes on the CPU", nbytes);
      return p;
    }
    const size_t size = block_size(nbytes);
    {
      std::lock_guard lock(mutex_);
      const auto it = cache_.lower_bound(size);
      if (it != cache_.end()) {
        void* p = it->second;
        cached_bytes_ -= it->first;
        add_live(p, it->first);
        cache_.erase(it);
        ++hits_;
        return p;
      }
      ++misses_;
      // Make room for the new block under the bound before mapping it.
      high_water_ = std::max(high_water_, live_bytes_ + size);
      evict_beyond_bound(size);
    }
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    SCALPEL_CHECK(p != MAP_FAILED, "out of memory allocating {} bytes on the CPU", nbytes);
    std::lock_guard lock(mutex_);
    add_live(p, size);
    return p;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (nbytes < kCachedBlockMin) return std::free(ptr);
    std::lock_guard lock(mutex_);
    const auto owned = owned_.find(ptr);
    const size_t size = owned->second;
    owned_.erase(owned);
    live_bytes_ -= size;
    cache_.emplace(size, ptr);
    cached_bytes_ += size;
    evict_beyond_bound();
  }

  Device device() const override { return Device::cpu(); }

  CpuCacheStats stats() {
    std::lock_guard lock(mutex_);
    return {cached_bytes_, live_bytes_, high_water_, hits_, misses_};
  }

  void release_cache() {
    std::lock_guard lock(mutex_);
    for (const auto& [size, p] : cache_) munmap(p, size);
    cache_.clear();
    cached_bytes_ = 0;
    high_water_ = live_bytes_;
  }

 private:
  // Whole 64 KiB units, so that requests a few bytes apart share cached blocks.
  static size_t block_size(size_t nbytes) { return (nbytes + kUnit - 1) / kUnit * kUnit; }
  static constexpr size_t kUnit = size_t(64) << 10;

  void add_live(void* p, size_t size) {
    owned_[p] = size;
    live_bytes_ += size;
    high_water_ = std::max(high_water_, live_bytes_);
  }

  // Unmaps the largest cached blocks until live + `incoming` (a block about to be mapped) +
  // cached <= the high-water mark plus an eighth and cached <= kMaxCachedBytes. Called with mutex_ held.
  void evict_beyond_bound(size_t incoming = 0) {
    const size_t bound = high_water_ + high_water_ / kCacheSlackDivisor;
    while (!cache_.empty() &&
           (live_bytes_ + incoming + cached_bytes_ > bound || cached_bytes_ > kMaxCachedBytes)) {
      const auto largest = std::prev(cache_.end());
      munmap(largest->second, largest->first);
      cached_bytes_ -= largest->first;
      cache_.erase(largest);
    }
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> cache_;           // size -> free block
  std::unordered_map<void*, size_t> owned_;      // live cached-class block -> its size
  size_t cached_bytes_ = 0;
  size_t live_bytes_ = 0;  // blocks of the cached class handed out and not yet freed
  size_t high_water_ = 0;  // the most live_bytes_ so far (since the last release_cache)
  int64_t hits_ = 0, misses_ = 0;
};

std::array<Allocator*, 3>& allocator_table() {
  static std::array<Allocator*, 3> table{cpu_allocator(), nullptr, nullptr};
  return table;
}
std::mutex& allocator_mutex() {
  static std::mutex m;
  return m;
}

CpuAllocator& the_cpu_allocator() {
  static CpuAllocator* allocator = new CpuAllocator;  // never destroyed: storages may outlive statics
  return *allocator;
}

}  // namespace

Allocator* cpu_allocator() { return &the_cpu_allocator(); }
CpuCacheStats cpu_allocator_stats() { return the_cpu_allocator().stats(); }
void cpu_allocator_release_cache() { the_cpu_allocator().release_cache(); }

void register_allocator(DeviceType type, Allocator* allocator) {
  std::lock_guard lock(allocator_mutex());
  allocator_table()[static_cast<size_t>(type)] = allocator;
}

Allocator* allocator_for(Device device) {
  std::lock_guard lock(allocator_mutex());
  Allocator* a = allocator_table()[static_cast<size_t>(device.type)];
  SCALPEL_CHECK(a != nullptr,
                "device {} is not available in this build (run with --device cpu)", device.str());
  return a;
}

namespace {
std::array<DeviceCopyFn, 3>& copy_table() {
  static std::array<DeviceCopyFn, 3> table{};
  return table;
}
}  // namespace

void register_device_copy(DeviceType type, DeviceCopyFn fn) {
  std::lock_guard lock(allocator_mutex());
  copy_table()[static_cast<size_t>(type)] = fn;
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    if (nbytes) std::memcpy(dst, src, nbytes);
    return;
  }
  // The non-CPU side decides how to copy.
  DeviceType backend = dst_device.is_cpu() ? src_device.type : dst_device.type;
  DeviceCopyFn fn = copy_table()[static_cast<size_t>(backend)];
  SCALPEL_CHECK(fn != nullptr, "no copy routine for device {} in this build (run with --device cpu)",
                (dst_device.is_cpu() ? src_device : dst_device).str());
  fn(dst, dst_device, src, src_device, nbytes);
}

Storage::Storage(size_t nbytes, Allocator* allocator)
    : data_(allocator->allocate(nbytes)), nbytes_(nbytes), device_(allocator->device()),
      allocator_(allocator) {}

Storage::Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> keep_alive)
    : data_(data), nbytes_(nbytes), device_(device), keep_alive_(std::move(keep_alive)) {}

Storage::~Storage() {
  if (allocator_ != nullptr) allocator_->deallocate(data_, nbytes_);
}

}  // namespace scalpel
