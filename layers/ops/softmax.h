#pragma once
// Softmax and log-softmax over one axis (no autograd; see softmax()/log_softmax() in
// layers/functional.h). Numerically stable: the row maximum is subtracted before exp.
// Inputs may be any strided float32/float64 CPU view; outputs are new contiguous tensors.
#include "tensor/tensor.h"

namespace scalpel::ops {

// y = softmax(x) (or log_softmax(x) when `log`) along `axis` (negative counts from the end).
Tensor softmax_forward(const Tensor& x, int64_t axis, bool log);
// Gradient from the forward's output y:
//   softmax:     gx = y * (gy - sum_axis(gy * y))
//   log_softmax: gx = gy - exp(y) * sum_axis(gy)
Tensor softmax_backward(const Tensor& gy, const Tensor& y, int64_t axis, bool log);

}  // namespace scalpel::ops
