// The GEMM epilogue (tensor/gemm.h): bias per row, residual and activation applied to each
// tile after its last K block, for every micro-kernel this CPU runs, every packing policy and
// 1-2 threads, against activation(gemm_reference + bias + residual) computed here in double.
#include <gtest/gtest.h>

#include <cstring>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tensor/gemm.h"
#include "tensor/gemm_internal.h"

namespace scalpel {
namespace {

using gemm_detail::Packing;

// The activations written out independently of apply_epilogue (PyTorch's definitions).
double activate(EpilogueActivation a, double x) {
  switch (a) {
    case EpilogueActivation::none: return x;
    case EpilogueActivation::relu: return std::max(x, 0.0);
    case EpilogueActivation::relu6: return std::min(std::max(x, 0.0), 6.0);
    case EpilogueActivation::silu: return x / (1.0 + std::exp(-x));
    case EpilogueActivation::hardswish: return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
  }
  return std::nan("");
}

const char* name(EpilogueActivation a) {
  switch (a) {
    case EpilogueActivation::none: return "none";
    case EpilogueActivation::relu: return "relu";
    case EpilogueActivation::relu6: return "relu6";
    case EpilogueActivation::silu: return "silu";
    case EpilogueActivation::hardswish: return "hardswish";
  }
  return "?";
}

struct Shape3 {
  int64_t M, N, K;
};

class GemmEpilogueKernel : public testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam()))
      GTEST_SKIP() << "this CPU cannot run " << gemm_detail::kernel_info(GetParam()).name;
  }
};

TEST_P(GemmEpilogueKernel, MatchesReferenceThenEpilogue) {
  const gemm_detail::KernelInfo ki = gemm_detail::kernel_info(GetParam());
  // Ragged tiles in both directions, a single K step, and several K blocks (an epilogue run
  // before the last one would be visible: relu of a partial sum is not a partial sum).
  const std::vector<Shape3> shapes{{1, 1, 1}, {7, 17, 3}, {9, 49, 31}, {33, 100, 2}, {20, 70, ki.kc + 37}};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);  // wide enough to reach relu6's 6 and hardswish's +-3
  constexpr int64_t pad = 3;
  constexpr float kSentinel = -777.0f;
  for (const Shape3& s : shapes) {
    const int64_t ldc = s.N + pad, ldr = s.N + 1;
    std::vector<float> A(s.M * s.K), B(s.K * s.N), bias(s.M), residual(s.M * ldr);
    for (auto* v : {&A, &B, &bias, &residual})
      for (float& x : *v) x = u(rng) * (v == &A || v == &B ? 0.5f : 1.0f);
    std::vector<double> product(s.M * s.N);
    std::vector<double> Ad(A.begin(), A.end()), Bd(B.begin(), B.end());
    gemm_reference<double>(false, false, s.M, s.N, s.K, 1.0, Ad.data(), s.K, Bd.data(), s.N, 0.0, product.data(), s.N);
    for (EpilogueActivation act : {EpilogueActivation::none, EpilogueActivation::relu, EpilogueActivation::relu6,
                                   EpilogueActivation::silu, EpilogueActivation::hardswish})
      for (bool with_residual : {false, true}) {
        const GemmEpilogue<float> e{bias.data(), act, with_residual ? residual.data() : nullptr, ldr};
        for (int threads : {1, 2})
          for (Packing packing : {Packing::automatic, Packing::always, Packing::never}) {
            std::vector<float> C(s.M * ldc, kSentinel);
            for (int64_t i = 0; i < s.M; ++i)
              for (int64_t j = 0; j < s.N; ++j) C[i * ldc + j] = std::numeric_limits<float>::quiet_NaN();
            gemm_detail::gemm_with_kernel(GetParam(), threads, packing, false, false, s.M, s.N, s.K, 1.0f, A.data(),
                                          s.K, B.data(), s.N, 0.0f, C.data(), ldc, e);
            const std::string what = fmt::format("{} M={} N={} K={} act={} residual={} threads={} packing={}", ki.name,
                                                 s.M, s.N, s.K, name(act), with_residual, threads,
                                                 static_cast<int>(packing));
            int failures = 0;
            for (int64_t i = 0; i < s.M && failures < 3; ++i)
              for (int64_t j = 0; j < ldc && failures < 3; ++j) {
                const float got = C[i * ldc + j];
                if (j >= s.N) {
                  if (got != kSentinel) ++failures, ADD_FAILURE() << what << ": wrote outside N at " << i << "," << j;
                  continue;
                }
                const double pre = product[i * s.N + j] + bias[i] + (with_residual ? residual[i * ldr + j] : 0.0);
                const double want = activate(act, pre);
                if (!(std::abs(got - want) <= 1e-5 * (s.K + 4) * (1.0 + std::abs(want))))
                  ++failures, ADD_FAILURE() << what << ": C[" << i << "][" << j << "] = " << got << ", expected " << want;
              }
          }
      }
  }
}

