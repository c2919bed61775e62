// AVX-512 micro-kernels for the float GEMM (see gemm.cpp and gemm_internal.h).
// Compiled for the baseline ISA like the rest of the project: only the functions marked
// target("avx512f") use AVX-512, and the driver calls them only when the CPU has it.
#include <immintrin.h>

#include "tensor/gemm_internal.h"

namespace scalpel::gemm_detail {
namespace {

// MR x (NV*16) tile held in MR*NV zmm accumulators. Each k step loads NV vectors of B and
// broadcasts MR values of A: MR*NV FMAs for MR + NV loads. With 8 x 48 that is 24 FMAs
// (12 cycles on two FMA ports) against 11 loads, and 24 independent accumulators hide the
// 4-cycle FMA latency. kRowMajorA selects how A is addressed (see MicroKernel).
template <int MR, int NV, bool kRowMajorA>
__attribute__((target("avx512f"))) void kernel(int64_t kc, const float* a, int64_t a_step,
                                               const float* b, int64_t b_step, float* c,
                                               int64_t ldc, float alpha, float beta) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();

  // Bring the C tile (one 64-byte line per vector) towards L1 while the k loop runs.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + j * 16), _MM_HINT_T0);

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = _mm512_loadu_ps(b + j * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(kRowMajorA ? a[i * a_step + k] : a[i]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
    if (!kRowMajorA) a += a_step;
    b += b_step;
  }

  const __m512 valpha = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        _mm512_storeu_ps(c + i * ldc + j * 16, _mm512_mul_ps(valpha, acc[i][j]));
  } else {
    const __m512 vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* p = c + i * ldc + j * 16;
        _mm512_storeu_ps(p, _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(p),
                                            _mm512_mul_ps(valpha, acc[i][j])));
      }
  }
}

}  // namespace

KernelInfo avx512_kernel() {
  return {"avx512_8x48",
          8,
          16,
          3,
          512,
          4096,
          480,
          {&kernel<8, 1, false>, &kernel<8, 2, false>, &kernel<8, 3, false>},
          {&kernel<8, 1, true>, &kernel<8, 2, true>, &kernel<8, 3, true>}};
}

}  // namespace scalpel::gemm_detail
