#pragma once
// The device dispatch table: one entry per op and device type, filled by each device backend
// at start-up (cuda::init registers the CUDA kernels for cuda and cuda-emu), read by the raw
// tensor ops (tensor/ops.cpp) and the layer ops (layers/) for tensors that are not on the CPU:
//
//   if (!x.device().is_cpu()) return backend::run<Op::linear>(x.device(), x, w, bias);
//
// Like ggml's backend interface or dlib's cpu/cuda twins: the caller names the op, never the
// backend, and the dependency points one way (a backend links against this library). The CPU
// code stays at the call site (it is the reference every backend is checked against).
// An op its device has no kernel for throws scalpel::Error naming the op and the device;
// nothing falls back to the CPU.
//
// Contracts common to every entry: tensors on one device of the backend (checked there),
// float32 (int64 labels, uint8 masks where said), inputs may be strided views, outputs are new
// contiguous tensors on that device unless the entry updates in place. Shapes were validated by
// the caller, whose CPU op defines the semantics. A gradient that is not wanted stays undefined.
//
// Adding an op: one enumerator in `Op`, one SCALPEL_DEVICE_OP line with its signature and a
// one-line contract, the backend's kernel and its register_kernel line (for CUDA both in
// cuda/kernels/<op>.cu; docs/CONTRIBUTING.md has the whole checklist).
#include <string>
#include <utility>
#include <vector>

#include "tensor/conv2d_geometry.h"
#include "tensor/op_params.h"
#include "tensor/tensor.h"

