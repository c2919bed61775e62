// The convolution's backward entry points (contracts in tensor/backend.h): each allocates the
// wanted gradients on the device and runs the handwritten kernels or cuDNN.
#include <algorithm>

#include "cuda/cudnn.h"
#include "cuda/tensor_ops_internal.h"
#include "tensor/ops.h"

namespace scalpel::cuda {

using detail::dense;
using detail::empty_like_device;
using detail::in;
using detail::out;
using detail::stream_for;

Tensor conv2d_backward_data(const Tensor& dy_in, const Tensor& w_in, const Conv2dGeometry& g, ConvLibrary engine) {
  const Tensor dy = dense(dy_in), w = dense(w_in);
  const Stream s = stream_for("conv2d backward", {&dy, &w});
  Tensor dx = empty_like_device({g.batch, g.in_channels, g.in_h, g.in_w}, dy);
  if (engine == ConvLibrary::Cudnn) {
    if (dx.numel() > 0) cudnn::conv2d_backward_data(s, g, in(w), in(dy), out(dx));
    return dx;
  }
  Tensor workspace = empty_like_device({g.is_depthwise_one_filter() ? 1 : conv2d_workspace_floats(g)}, dy);
  if (dx.numel() > 0)
    SCALPEL_CUDA_CALL(s, conv2d_backward_data, g, in(w), in(dy), out(dx), out(workspace), detail::gemm_config(s));
  return dx;
}

Conv2dFilterGrads conv2d_backward_filter(const Tensor& dy_in, const Tensor& x_in, const Conv2dGeometry& g, bool need_w,
                                         bool need_bias, ConvLibrary engine) {
  const Tensor dy = dense(dy_in), x = dense(x_in);
  const Stream s = stream_for("conv2d backward", {&dy, &x});
  Conv2dFilterGrads grads;
  if (need_bias) grads.bias = empty_like_device({g.out_channels}, dy);
  const int64_t hw = g.out_h * g.out_w;
  if (!need_w) {
    if (need_bias) SCALPEL_CUDA_CALL(s, conv2d_bias_backward, in(dy), out(grads.bias), g.batch, g.out_channels, hw);
    return grads;
  }
  grads.w = empty_like_device({g.out_channels, g.in_per_group(), g.kernel_h, g.kernel_w}, dy);
  if (engine == ConvLibrary::Cudnn) {
    cudnn::conv2d_backward_filter(s, g, in(x), in(dy), out(grads.w), out(grads.bias));
    return grads;
  }
  Tensor workspace = empty_like_device({g.is_depthwise_one_filter() ? 1 : conv2d_workspace_floats(g)}, dy);
  SCALPEL_CUDA_CALL(s, conv2d_backward_filter, g, in(x), in(dy), out(grads.w), out(grads.bias), out(workspace),
                    detail::gemm_config(s));
  return grads;
}

// The convolution's backward entry points in the dispatch table.
void detail::register_backward_kernels(DeviceType type) {
  using backend::Op;
  using backend::register_kernel;
  register_kernel<Op::conv2d_backward_data>(type, conv2d_backward_data);
  register_kernel<Op::conv2d_backward_filter>(type, conv2d_backward_filter);
}

}  // namespace scalpel::cuda