// Each kernel's epilogue (compiled for its instruction set) gives the bits of the baseline
// build of apply_epilogue: the same operations in the same order, on a ragged tile with a
// residual, every activation, values around ReLU6's and hardswish's corners, NaN and -0.
TEST_P(GemmEpilogueKernel, KernelEpilogueHasTheBaselineBits) {
  const gemm_detail::KernelInfo& ki = gemm_detail::kernel_info(GetParam());
  constexpr int64_t rows = 5, cols = 37, ldc = 41, ldr = 39;
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  std::vector<float> C0(rows * ldc), bias(rows + 2), residual((rows + 2) * ldr);
  for (auto* v : {&C0, &bias, &residual})
    for (float& x : *v) x = u(rng);
  C0[3] = std::numeric_limits<float>::quiet_NaN();
  C0[4] = -0.0f;
  for (EpilogueActivation act : {EpilogueActivation::none, EpilogueActivation::relu, EpilogueActivation::relu6,
                                 EpilogueActivation::silu, EpilogueActivation::hardswish})
    for (bool with_bias : {false, true})
      for (bool with_residual : {false, true}) {
        const GemmEpilogue<float> e{with_bias ? bias.data() : nullptr, act, with_residual ? residual.data() : nullptr,
                                    ldr};
        std::vector<float> got = C0, want = C0;
        ki.epilogue(e, 2, rows, 1, cols, got.data(), ldc);
        gemm_detail::epilogue_tile_baseline(e, 2, rows, 1, cols, want.data(), ldc);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
            << ki.name << " act=" << name(act) << " bias=" << with_bias << " residual=" << with_residual;
      }
}

// Equal bit for bit, or both NaN: a NaN's sign is not kept (SiLU's x * sigmoid(x) of a NaN
// takes the sign of whichever operand the compiler put first).
bool same_bits_or_both_nan(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
  return a.size() == b.size();
}

