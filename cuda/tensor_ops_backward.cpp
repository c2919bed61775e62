// Backward entry points of the CUDA backend (contracts in tensor/backend.h): each allocates
// the wanted gradients on the device and runs the matching handwritten kernels.
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

LinearGrads linear_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& w_in, bool need_x,
                            bool need_w, bool need_bias) {
  const Tensor dy = dense(dy_in), x = dense(x_in), w = dense(w_in);
  const Stream s = stream_for("linear backward", {&dy, &x, &w});
  const int64_t in_f = w.size(1), out_f = w.size(0), M = x.numel() / std::max<int64_t>(in_f, 1);
  LinearGrads g;
  if (need_x) {  // dx [M, in] = dy [M, out] x W [out, in]
    g.x = empty_like_device(x.shape(), dy);
    SCALPEL_CUDA_CALL(s, gemm, detail::gemm_config(s), false, false, M, in_f, out_f, 1.0f, in(dy), out_f, in(w),
                      in_f, 0.0f, out(g.x), in_f);
  }
  if (need_w) {  // dW [out, in] = dy^T [out, M] x x [M, in]
    g.w = empty_like_device(w.shape(), dy);
    SCALPEL_CUDA_CALL(s, gemm, detail::gemm_config(s), true, false, out_f, in_f, M, 1.0f, in(dy), out_f, in(x),
                      in_f, 0.0f, out(g.w), in_f);
  }
  if (need_bias) {  // db [out] = sum of dy's rows
    g.bias = empty_like_device({out_f}, dy);
    SCALPEL_CUDA_CALL(s, reduce, ReduceOp::Sum, in(dy), out(g.bias), 1, M, out_f);
  }
  return g;
}

// [n, c, hw] of an [N, C, ...] tensor.
static void nchw(const Tensor& x, int64_t& n, int64_t& c, int64_t& hw) {
  n = x.size(0), c = x.size(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
}

BatchNormGrads batch_norm_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& gamma_in,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   bool need_gamma, bool need_beta) {
  const Tensor dy = dense(dy_in), x = dense(x_in), gamma = dense(gamma_in);
  const Stream s = stream_for("batch_norm backward", {&dy, &x, &gamma, &save_mean, &save_invstd});
  int64_t n, c, hw;
  nchw(x, n, c, hw);
  BatchNormGrads g{empty_like_device(x.shape(), dy), Tensor(), Tensor()};
  if (need_gamma) g.gamma = empty_like_device({c}, dy);
  if (need_beta) g.beta = empty_like_device({c}, dy);
  SCALPEL_CUDA_CALL(s, batch_norm_backward, in(x), in(dy), in(gamma), in(save_mean), in(save_invstd),
                    out(g.x), out(g.gamma), out(g.beta), n, c, hw);
  return g;
}

BatchNormGrads batch_norm_eval_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& gamma_in,
                                        const Tensor& running_mean, const Tensor& running_var,
                                        double eps, bool need_gamma, bool need_beta) {
  const Tensor dy = dense(dy_in), x = dense(x_in), gamma = dense(gamma_in);
  const Stream s = stream_for("batch_norm backward", {&dy, &x, &gamma, &running_mean, &running_var});
  int64_t n, c, hw;
  nchw(x, n, c, hw);
  BatchNormGrads g{empty_like_device(x.shape(), dy), Tensor(), Tensor()};
  if (need_gamma) g.gamma = empty_like_device({c}, dy);
  if (need_beta) g.beta = empty_like_device({c}, dy);
  SCALPEL_CUDA_CALL(s, batch_norm_eval_backward, in(x), in(dy), in(gamma), in(dense(running_mean)),
                    in(dense(running_var)), out(g.x), out(g.gamma), out(g.beta), n, c, hw,
                    static_cast<float>(eps));
  return g;
}

Tensor unary_backward(UnaryOp op, const Tensor& x_in, const Tensor& dy_in, double alpha) {
  const Tensor x = dense(x_in), dy = dense(dy_in);
  const Stream s = stream_for("activation backward", {&x, &dy});
  Tensor dx = empty_like_device(x.shape(), dy);
  SCALPEL_CUDA_CALL(s, unary_backward, op, static_cast<float>(alpha), in(x), in(dy), out(dx), x.numel());
  return dx;
}

