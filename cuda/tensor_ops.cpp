// The CUDA backend's start-up: allocators, host/device copies and every kernel file's
// registration (the ops' entry points live in their kernel files, cuda/kernels/*.cu).
#include "cuda/tensor_ops_internal.h"
#include "tensor/backend.h"

namespace scalpel::cuda {

namespace detail {

Stream stream_for(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor& first = **tensors.begin();
  const Device device = first.device();
  SCALPEL_CHECK(device.type == DeviceType::CUDA || device.type == DeviceType::CUDAEmu,
                "{}: tensor {} is on {}, not a CUDA device", op, first.str(), device.str());
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    SCALPEL_CHECK(t->device() == device, "{}: tensors on {} and {}; move them to one device first",
                  op, device.str(), t->device().str());
    SCALPEL_CHECK(t->dtype() == DType::F32, "{}: the CUDA backend runs float32 only, got {}", op,
                  dtype_name(t->dtype()));
  }
  return default_stream(device);
}

}  // namespace detail

namespace {

// Tensor::to(device) and copy_ between the host and a CUDA device, through the counted copies.
void tensor_device_copy(void* dst, Device dst_device, const void* src, Device src_device,
                        size_t nbytes) {
  if (dst_device.is_cpu())
    copy_device_to_host(default_stream(src_device), dst, src, nbytes);
  else if (src_device.is_cpu())
    copy_host_to_device(default_stream(dst_device), dst, src, nbytes);
  else {
    SCALPEL_CHECK(dst_device == src_device, "cannot copy between devices {} and {} directly",
                  src_device.str(), dst_device.str());
    copy_device_to_device(default_stream(dst_device), dst, src, nbytes);
  }
}

}  // namespace

void init() {
  register_allocators();
  for (DeviceType type : {DeviceType::CUDAEmu, DeviceType::CUDA}) {
#if !SCALPEL_HAVE_CUDA
    if (type == DeviceType::CUDA) continue;
#endif
    register_device_copy(type, tensor_device_copy);
    detail::register_kernel_files(type);
  }
}

}  // namespace scalpel::cuda
