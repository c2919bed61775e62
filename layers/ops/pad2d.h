#pragma once
// Constant padding of the last two axes (no autograd; see pad2d() in layers/functional.h).
// x is [..., H, W] (any rank >= 2, any dtype, CPU); padding sides must be >= 0.
#include "layers/functional.h"

namespace scalpel::ops {

// y [..., top + H + bottom, left + W + right]: `value` around a copy of x.
Tensor pad2d_forward(const Tensor& x, const nn::Padding2d& padding, double value);
// gx [..., H, W]: the interior of gy (the border got a constant, so its gradient is dropped).
Tensor pad2d_backward(const Tensor& gy, const nn::Padding2d& padding);

}  // namespace scalpel::ops
