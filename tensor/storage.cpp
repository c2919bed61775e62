#include "tensor/storage.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "tensor/error.h"

namespace scalpel {
namespace {

constexpr size_t kAlignment = 64;  // one cache line; AVX-512 loads stay aligned

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    SCALPEL_CHECK(p != nullptr, "out of memory allocating {} bytes on the CPU", nbytes);
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
  Device device() const override { return Device::cpu(); }
};

std::array<Allocator*, 3>& allocator_table() {
  static std::array<Allocator*, 3> table{cpu_allocator(), nullptr, nullptr};
  return table;
}
std::mutex& allocator_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

Allocator* cpu_allocator() {
  static CpuAllocator allocator;
  return &allocator;
}

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
