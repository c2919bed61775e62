// Portable micro-kernel for the packed float GEMM (see gemm.cpp and gemm_internal.h): plain
// loops the compiler vectorizes for the baseline ISA. Used on CPUs without AVX2 and as the
// readable statement of what the SIMD kernels compute.
#include "tensor/gemm_internal.h"

namespace scalpel::gemm_detail {
namespace {

template <int MR, int NR>
void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      c[i * ldc + j] = acc[i][j] + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
}

}  // namespace

KernelInfo generic_kernel() {
  return {"generic_4x16", 4, 16, 256, 256, 1024, &kernel<4, 16>};
}

}  // namespace scalpel::gemm_detail
