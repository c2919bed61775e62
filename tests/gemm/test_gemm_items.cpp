// gemm_items (tensor/gemm.h): products whose B and C are items side by side, computed as one
// GEMM whose tiles straddle items. Each item must get, bit for bit, what gemm() gives it alone
// (a conv's result must not depend on how many samples share a GEMM), with the epilogue's
// residual following its item, and nothing outside the items written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_internal.h"

namespace scalpel {
namespace {

using gemm_detail::Packing;

constexpr float kSentinel = -777.0f;

struct ItemsCase {
  int64_t M, K, count, width;
  bool trans_a;
  float beta;
  int64_t gap;  // elements between items beyond one item's rows (and padding per row)
};

std::string describe(const ItemsCase& c) {
  return fmt::format("M={} K={} items={} x {} ta={} beta={} gap={}", c.M, c.K, c.count, c.width, c.trans_a, c.beta,
                     c.gap);
}

class GemmItems : public testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam()))
      GTEST_SKIP() << "this CPU cannot run " << gemm_detail::kernel_info(GetParam()).name;
  }
};

// Widths around the kernel's tiles: 49 (7x7: one whole tile and a straddling one per item), 1,
// 16, 50, 196; several K blocks (K > kc) so straddling tiles accumulate with beta = 1; beta 0
// and not; A either way; rows below MR.
TEST_P(GemmItems, EachItemGetsTheBitsOfItsOwnGemm) {
  const gemm_detail::KernelInfo& ki = gemm_detail::kernel_info(GetParam());
  const std::vector<ItemsCase> cases = {
      {64, 40, 8, 49, false, 0.0f, 0},   {70, 33, 3, 49, true, 0.5f, 5}, {5, 20, 9, 1, false, 0.0f, 2},
      {17, 30, 4, 16, false, 1.0f, 0},   {33, 25, 5, 50, true, 0.0f, 3}, {96, 12, 2, 196, false, 0.0f, 0},
      {40, ki.kc + 70, 4, 49, false, 0.0f, 1}, {9, 2 * ki.kc + 3, 3, 23, true, 0.25f, 0},
  };
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const ItemsCase& c : cases) {
    const int64_t ldb = c.width + c.gap, ldc = c.width + c.gap, lda = (c.trans_a ? c.M : c.K) + c.gap;
    const ColumnItems items{c.count, c.width, c.K * ldb + c.gap, c.M * ldc + c.gap};
    std::vector<float> A((c.trans_a ? c.K : c.M) * lda), B(c.count * items.b_stride), bias(c.M);
    std::vector<float> residual(c.count * items.c_stride), C0(c.count * items.c_stride, kSentinel);
    for (auto* v : {&A, &B, &bias, &residual})
      for (float& x : *v) x = u(rng);
    for (int64_t s = 0; s < c.count; ++s)
      for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < c.width; ++j) C0[s * items.c_stride + i * ldc + j] = u(rng);
    const GemmEpilogue<float> epilogue{bias.data(), EpilogueActivation::relu, residual.data(), ldc};

    std::vector<float> expected = C0;
    for (int64_t s = 0; s < c.count; ++s) {
      const GemmEpilogue<float> e{bias.data(), EpilogueActivation::relu, residual.data() + s * items.c_stride, ldc};
      gemm_detail::gemm_with_kernel(GetParam(), 1, Packing::always, c.trans_a, false, c.M, c.width, c.K, 1.0f,
                                    A.data(), lda, B.data() + s * items.b_stride, ldb, c.beta,
                                    expected.data() + s * items.c_stride, ldc, e);
    }
    for (int threads : {1, 2, 3})
      for (Packing packing : {Packing::automatic, Packing::always, Packing::never}) {
        std::vector<float> C = C0;
        gemm_detail::gemm_items_with_kernel(GetParam(), threads, packing, c.trans_a, c.M, c.K, items, 1.0f, A.data(),
                                            lda, B.data(), ldb, c.beta, C.data(), ldc, epilogue);
        EXPECT_EQ(std::memcmp(C.data(), expected.data(), C.size() * sizeof(float)), 0)
            << ki.name << " threads=" << threads << " packing=" << static_cast<int>(packing) << " " << describe(c);
      }
  }
}

