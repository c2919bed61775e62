#pragma once
// Vectorized float math over contiguous arrays: exp, sigmoid, SiLU and the derivatives the
// backward passes need. These replace a scalar libm expf per element in the SiLU/sigmoid
// activations and in the GEMM epilogue (efficientnet's 49 SiLU and 16 sigmoid layers).
//
// Each function exists at three levels, chosen at run time with the CPU's features:
//   avx512  16 lanes (target("avx512f")), tails through masked loads/stores
//   avx2     8 lanes (target("avx2,fma")), tails through maskload/maskstore
//   scalar   plain loops over libm's expf; runs on any x86-64 (and is what the others are
//            tested against besides float64)
// The vector levels never fall back to scalar code for a tail, so an element's result does
// not depend on its position in the array.
//
// exp (vector levels): x is clamped to [-104, 89] (NaN passes through), x = n ln2 + r with
// n = round(x / ln2) and a two-part ln2 (Cody-Waite, with FMA), |r| <= ln2/2, then
// e^r ~ 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4), a minimax fit of ours (relative
// error 3.8e-9 with the coefficients rounded to float), scaled by 2^n (AVX-512: scalef; AVX2:
// two exact power-of-two factors, so denormal results are rounded once).
// Error: within 2 ulp of double-precision std::exp where the result is a normal float (what
// tests/tensor/test_vector_math.cpp enforces), denormal results (x < -87.34) within 1 ulp of
// the denormal grid (2^-149); exp(-inf) = 0, exp(x >= 88.73) = +inf, exp(+inf) = +inf,
// NaN -> NaN, exp(+-0) = 1 exactly.
//
// sigmoid and SiLU use e = exp(-|x|) <= 1 and d = 1 / (1 + e), so nothing overflows:
//   sigmoid(x) = x >= 0 ? d : e d,           1 - sigmoid(x) = x >= 0 ? e d : d,
//   silu(x) = x sigmoid(x). Both are exact at the extremes: sigmoid(+-1e30) = 1 / 0,
//   silu(1e30) = 1e30, sigmoid(+-inf) = 1 / 0, silu(+inf) = +inf; silu(-inf) = NaN as
//   x * sigmoid(x) = -inf * 0 (PyTorch and layers/ops/activations.cpp agree). NaN -> NaN.
// Error: sigmoid and silu within 2 ulp of float64 where the result is a normal float.
//
// All functions: n >= 0 elements; an output may be the same array as an input (in place),
// but must not partially overlap one. Gradients are written, not accumulated.
#include <cstdint>

namespace scalpel::vecmath {

enum class Simd { scalar, avx2, avx512 };

const char* simd_name(Simd level);
bool cpu_supports(Simd level);
Simd best_simd();  // the widest level this CPU runs, what the free functions below use

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
const Kernels& kernels(Simd level);
const Kernels& best_kernels();  // kernels(best_simd()), looked up once

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
