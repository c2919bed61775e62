// Constant left operands packed once (see prepack_constant_a in tensor/gemm.h): the registry of
// declared constants (tensor/constants.h) keeps each A's packed panels per kernel and shape,
// made on first use.
#include <fmt/format.h>

#include "tensor/constants.h"
#include "tensor/error.h"
#include "tensor/gemm.h"
#include "tensor/gemm_internal.h"

namespace scalpel {
namespace gemm_detail {

const uint32_t* prepacked_a_bf16(const float* A, int64_t M, int64_t K, int64_t lda, const Bf16KernelInfo& ki) {
  const std::string key = fmt::format("gemm_bf16 {} A {}x{} lda {}", ki.name, M, K, lda);
  return static_cast<const uint32_t*>(derived_from_constant(A, key, [&] {
    auto buffer = std::make_shared<Buffer>();
    const int64_t rows = round_up(M, ki.mr);
    uint32_t* out = buffer->get<uint32_t>(rows * ((K + 1) / 2));
    for (int64_t pc = 0; pc < K; pc += ki.kc)
      ki.pack_a(false, A, lda, 0, M, pc, std::min(ki.kc, K - pc), out + pc / 2 * rows);
    // The buffer travels with its owner; the pointer handed out is its data.
    return std::shared_ptr<void>(buffer, out);
  }));
}

const float* prepacked_b_panels(const float* A, int64_t M, int64_t K, int64_t lda, const KernelInfo& ki) {
  const std::string key = fmt::format("gemm {} A^T panels {}x{} lda {}", ki.name, M, K, lda);
  return static_cast<const float*>(derived_from_constant(A, key, [&] {
    auto buffer = std::make_shared<Buffer>();
    const int64_t nr = ki.nr();
    float* out = buffer->get(round_up(M, nr) * K);
    for (int64_t i0 = 0; i0 < M; i0 += nr)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < nr; ++i) out[(i0 / nr * K + k) * nr + i] = i0 + i < M ? A[(i0 + i) * lda + k] : 0.0f;
    return std::shared_ptr<void>(buffer, out);
  }));
}

}  // namespace gemm_detail

void prepack_constant_a(const float* A, int64_t M, int64_t K, int64_t lda, std::weak_ptr<const void> owner) {
  SCALPEL_CHECK(A && M > 0 && K > 0 && lda >= K, "prepack_constant_a: bad matrix M={} K={} lda={}", M, K, lda);
  declare_constant(A, std::move(owner));
}

int64_t prepacked_constant_count() { return declared_constant_count(); }
void forget_prepacked_constants() { forget_declared_constants(); }

}  // namespace scalpel
