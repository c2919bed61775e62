// AVX2 + FMA micro-kernels for the float GEMM (see gemm.cpp and gemm_internal.h), for CPUs
// without AVX-512. Only the functions marked target("avx2,fma") use those instructions.
#include <immintrin.h>

#include "tensor/gemm_internal.h"

namespace scalpel::gemm_detail {
namespace {

// MR x (NV*8) tile in MR*NV ymm accumulators; 6 x 16 uses 12 of the 16 ymm registers,
// leaving room for the two B vectors and the broadcast A value.
template <int MR, int NV, bool kRowMajorA>
__attribute__((target("avx2,fma"))) void kernel(int64_t kc, const float* a, int64_t a_step,
                                                const float* b, int64_t b_step, float* c,
                                                int64_t ldc, float alpha, float beta) {
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = _mm256_loadu_ps(b + j * 8);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(kRowMajorA ? a + i * a_step + k : a + i);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
    }
    if (!kRowMajorA) a += a_step;
    b += b_step;
  }

  const __m256 valpha = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        _mm256_storeu_ps(c + i * ldc + j * 8, _mm256_mul_ps(valpha, acc[i][j]));
  } else {
    const __m256 vbeta = _mm256_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* p = c + i * ldc + j * 8;
        _mm256_storeu_ps(p, _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(p),
                                            _mm256_mul_ps(valpha, acc[i][j])));
      }
  }
}

}  // namespace

KernelInfo avx2_kernel() {
  return {"avx2_6x16",
          6,
          8,
          2,
          256,
          2048,
          256,
          {&kernel<6, 1, false>, &kernel<6, 2, false>},
          {&kernel<6, 1, true>, &kernel<6, 2, true>}};
}

}  // namespace scalpel::gemm_detail