// A prologue (a BatchNorm + ReLU before a 1x1 conv) applied while B is packed gives the bits of
// the same product on B transformed beforehand, on every path: packed tiles, straddling tiles,
// matrix-vector items (which read a transformed copy), one item or several, every thread count.
TEST_P(GemmItems, PrologueGivesTheBitsOfATransformedB) {
  const gemm_detail::KernelInfo& ki = gemm_detail::kernel_info(GetParam());
  const std::vector<ItemsCase> cases = {
      {64, 40, 8, 49, false, 0.0f, 0}, {5, 20, 9, 1, false, 0.0f, 2},  {17, 30, 1, 100, false, 1.0f, 3},
      {33, 25, 5, 50, true, 0.0f, 3},  {128, 12, 1, 196, false, 0.0f, 0}, {40, ki.kc + 70, 4, 49, false, 0.0f, 1},
  };
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const ItemsCase& c : cases) {
    const int64_t ldb = c.width + c.gap, ldc = c.width + c.gap, lda = (c.trans_a ? c.M : c.K) + c.gap;
    const ColumnItems items{c.count, c.width, c.K * ldb + c.gap, c.M * ldc + c.gap};
    std::vector<float> A((c.trans_a ? c.K : c.M) * lda), B(c.count * items.b_stride), bias(c.M), scale(c.K), shift(c.K);
    std::vector<float> C0(c.count * items.c_stride, kSentinel), item_scales(c.count * c.K);
    for (auto* v : {&A, &B, &bias, &scale, &shift, &item_scales})
      for (float& x : *v) x = u(rng);
    for (int64_t s = 0; s < c.count; ++s)
      for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < c.width; ++j) C0[s * items.c_stride + i * ldc + j] = u(rng);
    const GemmEpilogue<float> epilogue{bias.data(), EpilogueActivation::none, nullptr, 0};
    // Per channel; shift only; per item (a squeeze-excite's scales, one row of K per item).
    for (const GemmPrologue<float>& prologue : {GemmPrologue<float>{scale.data(), shift.data(), EpilogueActivation::relu},
                                                GemmPrologue<float>{nullptr, shift.data(), EpilogueActivation::none},
                                                GemmPrologue<float>{item_scales.data(), nullptr, EpilogueActivation::none, c.K}}) {
      std::vector<float> transformed = B;
      for (int64_t s = 0; s < c.count; ++s)
        for (int64_t k = 0; k < c.K; ++k) {
          float* row = transformed.data() + s * items.b_stride + k * ldb;
          const float item_scale = prologue.item_stride ? item_scales[s * c.K + k] : 1.0f;
          apply_prologue(prologue.for_item(s), k, row, c.width, row);
          if (prologue.item_stride) EXPECT_EQ(row[0], B[s * items.b_stride + k * ldb] * item_scale);
        }
      std::vector<float> expected = C0;
      gemm_detail::gemm_items_with_kernel(GetParam(), 1, Packing::always, c.trans_a, c.M, c.K, items, 1.0f, A.data(),
                                          lda, transformed.data(), ldb, c.beta, expected.data(), ldc, epilogue);
      for (int threads : {1, 2})
        for (Packing packing : {Packing::automatic, Packing::never}) {
          std::vector<float> C = C0;
          gemm_detail::gemm_items_with_kernel(GetParam(), threads, packing, c.trans_a, c.M, c.K, items, 1.0f,
                                              A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc, epilogue, prologue);
          EXPECT_EQ(std::memcmp(C.data(), expected.data(), C.size() * sizeof(float)), 0)
              << ki.name << " threads=" << threads << " packing=" << static_cast<int>(packing) << " " << describe(c);
        }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(, GemmItems, testing::Values(Isa::baseline, Isa::avx2, Isa::avx512),
                         [](const testing::TestParamInfo<Isa>& info) {
                           return std::string(gemm_detail::kernel_info(info.param).name);
                         });

// The public entry points: float (best kernel) and double (item by item) agree with
// gemm_reference on each item, and one item is a plain gemm.
TEST(GemmItemsPublic, FloatAndDoubleMatchTheReference) {
  const int64_t M = 20, K = 30, count = 3, width = 49;
  const ColumnItems items{count, width, K * width, M * width};
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> A(M * K), B(count * K * width);
  for (auto* v : {&A, &B})
    for (double& x : *v) x = u(rng);
  const std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end());
  std::vector<double> C(count * M * width), expected(C.size());
  std::vector<float> Cf(C.size());
  gemm_items(false, M, K, items, 1.0, A.data(), K, B.data(), width, 0.0, C.data(), width);
  gemm_items(false, M, K, items, 1.0f, Af.data(), K, Bf.data(), width, 0.0f, Cf.data(), width);
  for (int64_t s = 0; s < count; ++s)
    gemm_reference(false, false, M, width, K, 1.0, A.data(), K, B.data() + s * K * width, width, 0.0,
                   expected.data() + s * M * width, width);
  for (size_t i = 0; i < C.size(); ++i) {
    EXPECT_NEAR(C[i], expected[i], 1e-12) << i;
    EXPECT_NEAR(Cf[i], expected[i], 1e-4) << i;
  }
}

