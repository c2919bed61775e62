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

Tensor conv2d_backward_data(const Tensor& dy_in, const Tensor& w_in, const Conv2dShape& shape,
                            ConvLibrary engine) {
  const Tensor dy = dense(dy_in), w = dense(w_in);
  const Stream s = stream_for("conv2d backward", {&dy, &w});
  Tensor dx = empty_like_device({shape.n, shape.c, shape.h, shape.w}, dy);
  if (engine == ConvLibrary::Cudnn) {
    if (dx.numel() > 0) cudnn::conv2d_backward_data(s, shape, in(w), in(dy), out(dx));
    return dx;
  }
  Tensor workspace = empty_like_device({shape.depthwise() ? 1 : conv2d_workspace_floats(shape)}, dy);
  if (dx.numel() > 0) SCALPEL_CUDA_CALL(s, conv2d_backward_data, shape, in(w), in(dy), out(dx), out(workspace),
                                         detail::gemm_config(s));
  return dx;
}

Conv2dFilterGrads conv2d_backward_filter(const Tensor& dy_in, const Tensor& x_in,
                                         const Conv2dShape& shape, bool need_w, bool need_bias,
                                         ConvLibrary engine) {
  const Tensor dy = dense(dy_in), x = dense(x_in);
  const Stream s = stream_for("conv2d backward", {&dy, &x});
  Conv2dFilterGrads g;
  if (need_bias) g.bias = empty_like_device({shape.k}, dy);
  const int64_t hw = shape.out_h() * shape.out_w();
  if (!need_w) {
    if (need_bias) SCALPEL_CUDA_CALL(s, conv2d_bias_backward, in(dy), out(g.bias), shape.n, shape.k, hw);
    return g;
  }
  g.w = empty_like_device({shape.k, shape.c / shape.groups, shape.r, shape.s}, dy);
  if (engine == ConvLibrary::Cudnn) {
    cudnn::conv2d_backward_filter(s, shape, in(x), in(dy), out(g.w), out(g.bias));
    return g;
  }
  Tensor workspace = empty_like_device({shape.depthwise() ? 1 : conv2d_workspace_floats(shape)}, dy);
  SCALPEL_CUDA_CALL(s, conv2d_backward_filter, shape, in(x), in(dy), out(g.w), out(g.bias), out(workspace),
                    detail::gemm_config(s));
  return g;
}

// The convolution's backward entry points in the dispatch table.
void detail::register_backward_kernels(DeviceType type) {
  using backend::Op;
  using backend::register_kernel;
  register_kernel<Op::conv2d_backward_data>(type, conv2d_backward_data);
  register_kernel<Op::conv2d_backward_filter>(type, conv2d_backward_filter);
}

}  // namespace scalpel::cuda
