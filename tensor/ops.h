#pragma once
// Raw tensor operations (no autograd). Every op here has a plain reference implementation
// in tensor/ops.cpp (readable loops over a strided index); fast paths sit beside it and are
// tested against it. Inputs may be any strided view; outputs are new contiguous tensors
// unless the name ends in '_' (in place). Binary ops broadcast as NumPy does and require
// equal dtypes. Math ops take float32/float64; comparisons return uint8 (0/1).
#include <vector>

#include "tensor/tensor.h"

namespace scalpel::ops {

// Tensors on a device (not the CPU) run the kernels its backend registered in the dispatch
// table (tensor/backend.h): add/sub/mul/div/pow/maximum/minimum, add_scalar/mul_scalar,
// sum/mean/max, argmax and concat. The other ops are CPU-only and say so.

// ---- broadcasting ----
Shape broadcast_shapes(const Shape& a, const Shape& b);  // throws naming both shapes
// Sums `t` over broadcast axes so the result has `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& t, const Shape& shape);

// ---- elementwise binary ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
Tensor pow_scalar(const Tensor& a, double exponent);
// a += alpha * b (b broadcast to a's shape), in place.
void add_(Tensor& a, const Tensor& b, double alpha = 1.0);

// ---- comparisons (uint8 results) ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
// cond ? a : b, with cond uint8 and all three broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- elementwise unary ----
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor sign(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor clamp(const Tensor& a, double lo, double hi);  // use +-infinity for one-sided
// Applies fn(x) elementwise (float32/float64); the building block for activations.
template <typename Fn> Tensor map(const Tensor& a, Fn fn);

// ---- reductions ----
// `axes` may be empty (= all axes) and may hold negative values; keepdim keeps size-1 axes.
Tensor sum(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor max(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor min(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
// Variance; correction 1 = unbiased (PyTorch default), 0 = population.
Tensor var(const Tensor& a, const std::vector<int64_t>& axes = {}, int64_t correction = 1,
           bool keepdim = false);
Tensor argmax(const Tensor& a, int64_t axis, bool keepdim = false);  // int64, first max wins
Tensor argmin(const Tensor& a, int64_t axis, bool keepdim = false);

// ---- linear algebra ----
// a [..., M, K] x b [..., K, N] -> [..., M, N] with broadcast batch axes. 1-D operands are
// promoted as NumPy does.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- joining and filling ----
Tensor concat(const std::vector<Tensor>& tensors, int64_t axis);
Tensor stack(const std::vector<Tensor>& tensors, int64_t axis);
// labels (int64, any shape) -> float [..., num_classes]; throws naming a label out of range.
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype = DType::F32);

// ---- comparisons for tests ----
// max |a - b| over all elements (shapes must match).
double max_abs_diff(const Tensor& a, const Tensor& b);
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

}  // namespace scalpel::ops

#include "tensor/ops_inl.h"
