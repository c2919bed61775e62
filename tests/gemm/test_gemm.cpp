// The packed float GEMM (every micro-kernel this CPU runs, several thread counts) and the
// double GEMM against gemm_reference, over edge-heavy shapes, transposes, strides, alpha/beta.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "support/guarded_memory.h"
#include "tensor/error.h"
#include "tensor/gemm.h"
#include "tensor/gemm_internal.h"

namespace scalpel {
namespace {

using gemm_detail::Packing;

}  // namespace
// Names kernels in gtest's messages.
void PrintTo(Isa k, std::ostream* os) { *os << gemm_detail::kernel_info(k).name; }
namespace {

struct Case {
  int64_t M, N, K;
  bool ta, tb;
  float alpha, beta;
  int64_t pad = 0;  // extra elements per row of A, B and C (strided lda/ldb/ldc)
};

std::string describe(const Case& c) {
  return fmt::format("M={} N={} K={} ta={} tb={} alpha={} beta={} pad={}", c.M, c.N, c.K, c.ta,
                     c.tb, c.alpha, c.beta, c.pad);
}

// A float GEMM computed as gemm_reference<double> on the same inputs; `bound` is a rigorous
// error bound for float accumulation, (K + 2) * eps * (|alpha| * sum_k |a||b| + |beta * c|).
struct Expected {
  std::vector<double> value, bound;
};

// The sentinel stored outside the M x N window of C (in the ldc padding), which gemm must keep.
constexpr float kSentinel = -12345.0f;

struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C;
};

Operands make_operands(const Case& c, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Operands o;
  o.lda = (c.ta ? c.M : c.K) + c.pad;
  o.ldb = (c.tb ? c.K : c.N) + c.pad;
  o.ldc = c.N + c.pad;
  o.A.resize((c.ta ? c.K : c.M) * o.lda + 1);
  o.B.resize((c.tb ? c.N : c.K) * o.ldb + 1);
  o.C.assign(c.M * o.ldc, kSentinel);
  for (float& x : o.A) x = u(rng);
  for (float& x : o.B) x = u(rng);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) o.C[i * o.ldc + j] = c.beta == 0.0f ? nan : u(rng);
  return o;
}

Expected expected(const Case& c, const Operands& o) {
  auto to_double = [](const std::vector<float>& v, bool absolute) {
    std::vector<double> d(v.size());
    for (size_t i = 0; i < v.size(); ++i) d[i] = absolute ? std::fabs(v[i]) : v[i];
    return d;
  };
  std::vector<double> A = to_double(o.A, false), B = to_double(o.B, false);
  std::vector<double> absA = to_double(o.A, true), absB = to_double(o.B, true);
  Expected e;
  e.value = to_double(o.C, false);
  e.bound.assign(o.C.size(), 0.0);
  gemm_reference<double>(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), o.lda, B.data(), o.ldb,
                         c.beta, e.value.data(), o.ldc);
  gemm_reference<double>(c.ta, c.tb, c.M, c.N, c.K, std::fabs(c.alpha), absA.data(), o.lda,
                         absB.data(), o.ldb, 0.0, e.bound.data(), o.ldc);
  const double eps = std::numeric_limits<float>::epsilon();
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      const int64_t at = i * o.ldc + j;
      const double old_c = c.beta == 0.0f ? 0.0 : std::fabs(c.beta * o.C[at]);
      e.bound[at] = (c.K + 2) * eps * (e.bound[at] + old_c) + 1e-30;
    }
  return e;
}

