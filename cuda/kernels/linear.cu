// y = x W^T + b (nn::linear, layers/ops/linear.cpp) and its backward on the device: entry
// points and registration only, since both directions are GEMMs (kernels/gemm.cu) plus a bias
// copy and a row sum (shared launchers, cuda/kernels.inc).
#include "cuda/compat.cuh"

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in) {
  const Tensor x = dense(x_in), w = dense(w_in), bias = dense(bias_in);
  const Stream s = stream_for("linear", {&x, &w, &bias});
  const int64_t in_f = w.size(1), out_f = w.size(0), M = x.numel() / std::max<int64_t>(in_f, 1);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor y = empty_like_device(out_shape, x);
  if (y.numel() == 0) return y;
  if (bias.defined()) {  // y starts as the bias rows (a stride-0 source), then GEMM accumulates
    SCALPEL_CUDA_CALL(s, copy_2d, in(bias), 0, out(y), out_f, M, out_f);
  }
  SCALPEL_CUDA_CALL(s, gemm, gemm_config(s), false, true, M, out_f, in_f, 1.0f, in(x), in_f, in(w),
                    in_f, bias.defined() ? 1.0f : 0.0f, out(y), out_f);
  return y;
}

LinearGrads linear_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& w_in, bool need_x,
                            bool need_w, bool need_bias) {
  const Tensor dy = dense(dy_in), x = dense(x_in), w = dense(w_in);
  const Stream s = stream_for("linear backward", {&dy, &x, &w});
  const int64_t in_f = w.size(1), out_f = w.size(0), M = x.numel() / std::max<int64_t>(in_f, 1);
  LinearGrads g;
  if (need_x) {  // dx [M, in] = dy [M, out] x W [out, in]
    g.x = empty_like_device(x.shape(), dy);
    SCALPEL_CUDA_CALL(s, gemm, gemm_config(s), false, false, M, in_f, out_f, 1.0f, in(dy), out_f, in(w),
                      in_f, 0.0f, out(g.x), in_f);
  }
  if (need_w) {  // dW [out, in] = dy^T [out, M] x x [M, in]
    g.w = empty_like_device(w.shape(), dy);
    SCALPEL_CUDA_CALL(s, gemm, gemm_config(s), true, false, out_f, in_f, M, 1.0f, in(dy), out_f, in(x),
                      in_f, 0.0f, out(g.w), in_f);
  }
  if (need_bias) {  // db [out] = sum of dy's rows
    g.bias = empty_like_device({out_f}, dy);
    SCALPEL_CUDA_CALL(s, reduce, ReduceOp::Sum, in(dy), out(g.bias), 1, M, out_f);
  }
  return g;
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(linear) {
  backend::register_kernel<backend::Op::linear>(type, linear);
  backend::register_kernel<backend::Op::linear_backward>(type, linear_backward);
}
#endif
