// AVX2 + FMA micro-kernel for the packed float GEMM (see gemm.cpp and gemm_internal.h), for
// CPUs without AVX-512. Only the function marked target("avx2,fma") uses those instructions.
#include <immintrin.h>

#include "tensor/gemm_internal.h"

namespace scalpel::gemm_detail {
namespace {

// MR x (NV*8) tile in MR*NV ymm accumulators; 6 x 16 uses 12 of the 16 ymm registers,
// leaving room for the two B vectors and the broadcast A value.
template <int MR, int NV>
__attribute__((target("avx2,fma"))) void kernel(int64_t kc, const float* a, const float* b,
                                                float* c, int64_t ldc, float beta) {
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = _mm256_load_ps(b + j * 8);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
    }
    a += MR;
    b += NV * 8;
  }

  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) _mm256_storeu_ps(c + i * ldc + j * 8, acc[i][j]);
  } else {
    const __m256 vbeta = _mm256_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* p = c + i * ldc + j * 8;
        _mm256_storeu_ps(p, _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(p), acc[i][j]));
      }
  }
}

}  // namespace

KernelInfo avx2_kernel() {
  return {"avx2_6x16", 6, 16, 256, 768, 256, &kernel<6, 2>};
}

}  // namespace scalpel::gemm_detail
