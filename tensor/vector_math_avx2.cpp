// The AVX2 + FMA (8 lanes) kernels of tensor/vector_math.h. Compiled for the baseline ISA like the rest of the
// project: only the functions marked SCALPEL_TARGET_AVX2 (tensor/cpu_isa.h) use those instructions,
// and vector_math.cpp hands them out only when the CPU has them.
#include <immintrin.h>

#include "tensor/cpu_isa.h"
#include "tensor/vector_math_internal.h"

namespace scalpel::vecmath::detail {
namespace {

[[SCALPEL_TARGET_AVX2]] inline __m256 exp8(__m256 x) {
  // max/min return their second operand when one is NaN: x goes second, so NaN passes.
  x = _mm256_min_ps(_mm256_set1_ps(kExpHi), _mm256_max_ps(_mm256_set1_ps(kExpLo), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kC6), r, _mm256_set1_ps(kC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC2));
  p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  // 2^n for n in [-150, 128] as 2^h 2^(n-h), h = n/2, both normal floats: p 2^h is exact, so
  // the one rounding (to a denormal, or the overflow to inf) happens in the last product.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i h = _mm256_srai_epi32(ni, 1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 scale_h = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
  const __m256 scale_rest =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, scale_h), scale_rest);
}

// s = sigmoid(x), q = 1 - sigmoid(x), as sigmoid_parts.
[[SCALPEL_TARGET_AVX2]] inline void sigmoid_parts8(__m256 x, __m256& s, __m256& q) {
  const __m256 minus_abs = _mm256_or_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 e = exp8(minus_abs);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 d = _mm256_div_ps(one, _mm256_add_ps(one, e));
  const __m256 ed = _mm256_mul_ps(e, d);
  const __m256 nonneg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);  // false for NaN
  s = _mm256_blendv_ps(ed, d, nonneg);
  q = _mm256_blendv_ps(d, ed, nonneg);
}

[[SCALPEL_TARGET_AVX2]] inline __m256 sigmoid8(__m256 x) {
  __m256 s, q;
  sigmoid_parts8(x, s, q);
  return s;
}
[[SCALPEL_TARGET_AVX2]] inline __m256 silu8(__m256 x) { return _mm256_mul_ps(x, sigmoid8(x)); }
[[SCALPEL_TARGET_AVX2]] inline __m256 sigmoid_backward8(__m256 x, __m256 gy) {
  __m256 s, q;
  sigmoid_parts8(x, s, q);
  return _mm256_mul_ps(gy, _mm256_mul_ps(s, q));
}
[[SCALPEL_TARGET_AVX2]] inline __m256 silu_backward8(__m256 x, __m256 gy) {
  __m256 s, q;
  sigmoid_parts8(x, s, q);
  return _mm256_mul_ps(gy, _mm256_mul_ps(s, _mm256_fmadd_ps(x, q, _mm256_set1_ps(1.0f))));
}

// Lanes [0, rem) set, for maskload/maskstore of a tail of rem < 8 elements.
[[SCALPEL_TARGET_AVX2]] inline __m256i tail_mask8(int64_t rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <__m256 (*F)(__m256)>
[[SCALPEL_TARGET_AVX2]] void map8(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    _mm256_maskstore_ps(y + i, m, F(_mm256_maskload_ps(x + i, m)));
  }
}

template <__m256 (*F)(__m256, __m256)>
[[SCALPEL_TARGET_AVX2]] void map8(const float* x, const float* g, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i), _mm256_loadu_ps(g + i)));
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    _mm256_maskstore_ps(y + i, m, F(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(g + i, m)));
  }
}

}  // namespace

const Kernels& avx2_kernels() {
  static const Kernels kernels{&map8<exp8>, &map8<sigmoid8>, &map8<silu8>, &map8<sigmoid_backward8>,
                    &map8<silu_backward8>};
  return kernels;
}

}  // namespace scalpel::vecmath::detail
