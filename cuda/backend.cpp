#include "cuda/backend.h"

#include <cstdint>

#include "tensor/error.h"

namespace scalpel::cuda {

void fail_argument(const char* function, const char* message, int64_t value) {
  fail("{}: {} (got {})", function, message, value);
}

const char* gemm_variant_name(GemmVariant v) {
  switch (v) {
    case GemmVariant::Auto: return "auto";
    case GemmVariant::Naive: return "1-naive";
    case GemmVariant::SharedTiled: return "2-shared-tiled";
    case GemmVariant::RegisterBlocked: return "3-register-blocked";
    case GemmVariant::Vectorized: return "4-vectorized";
  }
  return "?";
}

GemmVariant gemm_resolve(GemmVariant variant, bool trans_a, bool trans_b, int64_t N, int64_t K,
                         const float* A, int64_t lda, const float* B, int64_t ldb) {
  if (variant != GemmVariant::Auto && variant != GemmVariant::Vectorized) return variant;
  auto aligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool vectorizable = !trans_a && !trans_b && N % 4 == 0 && K % 4 == 0 && lda % 4 == 0 &&
                            ldb % 4 == 0 && aligned(A) && aligned(B);
  return vectorizable ? GemmVariant::Vectorized : GemmVariant::RegisterBlocked;
}

}  // namespace scalpel::cuda