Tensor max_pool2d_backward(const Tensor& dy_in, const Tensor& indices, const Pool2dShape& shape) {
  const Tensor dy = dense(dy_in);
  const Stream s = stream_for("max_pool2d backward", {&dy, &indices});
  Tensor dx = empty_like_device({shape.n, shape.c, shape.h, shape.w}, dy);
  SCALPEL_CUDA_CALL(s, max_pool2d_backward, shape, in(dy), static_cast<const int32_t*>(indices.raw_data()),
                    out(dx));
  return dx;
}

Tensor avg_pool2d_backward(const Tensor& dy_in, const Pool2dShape& shape) {
  const Tensor dy = dense(dy_in);
  const Stream s = stream_for("avg_pool2d backward", {&dy});
  Tensor dx = empty_like_device({shape.n, shape.c, shape.h, shape.w}, dy);
  SCALPEL_CUDA_CALL(s, avg_pool2d_backward, shape, in(dy), out(dx));
  return dx;
}

Tensor upsample2d_backward(const Tensor& dy_in, UpsampleMode mode, int64_t in_h, int64_t in_w) {
  const Tensor dy = dense(dy_in);
  const Stream s = stream_for("upsample backward", {&dy});
  Tensor dx = empty_like_device({dy.size(0), dy.size(1), in_h, in_w}, dy);
  SCALPEL_CUDA_CALL(s, upsample2d_backward, mode, in(dy), out(dx), dy.size(0) * dy.size(1), in_h, in_w,
                    dy.size(2), dy.size(3));
  return dx;
}

Tensor softmax_last_backward(const Tensor& y_in, const Tensor& dy_in, bool log) {
  const Tensor y = dense(y_in), dy = dense(dy_in);
  const Stream s = stream_for(log ? "log_softmax backward" : "softmax backward", {&y, &dy});
  const int64_t cols = y.size(-1), rows = y.numel() / std::max<int64_t>(cols, 1);
  Tensor dx = empty_like_device(y.shape(), dy);
  SCALPEL_CUDA_CALL(s, softmax_backward, in(y), in(dy), out(dx), rows, cols, log);
  return dx;
}

Tensor cross_entropy_rows_backward(const Tensor& dloss_rows, const Tensor& logits_in, const Tensor& labels_in) {
  const Tensor logits = dense(logits_in), labels = dense(labels_in);
  const Stream s = stream_for("cross_entropy backward", {&logits, &dloss_rows});
  const int64_t rows = logits.size(0), cols = logits.size(1);
  // softmax - one_hot with unit scale, then each row times its incoming gradient (broadcast).
  Tensor unit = empty_like_device(logits.shape(), logits);
  SCALPEL_CUDA_CALL(s, cross_entropy_backward, in(logits), static_cast<const int64_t*>(labels.raw_data()),
                    out(unit), rows, cols, 1.0f);
  return ops::mul(unit, dloss_rows.reshape({rows, 1}));
}

Tensor dropout_backward(const Tensor& dy_in, const Tensor& mask, double p) {
  const Tensor dy = dense(dy_in);
  const Stream s = stream_for("dropout backward", {&dy});
  Tensor dx = empty_like_device(dy.shape(), dy);
  SCALPEL_CUDA_CALL(s, dropout_backward, in(dy), static_cast<const uint8_t*>(mask.raw_data()), out(dx),
                    dy.numel(), static_cast<float>(p));
  return dx;
}

// This file's ops in the dispatch table (tensor/backend.h), one line per op.
void detail::register_backward_kernels(DeviceType type) {
  using backend::Op;
  using backend::register_kernel;
  register_kernel<Op::conv2d_backward_data>(type, conv2d_backward_data);
  register_kernel<Op::conv2d_backward_filter>(type, conv2d_backward_filter);
  register_kernel<Op::batch_norm_backward>(type, batch_norm_backward);
  register_kernel<Op::batch_norm_eval_backward>(type, batch_norm_eval_backward);
  register_kernel<Op::unary_backward>(type, unary_backward);
  register_kernel<Op::max_pool2d_backward>(type, max_pool2d_backward);
  register_kernel<Op::avg_pool2d_backward>(type, avg_pool2d_backward);
  register_kernel<Op::linear_backward>(type, linear_backward);
  register_kernel<Op::softmax_last_backward>(type, softmax_last_backward);
  register_kernel<Op::cross_entropy_rows_backward>(type, cross_entropy_rows_backward);
  register_kernel<Op::upsample2d_backward>(type, upsample2d_backward);
  register_kernel<Op::dropout_backward>(type, dropout_backward);
}

}  // namespace scalpel::cuda
