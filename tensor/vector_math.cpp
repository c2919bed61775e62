// Kernels of tensor/vector_math.h: the scalar level over libm, and the AVX2 and AVX-512 levels
// with our own exp. Compiled for the baseline ISA like the rest of the project: only the
// functions marked SCALPEL_AVX2 / SCALPEL_AVX512 use those instructions, and kernels() hands
// them out only when the CPU has them.
#include "tensor/vector_math.h"

#include <immintrin.h>

#include <cmath>

#include "tensor/error.h"

#define SCALPEL_AVX2 __attribute__((target("avx2,fma")))
#define SCALPEL_AVX512 __attribute__((target("avx512f")))

namespace scalpel::vecmath {
namespace {

// exp(x) = 2^n e^r (see the header). Outside [kExpLo, kExpHi] the result is already 0 or
// +inf in float: exp(-104) < 2^-150 rounds to 0, exp(89) > FLT_MAX.
constexpr float kExpLo = -104.0f;
constexpr float kExpHi = 89.0f;
constexpr float kLog2e = 1.44269504088896340736f;
// ln2 = kLn2Hi + kLn2Lo: kLn2Hi is ln2 rounded to float, so x - n kLn2Hi is exact in one FMA
// for |n| <= 150 (its bits fit in 24), and kLn2Lo carries the rest.
constexpr float kLn2Hi = 0.693147182464599609375f;
constexpr float kLn2Lo = -1.904654299957768e-09f;
// e^r ~ 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4) on |r| <= ln2/2: minimax for
// relative error (Lawson iterations over 20001 points, then rounded to float): 3.8e-9.
constexpr float kC2 = 4.999999404e-01f;
constexpr float kC3 = 1.666652113e-01f;
constexpr float kC4 = 4.166838899e-02f;
constexpr float kC5 = 8.368710056e-03f;
constexpr float kC6 = 1.381460461e-03f;

// ---------------------------------------------------------------- scalar (libm)

// s = sigmoid(x) and q = 1 - sigmoid(x) from e = exp(-|x|) <= 1 (the header's formulas).
struct SigmoidParts {
  float s, q;
};
SigmoidParts sigmoid_parts(float x) {
  const float e = std::exp(-std::abs(x));
  const float d = 1.0f / (1.0f + e);
  return x >= 0.0f ? SigmoidParts{d, e * d} : SigmoidParts{e * d, d};
}

void exp_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}
void sigmoid_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = sigmoid_parts(x[i]).s;
}
void silu_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_parts(x[i]).s;
}
void sigmoid_backward_scalar(const float* x, const float* gy, float* gx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const SigmoidParts p = sigmoid_parts(x[i]);
    gx[i] = gy[i] * (p.s * p.q);
  }
}
void silu_backward_scalar(const float* x, const float* gy, float* gx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const SigmoidParts p = sigmoid_parts(x[i]);
    gx[i] = gy[i] * (p.s * (1.0f + x[i] * p.q));
  }
}

// ---------------------------------------------------------------- AVX2 + FMA, 8 lanes

SCALPEL_AVX2 inline __m256 exp8(__m256 x) {
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
SCALPEL_AVX2 inline void sigmoid_parts8(__m256 x, __m256& s, __m256& q) {
  const __m256 minus_abs = _mm256_or_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 e = exp8(minus_abs);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 d = _mm256_div_ps(one, _mm256_add_ps(one, e));
  const __m256 ed = _mm256_mul_ps(e, d);
  const __m256 nonneg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);  // false for NaN
  s = _mm256_blendv_ps(ed, d, nonneg);
  q = _mm256_blendv_ps(d, ed, nonneg);
}

SCALPEL_AVX2 inline __m256 sigmoid8(__m256 x) {
  __m256 s, q;
  sigmoid_parts8(x, s, q);
  return s;
}
SCALPEL_AVX2 inline __m256 silu8(__m256 x) { return _mm256_mul_ps(x, sigmoid8(x)); }
SCALPEL_AVX2 inline __m256 sigmoid_backward8(__m256 x, __m256 gy) {
  __m256 s, q;
  sigmoid_parts8(x, s, q);
  return _mm256_mul_ps(gy, _mm256_mul_ps(s, q));
}
SCALPEL_AVX2 inline __m256 silu_backward8(__m256 x, __m256 gy) {
  __m256 s, q;
  sigmoid_parts8(x, s, q);
  return _mm256_mul_ps(gy, _mm256_mul_ps(s, _mm256_fmadd_ps(x, q, _mm256_set1_ps(1.0f))));
}

