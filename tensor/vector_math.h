#pragma once
// Vectorized float math over contiguous arrays: exp, sigmoid, SiLU and the derivatives the
// backward passes need. These replace a scalar libm expf per element in the SiLU/sigmoid
// activations and in the GEMM epilogue (efficientnet's 49 SiLU and 16 sigmoid layers).
//
// Each function exists at three levels (tensor/cpu_isa.h), chosen at run time with the CPU's
// features:
//   avx512    16 lanes (vector_math_avx512.cpp), tails through masked loads/stores
//   avx2       8 lanes (vector_math_avx2.cpp), tails through maskload/maskstore
//   baseline  plain loops over libm's expf (vector_math.cpp); runs on any x86-64
// The vector levels never fall back to scalar code for a tail, so an element's result does
// not depend on its position in the array.
//
// exp (vector levels): x is clamped to [-104, 89] (NaN passes through), x = n ln2 + r with
// n = round(x / ln2) and a two-part ln2 (Cody-Waite, with FMA), |r| <= ln2/2, then
// e^r ~ 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4), a minimax fit of ours (relative
// error 3.8e-9 with the coefficients rounded to float), scaled by 2^n (AVX-512: scalef; AVX2:
// two exact power-of-two factors, so denormal results are rounded once).
// Measured against double-precision std::exp over every float in [-110, 110] (2026-11-22,
// AVX-512 and AVX2 alike): max relative error 8.5e-8 (0.72 FLT_EPSILON, 1.01 ulp; libm's
// expf: 0.50 ulp) where the result is a normal float; denormal results (x < -87.34) within
// 0.75 x 2^-149. exp(-inf) = 0, exp(x >= 88.73) = +inf, NaN -> NaN, exp(+-0) = 1 exactly.
//
// sigmoid and SiLU use e = exp(-|x|) <= 1 and d = 1 / (1 + e), so nothing overflows:
//   sigmoid(x) = x >= 0 ? d : e d,           1 - sigmoid(x) = x >= 0 ? e d : d,
//   silu(x) = x sigmoid(x). Both are exact at the extremes: sigmoid(+-1e30) = 1 / 0,
//   silu(1e30) = 1e30, sigmoid(+-inf) = 1 / 0, silu(+inf) = +inf; silu(-inf) = NaN as
//   x * sigmoid(x) = -inf * 0 (PyTorch and layers/ops/activations.cpp agree). NaN -> NaN.
// Measured (same sweep, float64 formulas as reference): sigmoid 2.0e-7 relative; silu 2.4e-7
// where sigmoid(x) is a normal float (x >= -87.33; below, its denormal rounding times |x|:
// <= |x| 2^-149 absolute); sigmoid_backward 3.3e-7; silu_backward 2.6e-7 relative to
// s (1 + |x (1 - s)|) (it crosses zero near x = -1.28). The scalar level over libm measures
// the same to within 0.3e-7: the formulas' roundings, not the exp, dominate.
//
// All functions: n >= 0 elements; an output may be the same array as an input (in place),
// but must not partially overlap one. Gradients are written, not accumulated.
#include <cstdint>

#include "tensor/cpu_isa.h"

namespace scalpel::vecmath {

// One level's kernels (tests and benchmarks compare levels through this table).
struct Kernels {
  // y[i] = exp(x[i])
  void (*exp)(const float* x, float* y, int64_t n);
  // y[i] = 1 / (1 + exp(-x[i]))
  void (*sigmoid)(const float* x, float* y, int64_t n);
  // y[i] = x[i] * sigmoid(x[i])
  void (*silu)(const float* x, float* y, int64_t n);
  // grad_x[i] = grad_y[i] * s (1 - s), s = sigmoid(x[i]); from the input x, not the output
  void (*sigmoid_backward)(const float* x, const float* grad_y, float* grad_x, int64_t n);
  // grad_x[i] = grad_y[i] * s (1 + x[i] (1 - s)), s = sigmoid(x[i])
  void (*silu_backward)(const float* x, const float* grad_y, float* grad_x, int64_t n);
};

// The kernels of `level`; throws scalpel::Error when this CPU cannot run it.
const Kernels& kernels(Isa level);
const Kernels& best_kernels();  // kernels(best_isa()), looked up once

// The widest level's kernels, the ones the library calls.
inline void exp(const float* x, float* y, int64_t n) { best_kernels().exp(x, y, n); }
inline void sigmoid(const float* x, float* y, int64_t n) { best_kernels().sigmoid(x, y, n); }
inline void silu(const float* x, float* y, int64_t n) { best_kernels().silu(x, y, n); }
inline void sigmoid_backward(const float* x, const float* grad_y, float* grad_x, int64_t n) {
  best_kernels().sigmoid_backward(x, grad_y, grad_x, n);
}
inline void silu_backward(const float* x, const float* grad_y, float* grad_x, int64_t n) {
  best_kernels().silu_backward(x, grad_y, grad_x, n);
}

}  // namespace scalpel::vecmath