// Checks C against the expectation inside the window and against the sentinel outside it;
// reports the first few mismatches.
void expect_matches(const Case& c, const Operands& o, const std::vector<float>& C,
                    const Expected& e, const std::string& what) {
  int failures = 0;
  for (int64_t i = 0; i < c.M && failures < 5; ++i)
    for (int64_t j = 0; j < o.ldc && failures < 5; ++j) {
      const int64_t at = i * o.ldc + j;
      if (j >= c.N) {
        if (C[at] != kSentinel) {
          ++failures;
          ADD_FAILURE() << what << ": wrote C[" << i << "][" << j << "] outside N";
        }
      } else if (!(std::fabs(C[at] - e.value[at]) <= e.bound[at])) {
        ++failures;
        ADD_FAILURE() << what << ": C[" << i << "][" << j << "] = " << C[at] << ", expected "
                      << e.value[at] << " +- " << e.bound[at];
      }
    }
}

std::vector<Case> edge_cases() {
  std::vector<Case> cases;
  // Sizes around the tile widths of all kernels (4/6/8 rows, 16/48 columns), plus 1: every
  // row count of the bottom-edge kernels (M % 8 and M % 6 take all their values) and right
  // edges that fill 1..16 lanes of the last vector. N = 1 (A not transposed) and M = 1 (B
  // transposed) are matrix-vector products (the GEMV kernel).
  const int64_t ms[] = {1, 2, 3, 4, 7, 8, 9, 13, 17, 22, 33};
  const int64_t ns[] = {1, 5, 16, 17, 47, 48, 49, 100};
  const int64_t ks[] = {1, 2, 31};
  for (int64_t M : ms)
    for (int64_t N : ns)
      for (int64_t K : ks) {
        const int variant = static_cast<int>(M + N + K);  // vary flags without a 4x blow-up
        const bool ta = variant % 2, tb = (variant / 2) % 2;
        cases.push_back({M, N, K, ta, tb, 1.0f, 0.0f});
        cases.push_back({M, N, K, !ta, !tb, -0.5f, 0.75f, 3});
      }
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      cases.push_back({37, 61, 19, ta, tb, 2.0f, 1.0f, 5});
      cases.push_back({64, 96, 64, ta, tb, 1.0f, 0.0f, 0});
    }
  return cases;
}

// Matrix-vector products (the GEMV kernel): one column of C from A's rows, one row of C from
// B's rows; the vector contiguous or strided (gathered); K around the vector widths (tails);
// enough rows for two threads to split them; alpha/beta of every kind.
std::vector<Case> gemv_cases() {
  std::vector<Case> cases;
  const int64_t ks[] = {1, 7, 8, 16, 17, 100};
  const int64_t lengths[] = {1, 3, 8, 9, 33};
  for (int64_t K : ks)
    for (int64_t m : lengths)
      for (bool strided : {false, true}) {
        const float alpha = K % 2 ? 1.0f : -1.5f, beta = m % 3 == 0 ? 1.0f : (m % 3 == 1 ? 0.0f : 0.5f);
        cases.push_back({m, 1, K, false, !strided, alpha, beta, strided ? 2 : 0});  // C's column
        cases.push_back({1, m, K, strided, true, alpha, beta, strided ? 2 : 0});    // C's row
      }
  cases.push_back({1000, 1, 600, false, false, 1.0f, 0.0f, 1});
  cases.push_back({1, 1000, 600, true, true, 2.0f, 1.0f, 0});
  return cases;
}

// Shapes larger than one cache block of the kernel in each direction (several K blocks
// accumulate into C; several row/column blocks and threads share the work).
std::vector<Case> blocked_cases(const gemm_detail::KernelInfo& ki) {
  return {
      {ki.mc + 37, 20, ki.kc + 9, false, true, 1.0f, 0.5f, 1},
      {70, ki.nc * 2 + 11, ki.kc + 100, true, false, 1.5f, 0.0f, 0},
  };
}

