// Constant left operands packed once (prepack_constant_a, tensor/gemm.h): the same bits as
// packing per call for every float kernel this CPU runs and for the bf16 kernel, over several
// K blocks, ragged rows and two threads; the packing is really used (a write to A after
// declaring it, the contract's violation, stays invisible); entries lapse with their owner.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_internal.h"

namespace scalpel {
namespace {

struct Matrices {
  int64_t M, N, K;
  std::shared_ptr<std::vector<float>> A;  // the owner prepack_constant_a watches
  std::vector<float> B;
};

Matrices make(int64_t M, int64_t N, int64_t K) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Matrices m{M, N, K, std::make_shared<std::vector<float>>(M * K), std::vector<float>(K * N)};
  for (float& x : *m.A) x = u(rng);
  for (float& x : m.B) x = u(rng);
  return m;
}

class GemmPrepack : public testing::Test {
 protected:
  void TearDown() override { forget_prepacked_constants(); }
};

// Each kernel's product with A declared constant against the same product packing A per
// call; shapes with several K blocks of every kernel (kc <= 512), M off the tile rows, N
// above the width where A is packed anyway and below it (read in place otherwise).
TEST_F(GemmPrepack, SameBitsAsPackingPerCall) {
  for (const auto& [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{37, 300, 1100}, {70, 1100, 520}, {5, 49, 9}}) {
    Matrices m = make(M, N, K);
    std::vector<std::vector<float>> per_call;
    for (Isa isa : kAllIsas) {
      if (!cpu_supports(isa)) continue;
      for (int threads : {1, 2}) {
        per_call.emplace_back(M * N);
        gemm_detail::gemm_with_kernel(isa, threads, gemm_detail::Packing::automatic, false, false, M, N, K, 1.0f,
                                      m.A->data(), K, m.B.data(), N, 0.0f, per_call.back().data(), N,
                                      GemmEpilogue<float>{});
      }
    }
    std::vector<float> bf16_per_call(M * N);
    if (bf16_gemm_supported())
      gemm_bf16(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, bf16_per_call.data(), N, {}, 2);

    prepack_constant_a(m.A->data(), M, K, K, m.A);
    EXPECT_EQ(prepacked_constant_count(), 1);
    size_t at = 0;
    for (Isa isa : kAllIsas) {
      if (!cpu_supports(isa)) continue;
      for (int threads : {1, 2}) {
        std::vector<float> C(M * N);
        gemm_detail::gemm_with_kernel(isa, threads, gemm_detail::Packing::never, false, false, M, N, K, 1.0f,
                                      m.A->data(), K, m.B.data(), N, 0.0f, C.data(), N, GemmEpilogue<float>{});
        EXPECT_EQ(C, per_call[at++]) << gemm_detail::kernel_info(isa).name << " M=" << M << " N=" << N << " K=" << K
                                     << " threads=" << threads;
      }
    }
    if (bf16_gemm_supported()) {
      std::vector<float> C(M * N);
      gemm_bf16(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, C.data(), N, {}, 2);
      EXPECT_EQ(C, bf16_per_call) << "bf16 M=" << M << " N=" << N << " K=" << K;
    }
    forget_prepacked_constants();
  }
}

// Writing A after declaring it constant is the caller's bug, and shows that gemm() reads the
// panels packed on first use: the product still sees the old A. Another lda, or a transposed
// read, is another matrix and reads the new values.
TEST_F(GemmPrepack, ReadsThePanelsPackedOnFirstUse) {
  const int64_t M = 16, N = 64, K = 40;
  Matrices m = make(M, N, K);
  prepack_constant_a(m.A->data(), M, K, K, m.A);
  std::vector<float> before(M * N), after(M * N), fresh(M * N);
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, before.data(), N);
  for (float& x : *m.A) x *= 2.0f;
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, after.data(), N);
  EXPECT_EQ(after, before);
  forget_prepacked_constants();
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, fresh.data(), N);
  for (int64_t i = 0; i < M * N; ++i) ASSERT_EQ(fresh[i], 2.0f * before[i]) << i;
}

TEST_F(GemmPrepack, EntryLapsesWithItsOwner) {
  Matrices m = make(8, 16, 8);
  auto owner = std::make_shared<int>(0);
  prepack_constant_a(m.A->data(), 8, 8, 8, owner);
  prepack_constant_a(m.A->data(), 8, 8, 8, owner);  // again: a no-op
  EXPECT_EQ(prepacked_constant_count(), 1);
  owner.reset();
  EXPECT_EQ(prepacked_constant_count(), 0);
  // The same address now holds other values: the product reads them.
  for (float& x : *m.A) x = 1.0f;
  std::vector<float> C(8 * 16), want(8 * 16);
  gemm(false, false, 8, 16, 8, 1.0f, m.A->data(), 8, m.B.data(), 16, 0.0f, C.data(), 16);
  gemm_reference<float>(false, false, 8, 16, 8, 1.0f, m.A->data(), 8, m.B.data(), 16, 0.0f, want.data(), 16);
  for (int64_t i = 0; i < 8 * 16; ++i) EXPECT_NEAR(C[i], want[i], 1e-5f) << i;
}

}  // namespace
}  // namespace scalpel
