// AVX2 + FMA micro-kernels for the float GEMM (see gemm.cpp and gemm_internal.h), for CPUs
// without AVX-512. Only the functions marked SCALPEL_TARGET_AVX2 (tensor/cpu_isa.h) use those instructions.
#include <immintrin.h>

#include <utility>

#include "tensor/gemm_internal.h"

namespace scalpel::gemm_detail {
namespace {

// MR x (NV*8) tile in MR*NV ymm accumulators; 6 x 16 uses 12 of the 16 ymm registers,
// leaving room for the two B vectors and the broadcast A value. B is read whole (AVX2's
// masked loads cost extra uops in the k loop, so the driver zero-pads ragged B panels);
// only the C tile's last vector is loaded and stored under a mask of the `cols` columns. The
// epilogue runs on the stored tile (apply_epilogue vectorized for AVX2).
template <int MR, int NV, bool kRowMajorA>
[[SCALPEL_TARGET_AVX2]] void kernel(int64_t kc, const float* a, int64_t a_step,
                                                const float* b, int64_t b_step, float* c,
                                                int64_t ldc, float alpha, float beta,
                                                int64_t cols, const TileEpilogue* epilogue) {
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

  const __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
  const int64_t last_cols = cols - (NV - 1) * 8;  // columns held by the last vector, 1..8
  const __m256i last = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(last_cols)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* p = c + i * ldc + j * 8;
      __m256 v = _mm256_mul_ps(valpha, acc[i][j]);
      if (j < NV - 1 || last_cols == 8) {
        if (beta != 0.0f) v = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(p), v);
        _mm256_storeu_ps(p, v);
      } else {
        if (beta != 0.0f) v = _mm256_fmadd_ps(vbeta, _mm256_maskload_ps(p, last), v);
        _mm256_maskstore_ps(p, last, v);
      }
    }
  if (epilogue) apply_tile_epilogue<MR>(*epilogue, c, ldc, cols);
}

// Dot products of R rows of a with x, 8 columns at a time, the tail in scalar code.
template <int R>
[[SCALPEL_TARGET_AVX2]] void gemv_rows(int64_t K, const float* a, int64_t lda,
                                                   const float* x, float* y, int64_t y_step,
                                                   float alpha, float beta) {
  __m256 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a + r * lda + k), xv, acc[r]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc[r]);
    float dot = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
                ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (int64_t t = k; t < K; ++t) dot += a[r * lda + t] * x[t];
    float& out = y[r * y_step];
    out = beta == 0.0f ? alpha * dot : alpha * dot + beta * out;
  }
}

[[SCALPEL_TARGET_AVX2]] void gemv(int64_t m, int64_t K, const float* a,
                                              int64_t lda, const float* x, float* y,
                                              int64_t y_step, float alpha, float beta) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) gemv_rows<4>(K, a + i * lda, lda, x, y + i * y_step, y_step, alpha, beta);
  for (; i < m; ++i) gemv_rows<1>(K, a + i * lda, lda, x, y + i * y_step, y_step, alpha, beta);
}

// table[r][v] = the kernel for r + 1 rows and v + 1 vectors.
template <bool kRowMajorA>
void fill_kernel_table(MicroKernel (&table)[kMaxRows][kMaxWidths]) {
  [&]<int... R>(std::integer_sequence<int, R...>) {
    ((table[R][0] = &kernel<R + 1, 1, kRowMajorA>, table[R][1] = &kernel<R + 1, 2, kRowMajorA>),
     ...);
  }(std::make_integer_sequence<int, 6>{});
}

}  // namespace

KernelInfo avx2_kernel() {
  KernelInfo ki{"avx2_6x16", 6, 8, 2, 256, 2048, 256, false, {}, {}, &gemv};
  fill_kernel_table<false>(ki.k_major);
  fill_kernel_table<true>(ki.row_major);
  return ki;
}

}  // namespace scalpel::gemm_detail
