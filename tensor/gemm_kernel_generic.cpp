// Portable micro-kernel for the float GEMM (see gemm.cpp and gemm_internal.h): plain loops
// the compiler vectorizes for the baseline ISA. Used on CPUs without AVX2 and as the
// readable statement of what the SIMD kernels compute.
#include <utility>

#include "tensor/gemm_internal.h"

namespace scalpel::gemm_detail {
namespace {

template <int MR, int NR, bool kRowMajorA>
void kernel(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
            float* c, int64_t ldc, float alpha, float beta, int64_t cols, const TileEpilogue* epilogue) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k, b += b_step)
    for (int i = 0; i < MR; ++i) {
      const float aik = kRowMajorA ? a[i * a_step + k] : a[k * a_step + i];
      for (int j = 0; j < NR; ++j) acc[i][j] += aik * b[j];
    }
  for (int i = 0; i < MR; ++i)
    for (int64_t j = 0; j < cols; ++j)
      c[i * ldc + j] = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
  if (epilogue) apply_tile_epilogue<MR>(*epilogue, c, ldc, cols);
}

void gemv(int64_t m, int64_t K, const float* a, int64_t lda, const float* x, float* y,
          int64_t y_step, float alpha, float beta) {
  for (int64_t i = 0; i < m; ++i) {
    float dot = 0.0f;
    for (int64_t k = 0; k < K; ++k) dot += a[i * lda + k] * x[k];
    float& out = y[i * y_step];
    out = alpha * dot + (beta == 0.0f ? 0.0f : beta * out);
  }
}

}  // namespace

KernelInfo generic_kernel() {
  // 4 x 8 keeps the accumulators in the 16 SSE registers of baseline x86-64.
  KernelInfo ki{"generic_4x8", 4, 8, 1, 256, 1024, 1024, false, {}, {}, &gemv};
  [&]<int... R>(std::integer_sequence<int, R...>) {
    ((ki.k_major[R][0] = &kernel<R + 1, 8, false>, ki.row_major[R][0] = &kernel<R + 1, 8, true>),
     ...);
  }(std::make_integer_sequence<int, 4>{});
  return ki;
}

}  // namespace scalpel::gemm_detail
