// The AVX-512 (16 lanes) kernels of tensor/vector_math.h. Compiled for the baseline ISA like the rest of the
// project: only the functions marked SCALPEL_TARGET_AVX512 (tensor/cpu_isa.h) use those instructions,
// and vector_math.cpp hands them out only when the CPU has them.
#include <immintrin.h>

#include "tensor/cpu_isa.h"
#include "tensor/vector_math_avx512.h"
#include "tensor/vector_math_internal.h"

namespace scalpel::vecmath::detail {
namespace {

[[SCALPEL_TARGET_AVX512]] inline __m512 sigmoid_backward16(__m512 x, __m512 gy) {
  __m512 s, q;
  sigmoid_parts16(x, s, q);
  return _mm512_mul_ps(gy, _mm512_mul_ps(s, q));
}
[[SCALPEL_TARGET_AVX512]] inline __m512 silu_backward16(__m512 x, __m512 gy) {
  __m512 s, q;
  sigmoid_parts16(x, s, q);
  return _mm512_mul_ps(gy, _mm512_mul_ps(s, _mm512_fmadd_ps(x, q, _mm512_set1_ps(1.0f))));
}

template <__m512 (*F)(__m512)>
[[SCALPEL_TARGET_AVX512]] void map16(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

template <__m512 (*F)(__m512, __m512)>
[[SCALPEL_TARGET_AVX512]] void map16(const float* x, const float* g, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i), _mm512_loadu_ps(g + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, g + i)));
  }
}

}  // namespace

const Kernels& avx512_kernels() {
  static const Kernels kernels{&map16<exp16>, &map16<sigmoid16>, &map16<silu16>,
                      &map16<sigmoid_backward16>, &map16<silu_backward16>};
  return kernels;
}

}  // namespace scalpel::vecmath::detail