// Each micro-kernel handed its tile's epilogue stores the bits that the same kernel without
// it, followed by the baseline build of apply_epilogue, leaves: every row count and width, A
// read either way, ragged and whole widths, beta 0 and 1, every activation with and without
// bias and residual, NaN (through beta * C) and -0 (alpha = -1 on a zero row of A).
TEST_P(GemmEpilogueKernel, KernelsApplyTheTileEpilogueBitForBit) {
  const gemm_detail::KernelInfo& ki = gemm_detail::kernel_info(GetParam());
  const int64_t nr = ki.nr(), kc = 5, ldc = nr + 3, ldr = nr + 5, row = 2, col = 1;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), wide(-4.0f, 4.0f);
  std::vector<float> a(kc * ki.mr), b(kc * nr), C0(ki.mr * ldc), bias(row + ki.mr), residual((row + ki.mr) * ldr);
  for (float& x : a) x = 1.5f * u(rng);
  for (float& x : b) x = 1.5f * u(rng);
  for (auto* v : {&C0, &bias, &residual})
    for (float& x : *v) x = wide(rng);
  for (int64_t k = 0; k < kc; ++k) a[k * ki.mr] = 0.0f;  // row 0 of A, k-major: a zero row
  C0[ldc + 3] = std::numeric_limits<float>::quiet_NaN();
  int failures = 0;
  for (bool row_major : {false, true}) {
    // The same A either way: row-major reads a[i * kc + k].
    std::vector<float> a_row_major(kc * ki.mr);
    for (int64_t i = 0; i < ki.mr; ++i)
      for (int64_t k = 0; k < kc; ++k) a_row_major[i * kc + k] = a[k * ki.mr + i];
    const float* a_panel = row_major ? a_row_major.data() : a.data();
    const int64_t a_step = row_major ? kc : ki.mr;
    for (int rows = 1; rows <= ki.mr; ++rows)
      for (int v = 1; v <= ki.widths; ++v)
        for (int64_t cols : {int64_t{v} * ki.vec, int64_t{v - 1} * ki.vec + 1})
          for (float alpha : {1.0f, -1.0f})
            for (float beta : {0.0f, 1.0f})
              for (EpilogueActivation act : {EpilogueActivation::none, EpilogueActivation::relu,
                                             EpilogueActivation::relu6, EpilogueActivation::silu,
                                             EpilogueActivation::hardswish})
                for (bool with_bias : {false, true})
                  for (bool with_residual : {false, true}) {
                    const GemmEpilogue<float> e{with_bias ? bias.data() : nullptr, act,
                                                with_residual ? residual.data() : nullptr, ldr};
                    const gemm_detail::TileEpilogue tile{e, row, col};
                    const gemm_detail::MicroKernel kernel = (row_major ? ki.row_major : ki.k_major)[rows - 1][v - 1];
                    std::vector<float> got = C0, want = C0;
                    kernel(kc, a_panel, a_step, b.data(), nr, got.data(), ldc, alpha, beta, cols, &tile);
                    kernel(kc, a_panel, a_step, b.data(), nr, want.data(), ldc, alpha, beta, cols, nullptr);
                    gemm_detail::epilogue_tile_baseline(e, row, rows, col, cols, want.data(), ldc);
                    if (!same_bits_or_both_nan(got, want) && ++failures <= 3)
                      ADD_FAILURE() << ki.name << (row_major ? " row-major" : " k-major") << " rows=" << rows
                                    << " cols=" << cols << " alpha=" << alpha << " beta=" << beta
                                    << " act=" << name(act) << " bias=" << with_bias << " residual=" << with_residual;
                  }
  }
}

INSTANTIATE_TEST_SUITE_P(, GemmEpilogueKernel, testing::Values(Isa::baseline, Isa::avx2, Isa::avx512),
                         [](const testing::TestParamInfo<Isa>& info) {
                           return std::string(gemm_detail::kernel_info(info.param).name);
                         });

// K = 0 takes the early path (C = beta * C); the epilogue still applies there, and in double.
TEST(GemmEpilogue, AppliesOnEveryPathAndInDouble) {
  const float bias[2] = {1.0f, -2.0f};
  float C[4] = {5, 5, 5, 5};
  gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.0f, C, 2,
       GemmEpilogue<float>{bias, EpilogueActivation::relu, nullptr, 0});
  EXPECT_EQ(C[0], 1.0f);
  EXPECT_EQ(C[1], 1.0f);
  EXPECT_EQ(C[2], 0.0f);  // relu(-2)
  EXPECT_EQ(C[3], 0.0f);

  const double A[2] = {2, 3}, B[2] = {-1, 4}, res[4] = {0.5, 0.25, -10, 1};
  double D[4];
  gemm(false, false, 2, 2, 1, 1.0, A, 1, B, 2, 0.0, D, 2,
       GemmEpilogue<double>{nullptr, EpilogueActivation::relu6, res, 2});
  EXPECT_EQ(D[0], 0.0);   // relu6(-2 + 0.5)
  EXPECT_EQ(D[1], 6.0);   // relu6(8 + 0.25)
  EXPECT_EQ(D[2], 0.0);   // relu6(-3 - 10)
  EXPECT_EQ(D[3], 6.0);   // relu6(12 + 1)
}

}  // namespace
}  // namespace scalpel
