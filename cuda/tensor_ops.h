#pragma once
// Tensor-level entry points of the CUDA backend: what the layer ops call in their device
// branch (`if (!x.device().is_cpu()) return cuda::...`). Each function takes tensors on one
// CUDA device (cuda or cuda-emu), checks that, runs the handwritten kernels on the device's
// default stream and returns a new contiguous tensor on the same device. Semantics are the
// CPU reference op's (layers/ops/*); shapes were already validated by the caller.
//
// Forward only so far: the layer ops record a backward that throws (see not_wired).
#include <string>

#include "cuda/backend.h"
#include "tensor/tensor.h"

namespace scalpel::cuda {

// Registers the cuda-emu (and, with nvcc, the cuda) allocator and device copy with
// tensor/storage.h, and the elementwise ops with tensor/ops.h. Idempotent. Called explicitly
// (CLI start-up, tests) because static initializers in a static library are dropped by the
// linker when nothing references their object file.
void init();

// Throws scalpel::Error "<op>: not implemented on <device> yet (CUDA backend)"; the layer ops
// call it for ops (or option combinations) without a device branch, never falling back to CPU.
[[noreturn]] void not_wired(const std::string& op, Device device);

// conv2d with symmetric padding; bias may be undefined.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dShape& shape);
// y = (x - mean) * invstd * gamma + beta per channel of [N, C, ...] with running statistics.
Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, double eps);
Tensor unary(UnaryOp op, const Tensor& x, double alpha = 0.0);
// out = op(a, b) with NumPy broadcasting.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor max_pool2d(const Tensor& x, const Pool2dShape& shape);
Tensor avg_pool2d(const Tensor& x, const Pool2dShape& shape);
// y = x W^T + b; x [..., in], W [out, in], b [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);
// Softmax (or log-softmax) over the last axis.
Tensor softmax_last(const Tensor& x, bool log);

}  // namespace scalpel::cuda
