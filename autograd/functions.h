#pragma once
// Differentiable tensor functions: the same ops as tensor/ops.h, recording autograd history
// when an input requires grad. Layers and models are written with these (and with the
// layer ops in layers/functional.h); backward closures use the raw ops in tensor/ops.h.
#include <vector>

#include "autograd/autograd.h"
#include "tensor/ops.h"

namespace scalpel {

// ---- elementwise (NumPy broadcasting; gradients are summed back to each input's shape) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor maximum(const Tensor& a, const Tensor& b);  // grad to a where a >= b
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor clamp(const Tensor& a, double lo, double hi);  // grad passes where lo <= a <= hi

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double s);
Tensor operator-(const Tensor& a, double s);
Tensor operator*(const Tensor& a, double s);
Tensor operator/(const Tensor& a, double s);
Tensor operator*(double s, const Tensor& a);

// ---- reductions ----
Tensor sum(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
// Gradient goes to every position equal to the max (split evenly between ties, as PyTorch's
// full reductions do).
Tensor max(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor min(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor var(const Tensor& a, const std::vector<int64_t>& axes = {}, int64_t correction = 1,
           bool keepdim = false);

// ---- linear algebra ----
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- shape (views where possible) ----
Tensor reshape(const Tensor& a, const Shape& shape);
Tensor permute(const Tensor& a, const Shape& order);
Tensor transpose(const Tensor& a, int64_t axis0, int64_t axis1);
Tensor slice(const Tensor& a, int64_t axis, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& a, int64_t axis, int64_t index);
Tensor squeeze(const Tensor& a, int64_t axis);
Tensor unsqueeze(const Tensor& a, int64_t axis);
Tensor expand(const Tensor& a, const Shape& shape);
Tensor flatten(const Tensor& a, int64_t start_axis = 0, int64_t end_axis = -1);
Tensor contiguous(const Tensor& a);
Tensor concat(const std::vector<Tensor>& tensors, int64_t axis);
Tensor stack(const std::vector<Tensor>& tensors, int64_t axis);
// Casts between float dtypes, differentiably.
Tensor to_dtype(const Tensor& a, DType dtype);

}  // namespace scalpel