// Lanes [0, rem) set, for maskload/maskstore of a tail of rem < 8 elements.
SCALPEL_AVX2 inline __m256i tail_mask8(int64_t rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <__m256 (*F)(__m256)>
SCALPEL_AVX2 void map8(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    _mm256_maskstore_ps(y + i, m, F(_mm256_maskload_ps(x + i, m)));
  }
}

template <__m256 (*F)(__m256, __m256)>
SCALPEL_AVX2 void map8(const float* x, const float* g, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i), _mm256_loadu_ps(g + i)));
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    _mm256_maskstore_ps(y + i, m, F(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(g + i, m)));
  }
}

// ---------------------------------------------------------------- AVX-512, 16 lanes

SCALPEL_AVX512 inline __m512 exp16(__m512 x) {
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

SCALPEL_AVX512 inline void sigmoid_parts16(__m512 x, __m512& s, __m512& q) {
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

SCALPEL_AVX512 inline __m512 sigmoid16(__m512 x) {
  __m512 s, q;
  sigmoid_parts16(x, s, q);
  return s;
}
SCALPEL_AVX512 inline __m512 silu16(__m512 x) { return _mm512_mul_ps(x, sigmoid16(x)); }
SCALPEL_AVX512 inline __m512 sigmoid_backward16(__m512 x, __m512 gy) {
  __m512 s, q;
  sigmoid_parts16(x, s, q);
  return _mm512_mul_ps(gy, _mm512_mul_ps(s, q));
}
SCALPEL_AVX512 inline __m512 silu_backward16(__m512 x, __m512 gy) {
  __m512 s, q;
  sigmoid_parts16(x, s, q);
  return _mm512_mul_ps(gy, _mm512_mul_ps(s, _mm512_fmadd_ps(x, q, _mm512_set1_ps(1.0f))));
}

template <__m512 (*F)(__m512)>
SCALPEL_AVX512 void map16(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

template <__m512 (*F)(__m512, __m512)>
SCALPEL_AVX512 void map16(const float* x, const float* g, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i), _mm512_loadu_ps(g + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, g + i)));
  }
}

const Kernels kScalar{&exp_scalar, &sigmoid_scalar, &silu_scalar, &sigmoid_backward_scalar,
                      &silu_backward_scalar};
const Kernels kAvx2{&map8<exp8>, &map8<sigmoid8>, &map8<silu8>, &map8<sigmoid_backward8>,
                    &map8<silu_backward8>};
const Kernels kAvx512{&map16<exp16>, &map16<sigmoid16>, &map16<silu16>,
                      &map16<sigmoid_backward16>, &map16<silu_backward16>};

}  // namespace

const char* simd_name(Simd level) {
  switch (level) {
    case Simd::scalar: return "scalar";
    case Simd::avx2: return "avx2";
    case Simd::avx512: return "avx512";
  }
  return "?";
}

bool cpu_supports(Simd level) {
  switch (level) {
    case Simd::scalar: return true;
    case Simd::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Simd::avx512: return __builtin_cpu_supports("avx512f");
  }
  return false;
}

Simd best_simd() {
  static const Simd best = cpu_supports(Simd::avx512) ? Simd::avx512
                           : cpu_supports(Simd::avx2) ? Simd::avx2
                                                      : Simd::scalar;
  return best;
}

const Kernels& kernels(Simd level) {
  SCALPEL_CHECK(cpu_supports(level), "vector math: this CPU cannot run the {} kernels", simd_name(level));
  switch (level) {
    case Simd::scalar: return kScalar;
    case Simd::avx2: return kAvx2;
    case Simd::avx512: return kAvx512;
  }
  fail("vector math: unknown level {}", static_cast<int>(level));
}

const Kernels& best_kernels() {
  static const Kernels& best = kernels(best_simd());
  return best;
}

}  // namespace scalpel::vecmath