class GemmKernel : public testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam()))
      GTEST_SKIP() << "this CPU cannot run " << gemm_detail::kernel_info(GetParam()).name;
  }

  void check(const std::vector<Case>& cases, std::initializer_list<int> thread_counts) {
    std::mt19937 rng(7);
    for (const Case& c : cases) {
      const Operands o = make_operands(c, rng);
      const Expected e = expected(c, o);
      for (int threads : thread_counts)
        for (Packing packing : {Packing::automatic, Packing::always, Packing::never}) {
          std::vector<float> C = o.C;
          gemm_detail::gemm_with_kernel(GetParam(), threads, packing, c.ta, c.tb, c.M, c.N, c.K,
                                        c.alpha, o.A.data(), o.lda, o.B.data(), o.ldb, c.beta,
                                        C.data(), o.ldc);
          expect_matches(c, o, C, e,
                         fmt::format("{} threads={} packing={} {}",
                                     gemm_detail::kernel_info(GetParam()).name, threads,
                                     static_cast<int>(packing), describe(c)));
        }
    }
  }
};

TEST_P(GemmKernel, EdgeShapes) { check(edge_cases(), {1, 2}); }

TEST_P(GemmKernel, MatrixVectorProducts) { check(gemv_cases(), {1, 2}); }

TEST_P(GemmKernel, SeveralCacheBlocksAndThreads) {
  check(blocked_cases(gemm_detail::kernel_info(GetParam())), {1, 2});
}

// Three threads make a 3 x 1 or 1 x 3 grid with uneven rectangles.
TEST_P(GemmKernel, OddThreadCount) { check({{129, 250, 300, false, false, 1.0f, 1.0f, 2}}, {3}); }

// Each element of C is the same sum in the same order whatever the thread count (threads only
// split C into rectangles; K blocks are fixed), so training is reproducible across thread
// counts (layers/ops/conv2d_im2col.cpp relies on it). Bitwise, with the packing each
// rectangle's size picks.
TEST_P(GemmKernel, SameBitsForAnyThreadCount) {
  std::vector<Case> cases = blocked_cases(gemm_detail::kernel_info(GetParam()));
  cases.push_back({129, 250, 300, false, false, 1.0f, 1.0f, 2});
  cases.push_back({64, 1200, 150, false, true, 1.0f, 1.0f, 0});  // a conv weight gradient's shape
  cases.push_back({200, 70, 1100, true, false, 1.0f, 0.0f, 0});
  cases.push_back({1000, 1, 600, false, false, 1.0f, 0.0f, 1});  // GEMV
  cases.push_back({1, 1000, 600, true, true, 2.0f, 1.0f, 0});
  std::mt19937 rng(5);
  for (const Case& c : cases) {
    const Operands o = make_operands(c, rng);
    std::vector<float> one = o.C;
    gemm_detail::gemm_with_kernel(GetParam(), 1, Packing::automatic, c.ta, c.tb, c.M, c.N, c.K, c.alpha,
                                  o.A.data(), o.lda, o.B.data(), o.ldb, c.beta, one.data(), o.ldc);
    for (int threads : {2, 3, 4, 7}) {
      std::vector<float> C = o.C;
      gemm_detail::gemm_with_kernel(GetParam(), threads, Packing::automatic, c.ta, c.tb, c.M, c.N, c.K, c.alpha,
                                    o.A.data(), o.lda, o.B.data(), o.ldb, c.beta, C.data(), o.ldc);
      EXPECT_EQ(std::memcmp(C.data(), one.data(), C.size() * sizeof(float)), 0)
          << threads << " threads: " << describe(c);
    }
  }
}

