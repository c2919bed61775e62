#pragma once
// Tensor-level entry points of the CUDA backend: init() registers each of them in the device
// dispatch table (tensor/backend.h, which holds their contracts), through which the tensor and
// layer ops reach them; nothing above this library names them. Each function takes tensors on one
// CUDA device (cuda or cuda-emu), checks that, runs the handwritten kernels on the device's
// default stream and returns new contiguous tensors on the same device. Semantics are the
// CPU reference op's (layers/ops/*, layers/loss.cpp, layers/optim.cpp); shapes were already
// validated by the caller. Inputs may be strided views (they are gathered first); float32 only.
//
// Forward functions live in tensor_ops.cpp, backward ones in tensor_ops_backward.cpp, the
// optimizer updates in tensor_ops_optim.cpp.
#include <string>
#include <vector>

#include "cuda/backend.h"
#include "cuda/conv_library.h"
#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace scalpel::cuda {

// Registers the cuda-emu (and, with nvcc, the cuda) allocator and device copy with
// tensor/storage.h and every function below in the dispatch table (tensor/backend.h). Idempotent. Called explicitly (CLI start-up,
// tests) because static initializers in a static library are dropped by the linker when
// nothing references their object file.
void init();

using backend::BatchNormGrads;
using backend::BatchNormTrainOutput;
using backend::Conv2dFilterGrads;
using backend::Conv2dOutput;
using backend::DropoutOutput;
using backend::LinearGrads;
using backend::MaxPoolOutput;

// ---- forward ----
// conv2d with symmetric padding; bias may be undefined. Runs the library resolve_conv_library
// picks for this weight and says which.
Conv2dOutput conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dShape& shape);
// y = (x - mean) * invstd * gamma + beta per channel of [N, C, ...] with running statistics.
Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, double eps);
// Training mode: batch statistics of each channel over N and the spatial axes; updates
// running_mean/var in place when defined (PyTorch's momentum rule, unbiased variance).
// save_mean/save_invstd [C] are what batch_norm_backward needs.
BatchNormTrainOutput batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                      Tensor running_mean, Tensor running_var, double momentum,
                                      double eps);
Tensor unary(UnaryOp op, const Tensor& x, double alpha = 0.0);
// out = op(a, b) with NumPy broadcasting; a and b may be any strided views.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// y = scale * x + shift (add_scalar, mul_scalar).
Tensor affine(const Tensor& x, double scale, double shift);
// Sum, mean or max over `axes` (empty = all, negative allowed), as ops::sum/mean/max.
Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdim);
// Index of the maximum along `axis` (int64, first maximum wins), as ops::argmax.
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim);
// Max pooling also returns the argmax of each output within its plane (int32 bits in a
// float32 tensor of y's shape: tensors have no int32 dtype), for max_pool2d_backward.
MaxPoolOutput max_pool2d(const Tensor& x, const Pool2dShape& shape);
Tensor avg_pool2d(const Tensor& x, const Pool2dShape& shape);
// y = x W^T + b; x [..., in], W [out, in], b [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);
// Softmax (or log-softmax) over the last axis.
Tensor softmax_last(const Tensor& x, bool log);
// Per-row cross entropy of logits [N, C] against int64 labels [N] (on the same device, each
// in [0, C): checked here, through a counted copy of the labels to the host).
Tensor cross_entropy_rows(const Tensor& logits, const Tensor& labels);
// Upsampling of [N, C, H, W] to [N, C, out_h, out_w] (bilinear: align_corners=false).
Tensor upsample2d(const Tensor& x, UpsampleMode mode, int64_t out_h, int64_t out_w);
// Constant padding of the last two axes (pad2d); padding is not negative.
Tensor pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right, double value);
// Joins tensors of one rank along `axis` (ops::concat; shapes already checked).
Tensor concat(const std::vector<Tensor>& tensors, int64_t axis);
// Dropout: y = x * keep / (1 - p), keep drawn by a counter-based hash of (seed, index), and
// the uint8 keep mask for dropout_backward.
DropoutOutput dropout(const Tensor& x, double p, uint64_t seed);
// Per-sample factors [n] of stochastic depth: 0 with probability p, else 1 / (1 - p).
Tensor drop_path_scale(int64_t n, double p, uint64_t seed, Device device);

// ---- backward (tensor_ops_backward.cpp) ----
// Every function returns the gradients of the forward's inputs from dy (the gradient of its
// output), contiguous, on the same device; a gradient that is not wanted stays undefined.
// The convolution's `engine` is the one its forward ran (cuda/conv_library.h).
Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dShape& shape,
                            ConvLibrary library = ConvLibrary::Handwritten);
Conv2dFilterGrads conv2d_backward_filter(const Tensor& dy, const Tensor& x,
                                         const Conv2dShape& shape, bool need_w, bool need_bias,
                                         ConvLibrary library = ConvLibrary::Handwritten);
LinearGrads linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, bool need_x,
                            bool need_w, bool need_bias);
// Training mode, from batch_norm_train's saved statistics.
BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   bool need_gamma, bool need_beta);
// Evaluation mode, from the running statistics the forward used.
BatchNormGrads batch_norm_eval_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                        const Tensor& running_mean, const Tensor& running_var,
                                        double eps, bool need_gamma, bool need_beta);
// dx = dy * f'(x) from the forward input x.
Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, double alpha = 0.0);
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, const Pool2dShape& shape);
Tensor avg_pool2d_backward(const Tensor& dy, const Pool2dShape& shape);
// From the forward output y.
Tensor upsample2d_backward(const Tensor& dy, UpsampleMode mode, int64_t in_h, int64_t in_w);
Tensor softmax_last_backward(const Tensor& y, const Tensor& dy, bool log);
// dlogits = (softmax(logits) - one_hot(labels)) * dloss_rows[row], dloss_rows [N].
Tensor cross_entropy_rows_backward(const Tensor& dloss_rows, const Tensor& logits,
                                   const Tensor& labels);
Tensor dropout_backward(const Tensor& dy, const Tensor& mask, double p);

// ---- fused optimizer updates, in place on param and state (tensor_ops_optim.cpp) ----
// Formulas are layers/optim.cpp's (torch.optim). momentum_buf is undefined when momentum is 0;
// `first` says it was just created (SGD then sets it to the gradient).
void sgd_step(Tensor& param, const Tensor& grad, Tensor momentum_buf, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first);
// Adam, or AdamW when decoupled; `step` counts this parameter's updates from 1.
void adam_step(Tensor& param, const Tensor& grad, Tensor exp_avg, Tensor exp_avg_sq, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled,
               int64_t step);
// RMSprop (PyTorch form, not centered); momentum_buf is undefined when momentum is 0.
void rmsprop_step(Tensor& param, const Tensor& grad, Tensor square_avg, Tensor momentum_buf,
                  double lr, double alpha, double eps, double weight_decay, double momentum);

}  // namespace scalpel::cuda
