// The bf16 GEMM (tensor/gemm_bf16.h): the scalar rounding against the CPU's conversion, the
// AVX512_BF16 kernel against gemm_bf16_reference (bit for bit within one K block, to float
// rounding across blocks), its epilogue, and the precision switch that routes gemm() to it.
// Kernel tests skip on CPUs without AVX512_BF16.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tensor/error.h"
#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_internal.h"

namespace scalpel {
namespace {

float from_bits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

TEST(Bf16Conversion, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie, even below
  EXPECT_EQ(float_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, even above
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808001u)), 0x3f81);  // past the tie
  EXPECT_EQ(float_to_bf16(from_bits(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to inf
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(from_bits(0x7f800001u)))));  // payload below 16 bits
  EXPECT_EQ(float_to_bf16(from_bits(0x00400000u)), 0x0000);  // denormal -> zero
  EXPECT_EQ(float_to_bf16(from_bits(0x80000001u)), 0x8000);
  EXPECT_EQ(bf16_to_float(0x4049), 3.140625f);
}

bool bf16_cpu() { return bf16_gemm_supported(); }

// The scalar rounding is what the reference uses; the kernel rounds with vcvtne2ps2bf16.
TEST(Bf16Conversion, ScalarMatchesTheCpusConversion) {
  if (!bf16_cpu()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  std::vector<float> x = {0.0f, -0.0f, 1.0f, from_bits(0x3f808000u), from_bits(0x3f818000u),
                          from_bits(0x3f808001u), std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          from_bits(0x00400000u), from_bits(0x80000001u), from_bits(0x00800000u),
                          from_bits(0x007fffffu), std::numeric_limits<float>::quiet_NaN()};
  std::mt19937 rng(3);
  while (x.size() < 32 * 64) x.push_back(from_bits(static_cast<uint32_t>(rng())));  // every exponent
  for (size_t i = 0; i < x.size(); i += 32) {
    for (int64_t n : {int64_t(32), int64_t(31), int64_t(17), int64_t(16), int64_t(3)}) {
      uint32_t pairs[16];
      gemm_detail::avx512_bf16_convert(x.data() + i, n, pairs);
      for (int64_t k = 0; k < 32; ++k) {
        const uint16_t got = static_cast<uint16_t>(k % 2 ? pairs[k / 2] >> 16 : pairs[k / 2] & 0xffff);
        const uint16_t want = k < n ? float_to_bf16(x[i + k]) : 0;
        const bool both_nan = std::isnan(bf16_to_float(got)) && std::isnan(bf16_to_float(want));
        if (!both_nan) ASSERT_EQ(got, want) << fmt::format("x = {:a} (bits {:08x}), n = {}", x[i + k],
                                                          k < n ? std::bit_cast<uint32_t>(x[i + k]) : 0u, n);
      }
    }
  }
}

struct Case {
  int64_t M, N, K;
  bool ta, tb;
  float alpha, beta;
  int64_t pad = 0;
};

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
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j)
      o.C[i * o.ldc + j] = c.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : u(rng);
  return o;
}

std::string describe(const Case& c) {
  return fmt::format("M={} N={} K={} ta={} tb={} alpha={} beta={} pad={}", c.M, c.N, c.K, c.ta, c.tb, c.alpha,
                     c.beta, c.pad);
}

