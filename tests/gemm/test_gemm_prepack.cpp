// Constant left operands packed once (prepack_constant_a, tensor/gemm.h). bf16: the same bits
// as converting per call, over several K blocks, ragged rows and 1-2 threads; the packing is
// really used (a write to A after declaring it, the contract's violation, stays invisible);
// entries lapse with their owner. Float: the transposed product on few, ragged columns gives
// the same bits as the direct one, every epilogue, beta, packing policy and thread count.
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
  void SetUp() override {
    if (!bf16_gemm_supported()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  }
  void TearDown() override {
    forget_prepacked_constants();
    set_float32_matmul_precision(MatmulPrecision::fp32);
  }
};

// The bf16 product with A declared constant against the same product converting A per call;
// shapes with several K blocks (kc = 512), M off the tile rows, N small and large.
TEST_F(GemmPrepack, SameBitsAsConvertingPerCall) {
  for (const auto& [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{37, 300, 1100}, {70, 1100, 520}, {5, 49, 9}}) {
    Matrices m = make(M, N, K);
    std::vector<std::vector<float>> per_call;
    for (int threads : {1, 2}) {
      per_call.emplace_back(M * N);
      gemm_bf16(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, per_call.back().data(), N, {},
                threads);
    }
    prepack_constant_a(m.A->data(), M, K, K, m.A);
    EXPECT_EQ(prepacked_constant_count(), 1);
    for (int threads : {1, 2}) {
      std::vector<float> C(M * N);
      gemm_bf16(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, C.data(), N, {}, threads);
      EXPECT_EQ(C, per_call[threads - 1]) << "M=" << M << " N=" << N << " K=" << K << " threads=" << threads;
    }
    forget_prepacked_constants();
  }
}

// Writing A after declaring it constant is the caller's bug, and shows that a bf16 gemm()
// reads the panels packed on first use: the product still sees the old A. The float GEMM
// reads the new values, and so does bf16 once the declaration is dropped.
TEST_F(GemmPrepack, ReadsThePanelsPackedOnFirstUse) {
  const int64_t M = 16, N = 64, K = 40;
  Matrices m = make(M, N, K);
  prepack_constant_a(m.A->data(), M, K, K, m.A);
  std::vector<float> fp32_before(M * N), fp32_after(M * N);
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, fp32_before.data(), N);
  set_float32_matmul_precision(MatmulPrecision::bf16);
  std::vector<float> before(M * N), after(M * N), fresh(M * N);
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, before.data(), N);
  for (float& x : *m.A) x *= 2.0f;
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, after.data(), N);
  EXPECT_EQ(after, before);
  set_float32_matmul_precision(MatmulPrecision::fp32);
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, fp32_after.data(), N);
  for (int64_t i = 0; i < M * N; ++i) ASSERT_EQ(fp32_after[i], 2.0f * fp32_before[i]) << i;
  set_float32_matmul_precision(MatmulPrecision::bf16);
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

// The float GEMM on a declared A and N not a whole number of vectors (a 7x7 plane's 49 pixels)
// runs C^T = B^T A^T from A^T's panels with the tiles stored transposed: every element the same
// bits as the direct product on the same A undeclared. Shapes with several K blocks (kc = 512),
// C's rows (the transposed tiles' columns) off whole vectors and panels, 1-8 tile rows.
TEST(GemmTransposed, SameBitsAsTheDirectProduct) {
  using gemm_detail::Packing;
  if (!cpu_supports(Isa::avx512)) GTEST_SKIP() << "the transposed kernels are AVX-512's";
  const std::vector<float> bias = [] {
    std::vector<float> b(2048);
    for (size_t i = 0; i < b.size(); ++i) b[i] = 0.01f * static_cast<float>(i % 97) - 0.5f;
    return b;
  }();
  for (const auto& [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{512, 49, 1100}, {200, 25, 70}, {96, 9, 33},
                                {64, 100, 7}, {2048, 49, 512}, {120, 2, 16}}) {
    Matrices m = make(M, N, K);
    std::vector<float> residual(M * N), start(M * N);
    for (int64_t i = 0; i < M * N; ++i) residual[i] = m.B[i % m.B.size()], start[i] = 0.5f - m.B[(i * 7) % m.B.size()];
    using enum EpilogueActivation;
    for (const auto& [epilogue, alpha, beta] :
         {std::tuple<GemmEpilogue<float>, float, float>{{}, 1.0f, 0.0f},
          {{bias.data(), relu}, 1.0f, 0.0f},
          {{bias.data(), relu, residual.data(), N}, 1.0f, 0.0f},
          {{nullptr, relu6}, 1.5f, 0.5f},
          {{bias.data(), silu, residual.data(), N}, 1.0f, 1.0f},
          {{bias.data(), hardswish}, 0.5f, 0.0f}}) {
      for (int threads : {1, 2})
        for (Packing packing : {Packing::automatic, Packing::always, Packing::never}) {
          auto product = [&] {
            std::vector<float> C = start;
            gemm_detail::gemm_with_kernel(Isa::avx512, threads, packing, false, false, M, N, K, alpha, m.A->data(), K,
                                          m.B.data(), N, beta, C.data(), N, epilogue);
            return C;
          };
          const std::vector<float> direct = product();
          prepack_constant_a(m.A->data(), M, K, K, m.A);
          const std::vector<float> transposed = product();
          forget_prepacked_constants();
          ASSERT_EQ(transposed, direct) << "M=" << M << " N=" << N << " K=" << K << " threads=" << threads
                                        << " packing=" << static_cast<int>(packing) << " activation="
                                        << static_cast<int>(epilogue.activation) << " beta=" << beta;
        }
    }
  }
}

// The transposed product reads A^T's panels packed on first use: a write to A after declaring
// it (the contract's violation) stays invisible to it, and shows that it ran.
TEST(GemmTransposed, ReadsThePanelsPackedOnFirstUse) {
  if (!cpu_supports(Isa::avx512)) GTEST_SKIP() << "the transposed kernels are AVX-512's";
  const int64_t M = 64, N = 49, K = 40;
  Matrices m = make(M, N, K);
  prepack_constant_a(m.A->data(), M, K, K, m.A);
  std::vector<float> before(M * N), after(M * N);
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, before.data(), N);
  for (float& x : *m.A) x *= 2.0f;
  gemm(false, false, M, N, K, 1.0f, m.A->data(), K, m.B.data(), N, 0.0f, after.data(), N);
  forget_prepacked_constants();
  EXPECT_EQ(after, before);
}

}  // namespace
}  // namespace scalpel