// The prologue against its formula, relu(b * scale + shift), and gemm_reference: float (the
// packed loop nest), double (a transformed copy, item by item) and bf16 precision (likewise).
TEST(GemmItemsPublic, PrologueMatchesTheReference) {
  const int64_t M = 24, K = 40, count = 2, width = 30;
  const ColumnItems items{count, width, K * width, M * width};
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> A(M * K), B(count * K * width), scale(K), shift(K);
  for (auto* v : {&A, &B, &scale, &shift})
    for (double& x : *v) x = u(rng);
  std::vector<double> transformed(B.size()), expected(count * M * width);
  for (int64_t s = 0; s < count; ++s)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < width; ++j) {
        const int64_t at = (s * K + k) * width + j;
        transformed[at] = std::max(0.0, B[at] * scale[k] + shift[k]);
      }
  for (int64_t s = 0; s < count; ++s)
    gemm_reference(false, false, M, width, K, 1.0, A.data(), K, transformed.data() + s * K * width, width, 0.0,
                   expected.data() + s * M * width, width);
  const std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), sf(scale.begin(), scale.end()),
      tf(shift.begin(), shift.end());
  std::vector<double> C(expected.size());
  gemm_items(false, M, K, items, 1.0, A.data(), K, B.data(), width, 0.0, C.data(), width, {},
             {scale.data(), shift.data(), EpilogueActivation::relu});
  for (size_t i = 0; i < C.size(); ++i) EXPECT_NEAR(C[i], expected[i], 1e-12) << i;
  for (MatmulPrecision precision : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    if (precision == MatmulPrecision::bf16 && !bf16_gemm_supported()) continue;
    const MatmulPrecision before = float32_matmul_precision();
    set_float32_matmul_precision(precision);
    std::vector<float> Cf(expected.size());
    gemm_items(false, M, K, items, 1.0f, Af.data(), K, Bf.data(), width, 0.0f, Cf.data(), width, {},
               {sf.data(), tf.data(), EpilogueActivation::relu});
    set_float32_matmul_precision(before);
    const double tolerance = precision == MatmulPrecision::bf16 ? 0.1 : 1e-4;
    for (size_t i = 0; i < Cf.size(); ++i) EXPECT_NEAR(Cf[i], expected[i], tolerance) << i;
  }
}

}  // namespace
}  // namespace scalpel
