// The cuda-emu device: allocator registration and caching, counted copies, and the errors a
// user gets when asking for a GPU that this machine or build does not have.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "cuda/caching_allocator.h"
#include "cuda/device.h"
#include "tensor/error.h"

namespace scalpel::cuda {
namespace {

TEST(CudaEmuDevice, AllocatorIsRegisteredAndCachesBlocks) {
  register_allocators();
  Allocator* a = allocator_for(Device{DeviceType::CUDAEmu, 0});
  ASSERT_EQ(a, emu_allocator());
  EXPECT_EQ(a->device().type, DeviceType::CUDAEmu);
  auto* cache = static_cast<CachingAllocator*>(a);
  cache->empty_cache();  // blocks cached by earlier tests would serve the first allocation too
  const AllocatorStats before = cache->stats();
  void* p = a->allocate(1000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
  a->deallocate(p, 1000);
  void* q = a->allocate(900);  // same 1024-byte bucket: served from the cache
  EXPECT_EQ(q, p);
  EXPECT_EQ(cache->stats().cache_hits, before.cache_hits + 1);
  a->deallocate(q, 900);
}

TEST(CudaEmuDevice, FreshMemoryIsNaNFilled) {
  void* p = emu_allocator()->allocate(1 << 20);  // a size no other test caches
  float f;
  std::memcpy(&f, p, sizeof f);
  EXPECT_TRUE(std::isnan(f));
  emu_allocator()->deallocate(p, 1 << 20);
}

TEST(CudaEmuDevice, CopiesAreCounted) {
  const Stream s{Device{DeviceType::CUDAEmu, 0}, nullptr};
  reset_transfer_stats();
  float host[4] = {1, 2, 3, 4}, back[4] = {};
  auto* dev = static_cast<float*>(emu_allocator()->allocate(sizeof host));
  auto* dev2 = static_cast<float*>(emu_allocator()->allocate(sizeof host));
  copy_host_to_device(s, dev, host, sizeof host);
  copy_device_to_device(s, dev2, dev, sizeof host);
  copy_device_to_host(s, back, dev2, sizeof host);
  EXPECT_EQ(std::memcmp(host, back, sizeof host), 0);
  const TransferStats t = transfer_stats();
  EXPECT_EQ(t.h2d_copies, 1u);
  EXPECT_EQ(t.h2d_bytes, 16u);
  EXPECT_EQ(t.d2d_copies, 1u);
  EXPECT_EQ(t.d2h_copies, 1u);
  EXPECT_EQ(transfer_summary(t), "h2d 1 copies 16 B, d2h 1 copies 16 B, d2d 1 copies 16 B");
  emu_allocator()->deallocate(dev, sizeof host);
  emu_allocator()->deallocate(dev2, sizeof host);
}

TEST(CudaDevice, MissingGpuOrBuildIsAnErrorSuggestingCpu) {
  // Runs only where no GPU is usable (the CI machines); on a GPU machine this would succeed.
  try {
    require_device(Device{DeviceType::CUDA, 0});
    GTEST_SKIP() << "a CUDA device is available here";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cpu"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace scalpel::cuda