// C from gemm_bf16 against gemm_bf16_reference: equal bits (exact) or within `ulps` float
// roundings of the sum of |products| (K blocks restart the sum); the ldc padding untouched.
void check(const std::vector<Case>& cases, bool exact, std::initializer_list<int> thread_counts) {
  std::mt19937 rng(11);
  for (const Case& c : cases) {
    const Operands o = make_operands(c, rng);
    std::vector<float> want = o.C, scale(o.C.size(), 0.0f);
    gemm_bf16_reference(c.ta, c.tb, c.M, c.N, c.K, c.alpha, o.A.data(), o.lda, o.B.data(), o.ldb, c.beta,
                        want.data(), o.ldc);
    std::vector<float> absA(o.A.size()), absB(o.B.size());
    for (size_t i = 0; i < absA.size(); ++i) absA[i] = std::fabs(o.A[i]);
    for (size_t i = 0; i < absB.size(); ++i) absB[i] = std::fabs(o.B[i]);
    gemm_bf16_reference(c.ta, c.tb, c.M, c.N, c.K, std::fabs(c.alpha), absA.data(), o.lda, absB.data(), o.ldb,
                        0.0f, scale.data(), o.ldc);
    for (int threads : thread_counts) {
      std::vector<float> C = o.C;
      gemm_bf16(c.ta, c.tb, c.M, c.N, c.K, c.alpha, o.A.data(), o.lda, o.B.data(), o.ldb, c.beta, C.data(), o.ldc,
                {}, threads);
      int failures = 0;
      for (int64_t i = 0; i < c.M && failures < 5; ++i)
        for (int64_t j = 0; j < o.ldc && failures < 5; ++j) {
          const int64_t at = i * o.ldc + j;
          const float tol = exact ? 0.0f
                                  : 4.0f * std::numeric_limits<float>::epsilon() *
                                        (scale[at] + (c.beta == 0.0f ? 0.0f : std::fabs(c.beta * o.C[at])) + std::fabs(want[at]));
          const bool ok = j >= c.N ? C[at] == kSentinel : std::fabs(C[at] - want[at]) <= tol;
          if (!ok) {
            ++failures;
            ADD_FAILURE() << describe(c) << " threads=" << threads << ": C[" << i << "][" << j << "] = " << C[at]
                          << ", reference " << (j >= c.N ? kSentinel : want[at]) << " +- " << tol;
          }
        }
    }
  }
}

