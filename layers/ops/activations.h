#pragma once
// Elementwise activation kernels (no autograd; the differentiable wrappers are relu(), ...,
// gelu() and Activation in layers/functional.h).
//
// Every activation is a pair of scalar functions in activations.cpp: value f(x) and
// backward g * f'(x), with PyTorch's choice at the kinks (relu'(0) = 0, relu6'(0) = relu6'(6) = 0,
// hardswish'(-3) = -0.5, hardswish'(3) = 1.5, hardsigmoid' = 0 at +-3).
// Inputs may be any strided float32/float64 CPU view; outputs are new contiguous tensors.
#include "tensor/tensor.h"

namespace scalpel::ops {

enum class ActivationKind { ReLU, ReLU6, LeakyReLU, SiLU, Sigmoid, Tanh, HardSwish, HardSigmoid, GELU, GELUTanh };

// y = f(x). `slope` is the negative slope of LeakyReLU (ignored otherwise).
Tensor activation_forward(ActivationKind kind, const Tensor& x, double slope = 0.0);
// gx = gy * f'(x) (exactly 0 where f' is 0, even for a non-finite gy); gy and x have the
// same shape and dtype.
Tensor activation_backward(ActivationKind kind, const Tensor& gy, const Tensor& x, double slope = 0.0);

}  // namespace scalpel::ops

namespace scalpel::nn {
// The tanh approximation of GELU (PyTorch's approximate="tanh"):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Differentiable.
Tensor gelu_tanh(const Tensor& x);
}  // namespace scalpel::nn