namespace scalpel::backend {

// Multi-output results.
struct Conv2dOutput {
  Tensor y;
  ConvLibrary library;  // what ran; the backward passes hand it back
};
struct Conv2dFilterGrads {
  Tensor w, bias;
};
struct BatchNormTrainOutput {
  Tensor y, save_mean, save_invstd;
};
struct BatchNormGrads {
  Tensor x, gamma, beta;
};
struct LinearGrads {
  Tensor x, w, bias;
};
// Max pooling also returns the argmax of each output within its plane (int32 bits in a
// float32 tensor of y's shape: tensors have no int32 dtype).
struct MaxPoolOutput {
  Tensor y, indices;
};
struct DropoutOutput {
  Tensor y, mask;  // mask: uint8 keep flags
};

// Enumerators are spelled like the functions they name: the name is what errors print.
enum class Op : uint8_t {
  conv2d, conv2d_backward_data, conv2d_backward_filter,
  batch_norm_eval, batch_norm_train, batch_norm_backward, batch_norm_eval_backward,
  unary, unary_backward, binary, affine, reduce, argmax, strided_copy, concat,
  max_pool2d, max_pool2d_backward, avg_pool2d, avg_pool2d_backward,
  linear, linear_backward, softmax_last, softmax_last_backward,
  cross_entropy_rows, cross_entropy_rows_backward,
  upsample2d, upsample2d_backward, pad2d,
  dropout, dropout_backward, drop_path_scale,
  sgd_step, adam_step, rmsprop_step,
  count
};

// Each op's function type and printed name.
template <Op op>
struct OpTraits;
#define SCALPEL_DEVICE_OP(op_name, ...)             \
  template <>                                       \
  struct OpTraits<Op::op_name> {                    \
    using Fn = __VA_ARGS__;                         \
    static constexpr const char* name = #op_name;   \
  }

// ---- convolution (tensor/conv2d_geometry.h: any padding, asymmetric and TF SAME included) ----
// bias may be undefined; the backend picks the library (cuda/conv_library.h) and reports it.
SCALPEL_DEVICE_OP(conv2d, Conv2dOutput(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g));
// dx from dy (also conv_transpose2d's forward), with the library the forward ran.
SCALPEL_DEVICE_OP(conv2d_backward_data,
                  Tensor(const Tensor& dy, const Tensor& w, const Conv2dGeometry& g, ConvLibrary library));
SCALPEL_DEVICE_OP(conv2d_backward_filter, Conv2dFilterGrads(const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                                                            bool need_w, bool need_bias, ConvLibrary library));
// ---- batch norm over the channels of [N, C, ...] ----
// y = (x - mean) * invstd * gamma + beta with running statistics (gamma/beta may be undefined).
SCALPEL_DEVICE_OP(batch_norm_eval, Tensor(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& running_mean, const Tensor& running_var, double eps));
// Batch statistics; updates running_mean/var in place when defined (PyTorch's momentum rule,
// unbiased variance); save_mean/save_invstd [C] feed batch_norm_backward.
SCALPEL_DEVICE_OP(batch_norm_train, BatchNormTrainOutput(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                                         Tensor running_mean, Tensor running_var, double momentum,
                                                         double eps));
SCALPEL_DEVICE_OP(batch_norm_backward, BatchNormGrads(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                                      const Tensor& save_mean, const Tensor& save_invstd,
                                                      bool need_gamma, bool need_beta));
SCALPEL_DEVICE_OP(batch_norm_eval_backward, BatchNormGrads(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                                           const Tensor& running_mean, const Tensor& running_var,
                                                           double eps, bool need_gamma, bool need_beta));
// ---- elementwise, reductions, copies ----
// y = op(x); alpha is LeakyRelu's slope. The backward takes the forward input x.
SCALPEL_DEVICE_OP(unary, Tensor(UnaryOp op, const Tensor& x, double alpha));
SCALPEL_DEVICE_OP(unary_backward, Tensor(UnaryOp op, const Tensor& x, const Tensor& dy, double alpha));
// out = op(a, b) with NumPy broadcasting (ops::add ... ops::minimum).
SCALPEL_DEVICE_OP(binary, Tensor(BinaryOp op, const Tensor& a, const Tensor& b));
// y = scale * x + shift (ops::add_scalar, ops::mul_scalar).
SCALPEL_DEVICE_OP(affine, Tensor(const Tensor& x, double scale, double shift));
// Sum, mean or max over `axes` (empty = all, negative allowed), as ops::sum/mean/max.
SCALPEL_DEVICE_OP(reduce, Tensor(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdim));
// int64 index of the maximum along `axis` (first maximum wins), as ops::argmax.
SCALPEL_DEVICE_OP(argmax, Tensor(const Tensor& x, int64_t axis, bool keepdim));
// Tensor::copy_ of a strided view `src` into the contiguous `dst` of the same shape and dtype.
SCALPEL_DEVICE_OP(strided_copy, void(Tensor& dst, const Tensor& src));
// ops::concat (shapes and dtypes already checked).
SCALPEL_DEVICE_OP(concat, Tensor(const std::vector<Tensor>& tensors, int64_t axis));
// ---- pooling, linear, softmax, loss, resampling ----
SCALPEL_DEVICE_OP(max_pool2d, MaxPoolOutput(const Tensor& x, const Pool2dShape& shape));
SCALPEL_DEVICE_OP(max_pool2d_backward, Tensor(const Tensor& dy, const Tensor& indices, const Pool2dShape& shape));
SCALPEL_DEVICE_OP(avg_pool2d, Tensor(const Tensor& x, const Pool2dShape& shape));
SCALPEL_DEVICE_OP(avg_pool2d_backward, Tensor(const Tensor& dy, const Pool2dShape& shape));
// y = x W^T + b; x [..., in], W [out, in], b [out] or undefined.
SCALPEL_DEVICE_OP(linear, Tensor(const Tensor& x, const Tensor& w, const Tensor& bias));
SCALPEL_DEVICE_OP(linear_backward, LinearGrads(const Tensor& dy, const Tensor& x, const Tensor& w, bool need_x,
                                               bool need_w, bool need_bias));
// Softmax (or log-softmax) over the last axis; the backward takes the forward output y.
SCALPEL_DEVICE_OP(softmax_last, Tensor(const Tensor& x, bool log));
SCALPEL_DEVICE_OP(softmax_last_backward, Tensor(const Tensor& y, const Tensor& dy, bool log));
// Per-row cross entropy of logits [N, C] against int64 labels [N] on the same device (each in
// [0, C), checked by the backend); the backward scales each row by dloss_rows [N].
SCALPEL_DEVICE_OP(cross_entropy_rows, Tensor(const Tensor& logits, const Tensor& labels));
SCALPEL_DEVICE_OP(cross_entropy_rows_backward, Tensor(const Tensor& dloss_rows, const Tensor& logits,
                                                      const Tensor& labels));
// [N, C, H, W] to [N, C, out_h, out_w] (bilinear: align_corners=false); the backward to in_h x in_w.
SCALPEL_DEVICE_OP(upsample2d, Tensor(const Tensor& x, UpsampleMode mode, int64_t out_h, int64_t out_w));
SCALPEL_DEVICE_OP(upsample2d_backward, Tensor(const Tensor& dy, UpsampleMode mode, int64_t in_h, int64_t in_w));
// Constant padding of the last two axes; padding is not negative.
SCALPEL_DEVICE_OP(pad2d, Tensor(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right,
                                double value));
// ---- randomness ----
// y = x * keep / (1 - p), keep drawn by a counter-based hash of (seed, index).
SCALPEL_DEVICE_OP(dropout, DropoutOutput(const Tensor& x, double p, uint64_t seed));
SCALPEL_DEVICE_OP(dropout_backward, Tensor(const Tensor& dy, const Tensor& mask, double p));
// Per-sample factors [n] of stochastic depth: 0 with probability p, else 1 / (1 - p).
SCALPEL_DEVICE_OP(drop_path_scale, Tensor(int64_t n, double p, uint64_t seed, Device device));
// ---- fused optimizer updates, in place on param and state (formulas: layers/optim.cpp) ----
// momentum_buf is undefined when momentum is 0; `first`: it was just created.
SCALPEL_DEVICE_OP(sgd_step, void(Tensor& param, const Tensor& grad, Tensor momentum_buf, double lr, double momentum,
                                 double dampening, double weight_decay, bool nesterov, bool first));
// Adam, or AdamW when decoupled; `step` counts this parameter's updates from 1.
SCALPEL_DEVICE_OP(adam_step, void(Tensor& param, const Tensor& grad, Tensor exp_avg, Tensor exp_avg_sq, double lr,
                                  double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                                  int64_t step));
// RMSprop (PyTorch form, not centered).
SCALPEL_DEVICE_OP(rmsprop_step, void(Tensor& param, const Tensor& grad, Tensor square_avg, Tensor momentum_buf,
                                     double lr, double alpha, double eps, double weight_decay, double momentum));
#undef SCALPEL_DEVICE_OP

namespace detail {
using AnyFn = void (*)();
void store(Op op, DeviceType type, AnyFn fn);
// The registered function; throws naming `name` and the device when there is none.
AnyFn lookup(Op op, const char* name, Device device);
}  // namespace detail

// Called by a backend at start-up; replaces an earlier registration.
template <Op op>
void register_kernel(DeviceType type, typename OpTraits<op>::Fn* fn) {
  detail::store(op, type, reinterpret_cast<detail::AnyFn>(fn));
}

// The kernel of `op` on `device`, or Error "<op>: not implemented on <device> ...".
template <Op op>
typename OpTraits<op>::Fn* kernel(Device device) {
  return reinterpret_cast<typename OpTraits<op>::Fn*>(detail::lookup(op, OpTraits<op>::name, device));
}

// Runs `op` on `device`: the one entry point the layer ops use.
template <Op op, typename... Args>
decltype(auto) run(Device device, Args&&... args) {
  return kernel<op>(device)(std::forward<Args>(args)...);
}

// Throws scalpel::Error "<what>: not implemented on <device> yet ...": for an option
// combination a device kernel does not take (the op itself is registered).
[[noreturn]] void not_implemented(const std::string& what, Device device);

}  // namespace scalpel::backend