// A and B read in place end where an unreadable page begins: the kernels may ask for the row
// panel after A's last (a prefetch, which never faults) and load B's ragged edge under a mask,
// but must not read past either matrix. A plain load there would crash this test.
TEST_P(GemmKernel, ReadsNothingPastTheEndOfAOrB) {
  std::mt19937 rng(11);
  for (const Case& c : std::vector<Case>{{19, 49, 300, false, false, 1.0f, 0.0f}, {8, 21, 40, false, false, 1.0f, 0.0f}}) {
    Operands o = make_operands(c, rng);
    o.A.pop_back();  // make_operands leaves one spare element after each matrix
    o.B.pop_back();
    const Expected e = expected(c, o);
    const test::GuardedCopy<float> A(o.A), B(o.B);
    for (int threads : {1, 2}) {
      std::vector<float> C = o.C;
      gemm_detail::gemm_with_kernel(GetParam(), threads, Packing::never, c.ta, c.tb, c.M, c.N, c.K, c.alpha,
                                    A.data(), o.lda, B.data(), o.ldb, c.beta, C.data(), o.ldc);
      expect_matches(c, o, C, e, fmt::format("{} threads={} {}", gemm_detail::kernel_info(GetParam()).name,
                                             threads, describe(c)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(, GemmKernel,
                         testing::Values(Isa::baseline, Isa::avx2, Isa::avx512),
                         [](const testing::TestParamInfo<Isa>& info) {
                           return std::string(gemm_detail::kernel_info(info.param).name);
                         });

// The B block is fitted to the L2: half of it at most, whole panels, at least one panel,
// never above the tuned size; kc (the order of each sum) is the same on every machine.
TEST(Gemm, BlocksFitTheL2AndKeepTheirDepth) {
  const gemm_detail::KernelInfo tuned = gemm_detail::generic_kernel();  // kc 256, nc 1024, nr 8
  const int64_t kib = 1024;
  EXPECT_EQ(gemm_detail::fit_blocks_to_l2(tuned, 2048 * kib).nc, 1024);  // 1 MiB block fits
  EXPECT_EQ(gemm_detail::fit_blocks_to_l2(tuned, 1024 * kib).nc, 512);
  EXPECT_EQ(gemm_detail::fit_blocks_to_l2(tuned, 1000 * kib).nc, 496);   // rounded down to nr
  EXPECT_EQ(gemm_detail::fit_blocks_to_l2(tuned, 64 * kib).nc, 32);
  EXPECT_EQ(gemm_detail::fit_blocks_to_l2(tuned, 1 * kib).nc, 8);        // one panel at least
  EXPECT_EQ(gemm_detail::fit_blocks_to_l2(tuned, 64 * 1024 * kib).nc, 1024);  // never above
  EXPECT_EQ(gemm_detail::fit_blocks_to_l2(tuned, 0).nc, 1024);           // unknown: as tuned
  for (int64_t l2 : {0, 64, 1000, 1024, 2048})
    EXPECT_EQ(gemm_detail::fit_blocks_to_l2(tuned, l2 * kib).kc, tuned.kc);
  // What gemm() runs is the fitted kernel, on this CPU's L2.
  for (Isa isa : kAllIsas) {
    const gemm_detail::KernelInfo& used = gemm_detail::kernel_info(isa);
    EXPECT_EQ(used.nc % used.nr(), 0) << used.name;
    if (used.nc > used.nr() && cpu_features().l2_bytes > 0)
      EXPECT_LE(used.kc * used.nc * int64_t(sizeof(float)), cpu_features().l2_bytes / 2) << used.name;
  }
}

// The epilogue on the GEMV path: per element of C's column (bias per row), along C's row.
TEST(Gemm, EpilogueOnMatrixVectorProducts) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (Isa kernel : {Isa::baseline, Isa::avx2, Isa::avx512}) {
    if (!cpu_supports(kernel)) continue;
    for (bool column : {true, false}) {
      const int64_t M = column ? 37 : 1, N = column ? 1 : 37, K = 20, ldc = N + 2, ldr = N + 1;
      std::vector<float> A(M * K), B(K * N), bias(M), residual(M * ldr);
      for (auto* v : {&A, &B, &bias, &residual})
        for (float& x : *v) x = u(rng);
      std::vector<double> product(M * N);
      const std::vector<double> Ad(A.begin(), A.end()), Bd(B.begin(), B.end());
      // B is K x 1 for C's column and N x K (transposed) for C's row, as conv and linear pass it.
      const int64_t ldb = column ? 1 : K;
      gemm_reference<double>(false, !column, M, N, K, 1.0, Ad.data(), K, Bd.data(), ldb, 0.0,
                             product.data(), N);
      const GemmEpilogue<float> e{bias.data(), EpilogueActivation::relu, residual.data(), ldr};
      for (int threads : {1, 2}) {
        std::vector<float> C(M * ldc, std::numeric_limits<float>::quiet_NaN());
        gemm_detail::gemm_with_kernel(kernel, threads, Packing::automatic, false, !column, M, N,
                                      K, 1.0f, A.data(), K, B.data(), ldb, 0.0f, C.data(), ldc, e);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            const double want =
                std::max(product[i * N + j] + bias[i] + residual[i * ldr + j], 0.0);
            EXPECT_NEAR(C[i * ldc + j], want, 1e-5 * (K + 4))
                << gemm_detail::kernel_info(kernel).name << " column=" << column << " at " << i
                << "," << j;
          }
      }
    }
  }
}

TEST(Gemm, PublicFloatEntryPoint) {
  std::mt19937 rng(3);
  for (const Case& c : {Case{33, 70, 129, false, false, 1.0f, 0.0f},
                        Case{5, 300, 2, true, true, -1.0f, 2.0f, 4}}) {
    const Operands o = make_operands(c, rng);
    const Expected e = expected(c, o);
    std::vector<float> C = o.C;
    gemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, o.A.data(), o.lda, o.B.data(), o.ldb, c.beta,
         C.data(), o.ldc);
    expect_matches(c, o, C, e, describe(c));
  }
}

TEST(Gemm, ZeroKOrAlphaOnlyScalesC) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float A[4] = {nan, nan, nan, nan}, B[4] = {nan, nan, nan, nan};
  float C[4] = {nan, nan, nan, nan};
  gemm(false, false, 2, 2, 0, 1.0f, A, 1, B, 2, 0.0f, C, 2);  // K = 0, beta = 0: zeros
  for (float x : C) EXPECT_EQ(x, 0.0f);
  float D[4] = {1, 2, 3, 4};
  gemm(false, false, 2, 2, 2, 0.0f, A, 2, B, 2, 3.0f, D, 2);  // alpha = 0: A, B unread
  EXPECT_EQ(D[0], 3.0f);
  EXPECT_EQ(D[3], 12.0f);
}

TEST(Gemm, DoubleMatchesReference) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (double beta : {0.0, 0.5}) {
        const int64_t M = 13, N = 29, K = 17, lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1,
                      ldc = N + 3;
        std::vector<double> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc);
        for (double& x : A) x = u(rng);
        for (double& x : B) x = u(rng);
        for (double& x : C) x = beta == 0.0 ? std::nan("") : u(rng);
        std::vector<double> R = C;
        gemm(ta, tb, M, N, K, 1.25, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        gemm_reference<double>(ta, tb, M, N, K, 1.25, A.data(), lda, B.data(), ldb, beta,
                               R.data(), ldc);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j)
            ASSERT_NEAR(C[i * ldc + j], R[i * ldc + j], 1e-12)
                << "ta=" << ta << " tb=" << tb << " beta=" << beta << " at " << i << "," << j;
      }
}

TEST(Gemm, RejectsBadStridesAndSizes) {
  float A[16] = {}, B[16] = {}, C[16] = {};
  EXPECT_THROW(gemm(false, false, 2, 2, 3, 1.0f, A, 2, B, 2, 0.0f, C, 2), Error);  // lda < K
  EXPECT_THROW(gemm(false, true, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2), Error);   // ldb < K
  EXPECT_THROW(gemm(false, false, 2, 4, 2, 1.0f, A, 2, B, 4, 0.0f, C, 3), Error);  // ldc < N
  EXPECT_THROW(gemm(false, false, -1, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2), Error);
}

}  // namespace
}  // namespace scalpel
