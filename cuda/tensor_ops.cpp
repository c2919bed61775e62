// The CUDA backend's start-up (init: allocators, copies, every kernel file's registration) and
// the convolution's forward entry point.
#include <algorithm>
#include <cstring>

#include "cuda/conv_library.h"
#include "cuda/cudnn.h"
#include "cuda/tensor_ops_internal.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

namespace scalpel::cuda {

using detail::dense;
using detail::empty_like_device;
using detail::in;
using detail::out;
using detail::stream_for;

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
    detail::register_forward_kernels(type);
    detail::register_backward_kernels(type);
  }
}

Conv2dOutput conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in, const Conv2dGeometry& g) {
  const Tensor x = dense(x_in), w = dense(w_in), bias = dense(bias_in);
  const Stream s = stream_for("conv2d", {&x, &w, &bias});
  Tensor y = Tensor::empty({g.batch, g.out_channels, g.out_h, g.out_w}, DType::F32, x.device());
  // The engine switch: cuDNN when asked for globally or for this layer (cuda/conv_library.h).
  if (resolve_conv_library(w_in, x.device()) == ConvLibrary::Cudnn) {
    cudnn::conv2d_forward(s, g, in(x), in(w), in(bias), out(y));
    return {y, ConvLibrary::Cudnn};
  }
  // The depthwise kernel needs no column buffer; im2col needs one sample and group's.
  const bool depthwise = g.is_depthwise_one_filter();
  Tensor workspace = Tensor::empty({depthwise ? 1 : conv2d_workspace_floats(g)}, DType::F32, x.device());
  SCALPEL_CUDA_CALL(s, conv2d_forward, g, in(x), in(w), in(bias), out(y), out(workspace),
                    ConvConfig{CudaConvAlgorithm::Auto, detail::gemm_config(s)});
  return {y, ConvLibrary::Handwritten};
}

// The convolution's entry points in the dispatch table (the other ops register themselves in
// their kernel files, cuda/kernels/*.cu).
void detail::register_forward_kernels(DeviceType type) {
  using backend::Op;
  using backend::register_kernel;
  register_kernel<Op::conv2d>(type, conv2d);
}

}  // namespace scalpel::cuda
