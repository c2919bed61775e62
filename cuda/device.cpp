#include "cuda/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cuda/caching_allocator.h"
#include "cuda/gpu/runtime.h"
#include "tensor/error.h"

namespace scalpel::cuda {

namespace {

std::atomic<uint64_t> g_h2d_copies{0}, g_h2d_bytes{0}, g_d2h_copies{0}, g_d2h_bytes{0},
    g_d2d_copies{0}, g_d2d_bytes{0};

// Emulated device memory: host memory, 256-byte aligned as cudaMalloc's, filled with 0xFF
// (NaN floats) so that reading memory no kernel wrote shows up in results.
void* emu_raw_allocate(size_t bytes) {
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (p != nullptr) std::memset(p, 0xFF, bytes);
  return p;
}
void emu_raw_release(void* p) { std::free(p); }

#if SCALPEL_HAVE_CUDA
enum class Direction { H2D, D2H, D2D };
gpu::CopyKind to_kind(Direction d) {
  return d == Direction::H2D ? gpu::CopyKind::HostToDevice
         : d == Direction::D2H ? gpu::CopyKind::DeviceToHost : gpu::CopyKind::DeviceToDevice;
}
#else
enum class Direction { H2D, D2H, D2D };
#endif

void copy(const Stream& s, void* dst, const void* src, size_t bytes, Direction d) {
  if (bytes == 0) return;
  SCALPEL_CHECK(dst != nullptr && src != nullptr, "cuda copy of {} bytes with a null pointer", bytes);
  if (s.emulated()) {
    std::memcpy(dst, src, bytes);
  } else {
#if SCALPEL_HAVE_CUDA
    gpu::copy(s, dst, src, bytes, to_kind(d));
#else
    fail_no_cuda_build("copy");
#endif
  }
  auto& copies = d == Direction::H2D ? g_h2d_copies : d == Direction::D2H ? g_d2h_copies : g_d2d_copies;
  auto& total = d == Direction::H2D ? g_h2d_bytes : d == Direction::D2H ? g_d2h_bytes : g_d2d_bytes;
  ++copies;
  total += bytes;
}

std::string bytes_str(uint64_t b) {
  if (b >= (1u << 20)) return fmt::format("{:.1f} MiB", b / 1048576.0);
  if (b >= (1u << 10)) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", b);
}

}  // namespace

[[noreturn]] void fail_no_cuda_build(const char* function) {
  fail("this scalpel was built without CUDA (no nvcc found), so `--device cuda` cannot run "
       "({}); run with --device cpu, or --device cuda-emu to run the CUDA kernels on the CPU",
       function);
}

Allocator* emu_allocator() {
  static CachingAllocator allocator(Device{DeviceType::CUDAEmu, 0},
                                    RawMemory{emu_raw_allocate, emu_raw_release});
  return &allocator;
}

#if SCALPEL_HAVE_CUDA
namespace {
// Checks for a device on first use, so that a CPU run never touches the driver.
class GpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    std::call_once(checked_, [] { gpu::require_device(0); });
    return cache_.allocate(nbytes);
  }
  void deallocate(void* ptr, size_t nbytes) override { cache_.deallocate(ptr, nbytes); }
  Device device() const override { return cache_.device(); }

 private:
  std::once_flag checked_;
  CachingAllocator cache_{Device{DeviceType::CUDA, 0}, RawMemory{gpu::raw_allocate, gpu::raw_release}};
};
}  // namespace

Allocator* gpu_allocator() {
  static GpuAllocator allocator;
  return &allocator;
}
#else
Allocator* gpu_allocator() { fail_no_cuda_build("allocator"); }
#endif

void register_allocators() {
  register_allocator(DeviceType::CUDAEmu, emu_allocator());
#if SCALPEL_HAVE_CUDA
  register_allocator(DeviceType::CUDA, gpu_allocator());
#endif
}

void require_device(Device device) {
  if (device.type == DeviceType::CUDAEmu) return;
  SCALPEL_CHECK(device.type == DeviceType::CUDA, "device {} is not a CUDA device", device.str());
#if SCALPEL_HAVE_CUDA
  gpu::require_device(device.index);
#else
  fail_no_cuda_build("require_device");
#endif
}

Stream default_stream(Device device) {
  require_device(device);
  return Stream{device, nullptr};
}

void synchronize(const Stream& s) {
  if (s.emulated()) return;
#if SCALPEL_HAVE_CUDA
  gpu::synchronize(s);
#else
  fail_no_cuda_build("synchronize");
#endif
}

bool stream_done(const Stream& s) {
  if (s.emulated()) return true;
#if SCALPEL_HAVE_CUDA
  return gpu::query(s);
#else
  fail_no_cuda_build("stream_done");
#endif
}

void copy_host_to_device(const Stream& s, void* dst, const void* src, size_t bytes) {
  copy(s, dst, src, bytes, Direction::H2D);
}
void copy_device_to_host(const Stream& s, void* dst, const void* src, size_t bytes) {
  copy(s, dst, src, bytes, Direction::D2H);
}
void copy_device_to_device(const Stream& s, void* dst, const void* src, size_t bytes) {
  copy(s, dst, src, bytes, Direction::D2D);
}

TransferStats transfer_stats() {
  return {g_h2d_copies, g_h2d_bytes, g_d2h_copies, g_d2h_bytes, g_d2d_copies, g_d2d_bytes};
}

void reset_transfer_stats() {
  g_h2d_copies = g_h2d_bytes = g_d2h_copies = g_d2h_bytes = g_d2d_copies = g_d2d_bytes = 0;
}

std::string transfer_summary(const TransferStats& t) {
  return fmt::format("h2d {} copies {}, d2h {} copies {}, d2d {} copies {}", t.h2d_copies,
                     bytes_str(t.h2d_bytes), t.d2h_copies, bytes_str(t.d2h_bytes), t.d2d_copies,
                     bytes_str(t.d2d_bytes));
}

}  // namespace scalpel::cuda
