#include "tensor/backend.h"

#include <array>

#include "tensor/error.h"

namespace scalpel::backend {

namespace {
constexpr size_t kDeviceTypes = 3;  // DeviceType::CPU, CUDA, CUDAEmu
using Table = std::array<std::array<detail::AnyFn, static_cast<size_t>(Op::count)>, kDeviceTypes>;
Table& table() {
  static Table slots{};
  return slots;
}
}  // namespace

void detail::store(Op op, DeviceType type, AnyFn fn) {
  table()[static_cast<size_t>(type)][static_cast<size_t>(op)] = fn;
}

detail::AnyFn detail::lookup(Op op, const char* name, Device device) {
  AnyFn fn = table()[static_cast<size_t>(device.type)][static_cast<size_t>(op)];
  if (fn == nullptr) not_implemented(name, device);
  return fn;
}

void not_implemented(const std::string& what, Device device) {
  fail("{}: not implemented on {} yet (CUDA backend); run it with --device cpu", what, device.str());
}

}  // namespace scalpel::backend
