#pragma once
// The AVX-512 level of tensor/vector_math.h on one register of 16 floats: exp, sigmoid and
// SiLU as vector_math_avx512.cpp maps them over arrays, inline here so that a kernel which
// holds its outputs in registers (tensor/epilogue_avx512.h) computes the same bits without
// storing and reloading them. Only for code compiled for, or marked, SCALPEL_TARGET_AVX512.
#include <immintrin.h>

#include "tensor/cpu_isa.h"
#include "tensor/vector_math_internal.h"

namespace scalpel::vecmath::detail {

[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline __m512 exp16(__m512 x) {
  // max/min return their second operand when one is NaN: x goes second, so NaN passes.
  x = _mm512_min_ps(_mm512_set1_ps(kExpHi), _mm512_max_ps(_mm512_set1_ps(kExpLo), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kC6), r, _mm512_set1_ps(kC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC2));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  // p 2^n in one rounding, denormal results and the overflow to inf included.
  return _mm512_scalef_ps(p, n);
}

[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void sigmoid_parts16(__m512 x, __m512& s, __m512& q) {
  const __m512 minus_abs = _mm512_castsi512_ps(
      _mm512_or_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  const __m512 e = exp16(minus_abs);
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 d = _mm512_div_ps(one, _mm512_add_ps(one, e));
  const __m512 ed = _mm512_mul_ps(e, d);
  const __mmask16 nonneg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);  // not NaN
  s = _mm512_mask_blend_ps(nonneg, ed, d);
  q = _mm512_mask_blend_ps(nonneg, d, ed);
}

[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline __m512 sigmoid16(__m512 x) {
  __m512 s, q;
  sigmoid_parts16(x, s, q);
  return s;
}
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline __m512 silu16(__m512 x) { return _mm512_mul_ps(x, sigmoid16(x)); }

}  // namespace scalpel::vecmath::detail
