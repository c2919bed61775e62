#include "tensor/device_ops.h"

#include <array>

namespace scalpel {

namespace {
// One slot per DeviceType; backends register once at start-up (cuda::init).
template <typename Fn>
std::array<Fn, 3>& table() {
  static std::array<Fn, 3> slots{};
  return slots;
}
}  // namespace

void register_device_reduction(DeviceType type, DeviceReductionFn fn) {
  table<DeviceReductionFn>()[static_cast<size_t>(type)] = fn;
}
DeviceReductionFn device_reduction(DeviceType type) {
  return table<DeviceReductionFn>()[static_cast<size_t>(type)];
}

void register_device_scalar(DeviceType type, DeviceScalarFn fn) {
  table<DeviceScalarFn>()[static_cast<size_t>(type)] = fn;
}
DeviceScalarFn device_scalar(DeviceType type) { return table<DeviceScalarFn>()[static_cast<size_t>(type)]; }

void register_device_strided_copy(DeviceType type, DeviceStridedCopyFn fn) {
  table<DeviceStridedCopyFn>()[static_cast<size_t>(type)] = fn;
}
DeviceStridedCopyFn device_strided_copy(DeviceType type) {
  return table<DeviceStridedCopyFn>()[static_cast<size_t>(type)];
}

void register_device_concat(DeviceType type, DeviceConcatFn fn) { table<DeviceConcatFn>()[static_cast<size_t>(type)] = fn; }
DeviceConcatFn device_concat(DeviceType type) { return table<DeviceConcatFn>()[static_cast<size_t>(type)]; }

}  // namespace scalpel