class GemmBf16 : public testing::Test {
 protected:
  void SetUp() override {
    if (!bf16_cpu()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  }
};

// Within one K block (K <= 512) the kernel sums the pairs in the reference's order, so with
// beta == 0 the bits agree: ragged tiles (every row count, 1..48 columns), odd K (the zero
// pair), every transpose (each packing routine) and strides.
TEST_F(GemmBf16, MatchesReferenceBitForBitInOneKBlock) {
  std::vector<Case> cases;
  const int64_t ms[] = {1, 3, 8, 9, 15, 22};
  const int64_t ns[] = {2, 16, 17, 33, 48, 49, 97};
  const int64_t ks[] = {1, 2, 7, 32, 33, 100};
  for (int64_t M : ms)
    for (int64_t N : ns)
      for (int64_t K : ks) {
        const int variant = static_cast<int>(M + N + K);
        cases.push_back({M, N, K, variant % 2 == 1, (variant / 2) % 2 == 1, variant % 3 ? 1.0f : -2.0f, 0.0f,
                         variant % 5 == 0 ? 3 : 0});
      }
  for (bool ta : {false, true})
    for (bool tb : {false, true}) cases.push_back({40, 70, 511, ta, tb, 0.5f, 0.0f, 1});
  check(cases, /*exact=*/true, {1, 2});
}

// Several K blocks (sums restart per block and accumulate in C), several column blocks,
// beta != 0, strided C, two threads.
TEST_F(GemmBf16, MatchesReferenceAcrossBlocksWithBeta) {
  check({{50, 1000, 1100, false, false, 1.0f, 0.5f, 2},
         {70, 130, 1025, true, true, -1.5f, 1.0f, 0},
         {300, 40, 600, false, true, 1.0f, 0.0f, 1},
         {17, 20, 9, true, false, 2.0f, -1.0f, 5}},
        /*exact=*/false, {1, 2});
}

// What bf16 costs against float: with operands in [-1, 1) each product has a relative error
// below 2^-8, so |C_bf16 - C_double| <= 2^-7 * sum |a||b|. A wrong layout breaks this by far.
TEST_F(GemmBf16, StaysWithinBf16RoundingOfTheExactProduct) {
  const int64_t M = 64, N = 200, K = 300;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> A(M * K), B(K * N), C(M * N);
  for (float& x : A) x = u(rng);
  for (float& x : B) x = u(rng);
  gemm_bf16(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  double worst = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double exact = 0, scale = 0;
      for (int64_t k = 0; k < K; ++k) {
        exact += double(A[i * K + k]) * B[k * N + j];
        scale += std::fabs(double(A[i * K + k]) * B[k * N + j]);
      }
      ASSERT_LE(std::fabs(C[i * N + j] - exact), scale / 128) << i << "," << j;
      worst = std::max(worst, std::fabs(C[i * N + j] - exact) / scale);
    }
  EXPECT_GT(worst, 1e-6);  // the operands were rounded: this is not the float GEMM
}

TEST_F(GemmBf16, AppliesTheEpilogueAfterTheLastKBlock) {
  const int64_t M = 19, N = 230, K = 1030, ldr = N + 3;  // several column panels per thread
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> A(M * K), B(K * N), bias(M), residual(M * ldr);
  for (float& x : A) x = u(rng);
  for (float& x : B) x = u(rng);
  for (float& x : bias) x = u(rng);
  for (float& x : residual) x = u(rng);
  // The kernels apply it in registers before their store (tensor/gemm_store_avx512.h): the
  // bits of the product followed by apply_epilogue, for every activation, with and without
  // bias and residual.
  for (EpilogueActivation act : {EpilogueActivation::none, EpilogueActivation::relu, EpilogueActivation::relu6,
                                 EpilogueActivation::silu, EpilogueActivation::hardswish})
    for (bool with_bias : {false, true})
      for (bool with_residual : {false, true}) {
        const GemmEpilogue<float> e{with_bias ? bias.data() : nullptr, act,
                                    with_residual ? residual.data() : nullptr, ldr};
        std::vector<float> C(M * N), want(M * N);
        gemm_bf16(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N, e, 2);
        gemm_bf16(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, want.data(), N, {}, 2);
        for (int64_t i = 0; i < M; ++i) apply_epilogue(e, i, 0, N, want.data() + i * N);
        EXPECT_EQ(std::memcmp(C.data(), want.data(), C.size() * sizeof(float)), 0)
            << "activation " << int(act) << " bias " << with_bias << " residual " << with_residual;
      }
}

// Puts the process-wide precision back whatever the test does.
struct PrecisionGuard {
  ~PrecisionGuard() { set_float32_matmul_precision(MatmulPrecision::fp32); }
};

TEST_F(GemmBf16, PrecisionSwitchRoutesFloatGemm) {
  PrecisionGuard guard;
  const int64_t M = 24, N = 50, K = 40;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> A(M * K), B(K * N), x(K);
  for (float& v : A) v = u(rng);
  for (float& v : B) v = u(rng);
  for (float& v : x) v = u(rng);
  std::vector<float> fp32(M * N), bf16(M * N), routed(M * N);
  gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, fp32.data(), N);
  gemm_bf16(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, bf16.data(), N);
  ASSERT_NE(fp32, bf16);
  EXPECT_EQ(float32_matmul_precision(), MatmulPrecision::fp32);
  set_float32_matmul_precision(MatmulPrecision::bf16);
  EXPECT_EQ(float32_matmul_precision(), MatmulPrecision::bf16);
  gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, routed.data(), N);
  EXPECT_EQ(routed, bf16);
  // A matrix-vector product stays float.
  std::vector<float> y_fp32(M), y_routed(M);
  set_float32_matmul_precision(MatmulPrecision::fp32);
  gemm(false, false, M, 1, K, 1.0f, A.data(), K, x.data(), 1, 0.0f, y_fp32.data(), 1);
  set_float32_matmul_precision(MatmulPrecision::bf16);
  gemm(false, false, M, 1, K, 1.0f, A.data(), K, x.data(), 1, 0.0f, y_routed.data(), 1);
  EXPECT_EQ(y_routed, y_fp32);
  set_float32_matmul_precision(MatmulPrecision::fp32);
  gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, routed.data(), N);
  EXPECT_EQ(routed, fp32);
}

TEST(GemmBf16Unsupported, SwitchingOnIsAnErrorWithoutAvx512Bf16) {
  if (bf16_cpu()) GTEST_SKIP() << "this CPU has AVX512_BF16";
  EXPECT_THROW(set_float32_matmul_precision(MatmulPrecision::bf16), Error);
  EXPECT_EQ(float32_matmul_precision(), MatmulPrecision::fp32);
}

}  // namespace
}  // namespace scalpel
