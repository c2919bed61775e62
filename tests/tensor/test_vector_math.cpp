// tensor/vector_math.h at every SIMD level this CPU runs, against float64 formulas written out
// here: a sweep of the float range (every exponent, and a fine linear grid over [-110, 110]),
// the special values, every tail length, in-place calls and untouched memory past the end.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tensor/vector_math.h"

namespace scalpel::vecmath {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// Error allowed relative to the result's magnitude: 2.5 FLT_EPSILON (measured maxima, in
// vector_math.h, are 0.7 for exp and up to 2.0 for silu). Denormal results are judged on their
// own grid: kDenormalUlp = 2^-149.
constexpr double kRelTol = 2.5 * FLT_EPSILON;
const double kDenormalUlp = std::ldexp(1.0, -149);

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
uint32_t to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// Inputs: one in every 10007 float bit patterns of |x| <= 110 (every exponent, denormals
// included), both signs; a 1/512 grid over [-110, 110]; the values around exp's overflow and
// underflow; the special values.
std::vector<float> sweep_inputs() {
  std::vector<float> xs;
  for (uint32_t b = 0; b <= to_bits(110.0f); b += 10007) {
    xs.push_back(from_bits(b));
    xs.push_back(-from_bits(b));
  }
  for (int i = -110 * 512; i <= 110 * 512; ++i) xs.push_back(static_cast<float>(i) / 512.0f);
  for (float x = 87.0f; x <= 105.0f; x += 0.0625f) {
    xs.push_back(x);
    xs.push_back(-x);
  }
  for (float x : {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, -1e-40f, FLT_MIN, -FLT_MIN, 88.72283f, 88.72284f,
                  -87.33654f, -103.9721f, -103.9728f, 1e30f, -1e30f, FLT_MAX, -FLT_MAX, kInf, -kInf, kNaN})
    xs.push_back(x);
  return xs;
}

// y is within tolerance of the float64 value `ref`, whose error scale is `magnitude` (the sum
// of the absolute values of its terms, so a result that cancels is judged against its parts)
// plus `denormal_slack` denormal ulps.
::testing::AssertionResult close(float x, float y, double ref, double magnitude, double denormal_slack = 1.0) {
  if (std::isnan(ref)) {
    if (std::isnan(y)) return ::testing::AssertionSuccess();
  } else if (std::abs(ref) > FLT_MAX) {  // overflows to inf in float
    if (y == static_cast<float>(ref)) return ::testing::AssertionSuccess();
  } else if (std::abs(y - ref) <= kRelTol * magnitude + denormal_slack * kDenormalUlp) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "x = " << x << " (bits 0x" << std::hex << to_bits(x) << std::dec
                                       << "): got " << y << ", float64 " << ref;
}

// The float64 references, with e = exp(-|x|) so that none overflows.
struct Reference {
  double exp, sigmoid, one_minus_sigmoid;
  explicit Reference(float xf) {
    const double x = xf, e = std::exp(-std::abs(x)), d = 1.0 / (1.0 + e);
    exp = std::exp(x);
    sigmoid = x >= 0 ? d : e * d;
    one_minus_sigmoid = x >= 0 ? e * d : d;
  }
};

class VectorMath : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam())) GTEST_SKIP() << "this CPU cannot run " << isa_name(GetParam());
  }
  const Kernels& k() const { return kernels(GetParam()); }
};

TEST_P(VectorMath, ForwardMatchesFloat64OverTheRange) {
  const std::vector<float> xs = sweep_inputs();
  const int64_t n = static_cast<int64_t>(xs.size());
  std::vector<float> e(n), s(n), si(n);
  k().exp(xs.data(), e.data(), n);
  k().sigmoid(xs.data(), s.data(), n);
  k().silu(xs.data(), si.data(), n);
  int failures = 0;
  for (int64_t i = 0; i < n && failures < 10; ++i) {
    const float x = xs[i];
    const Reference r(x);
    const auto exp_ok = close(x, e[i], r.exp, r.exp);
    const auto sigmoid_ok = close(x, s[i], r.sigmoid, r.sigmoid);
    // silu = x s: a denormal s carries its absolute error times |x|.
    const auto silu_ok = close(x, si[i], x * r.sigmoid, std::abs(x * r.sigmoid), 1.0 + std::abs(x));
    EXPECT_TRUE(exp_ok) << "exp";
    EXPECT_TRUE(sigmoid_ok) << "sigmoid";
    EXPECT_TRUE(silu_ok) << "silu";
    failures += !exp_ok + !sigmoid_ok + !silu_ok;
  }
}

TEST_P(VectorMath, BackwardMatchesFloat64OverTheRange) {
  const std::vector<float> xs = sweep_inputs();
  const int64_t n = static_cast<int64_t>(xs.size());
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<float> gy(n), gs(n), gsi(n);
  for (float& g : gy) g = u(rng);
  gy[0] = 0.0f;
  k().sigmoid_backward(xs.data(), gy.data(), gs.data(), n);
  k().silu_backward(xs.data(), gy.data(), gsi.data(), n);
  int failures = 0;
  for (int64_t i = 0; i < n && failures < 10; ++i) {
    const double x = xs[i], g = gy[i];
    const Reference r(xs[i]);
    const double ds = r.sigmoid * r.one_minus_sigmoid;
    // d silu = s (1 + x (1 - s)) changes sign near x = -1.28: judged against |s| (1 + |x (1-s)|).
    const double dsilu = r.sigmoid * (1.0 + x * r.one_minus_sigmoid);
    const double dsilu_magnitude = r.sigmoid * (1.0 + std::abs(x * r.one_minus_sigmoid));
    // Three roundings after the exp (s q, then g): 1 ulp more than the forward.
    const auto sigmoid_ok = close(xs[i], gs[i], g * ds, std::abs(g * ds) * 1.5, 1.0 + std::abs(g));
    const auto silu_ok = close(xs[i], gsi[i], g * dsilu, std::abs(g) * dsilu_magnitude * 1.5,
                               1.0 + std::abs(g * x));
    EXPECT_TRUE(sigmoid_ok) << "sigmoid_backward, grad_y " << gy[i];
    EXPECT_TRUE(silu_ok) << "silu_backward, grad_y " << gy[i];
    failures += !sigmoid_ok + !silu_ok;
  }
}

TEST_P(VectorMath, SpecialValuesAreExact) {
  const std::vector<float> xs{-kInf, kInf, kNaN, 0.0f, -0.0f, 1e30f, -1e30f, 120.0f, -104.0f, -FLT_MAX, FLT_MAX};
  const int64_t n = static_cast<int64_t>(xs.size());
  std::vector<float> e(n), s(n), si(n), ones(n, 1.0f), ds(n), dsi(n);
  k().exp(xs.data(), e.data(), n);
  k().sigmoid(xs.data(), s.data(), n);
  k().silu(xs.data(), si.data(), n);
  k().sigmoid_backward(xs.data(), ones.data(), ds.data(), n);
  k().silu_backward(xs.data(), ones.data(), dsi.data(), n);
  // exp: -inf, inf, NaN, 0, -0, 1e30, -1e30, 120, -104, -max, max (exp(-104) rounds to 0)
  const std::vector<float> exp_expected{0.0f, kInf, kNaN, 1.0f, 1.0f, kInf, 0.0f, kInf, 0.0f, 0.0f, kInf};
  const std::vector<float> sigmoid_expected{0.0f, 1.0f, kNaN, 0.5f, 0.5f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f};
  // silu(-inf) = -inf * 0 = NaN, as x * sigmoid(x) in PyTorch; large negative x gives -0.
  const std::vector<float> silu_expected{kNaN, kInf, kNaN, 0.0f, -0.0f, 1e30f, -0.0f, 120.0f, -0.0f, -0.0f, FLT_MAX};
  const std::vector<float> dsigmoid_expected{0.0f, 0.0f, kNaN, 0.25f, 0.25f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  // silu'(x) = s (1 + x (1 - s)): NaN at +-inf (inf * 0), 1 for large x, -0 for large negative x.
  const std::vector<float> dsilu_expected{kNaN, kNaN, kNaN, 0.5f, 0.5f, 1.0f, -0.0f, 1.0f, -0.0f, -0.0f, 1.0f};
  auto expect_same = [&](const char* what, const std::vector<float>& got, const std::vector<float>& want) {
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(want[i])) {
        EXPECT_TRUE(std::isnan(got[i])) << what << "(" << xs[i] << ") = " << got[i];
      } else {
        EXPECT_EQ(to_bits(got[i]), to_bits(want[i])) << what << "(" << xs[i] << ") = " << got[i] << ", want " << want[i];
      }
    }
  };
  expect_same("exp", e, exp_expected);
  expect_same("sigmoid", s, sigmoid_expected);
  expect_same("silu", si, silu_expected);
  expect_same("sigmoid_backward", ds, dsigmoid_expected);
  expect_same("silu_backward", dsi, dsilu_expected);
}

// Every length 0..67 (each vector tail), at an offset, in place and out of place: the results
// equal those of one long call bit for bit, and nothing past the end is written.
TEST_P(VectorMath, EveryLengthAndInPlace) {
  constexpr int64_t kMax = 67, kOffset = 3, kGuard = 17;
  constexpr float kSentinel = -777.0f;
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-12.0f, 12.0f);
  std::vector<float> x(kMax), g(kMax);
  for (float& v : x) v = u(rng);
  for (float& v : g) v = u(rng);
  using Unary = void (*)(const float*, float*, int64_t);
  using Binary = void (*)(const float*, const float*, float*, int64_t);
  const std::vector<std::pair<const char*, Unary>> unary{{"exp", k().exp}, {"sigmoid", k().sigmoid}, {"silu", k().silu}};
  const std::vector<std::pair<const char*, Binary>> binary{{"sigmoid_backward", k().sigmoid_backward},
                                                           {"silu_backward", k().silu_backward}};
  auto run = [&](const char* name, auto call) {
    std::vector<float> whole(kMax);
    call(x.data(), g.data(), whole.data(), kMax);
    for (int64_t n = 0; n <= kMax; ++n) {
      std::vector<float> out(kOffset + n + kGuard, kSentinel);
      call(x.data(), g.data(), out.data() + kOffset, n);
      std::vector<float> in_place(x.begin(), x.begin() + n);
      call(in_place.data(), g.data(), in_place.data(), n);
      for (int64_t i = 0; i < kOffset; ++i) ASSERT_EQ(out[i], kSentinel) << name << " wrote before the array";
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(to_bits(out[kOffset + i]), to_bits(whole[i])) << name << " n = " << n << " i = " << i;
        ASSERT_EQ(to_bits(in_place[i]), to_bits(whole[i])) << name << " in place, n = " << n << " i = " << i;
      }
      for (int64_t i = kOffset + n; i < static_cast<int64_t>(out.size()); ++i)
        ASSERT_EQ(out[i], kSentinel) << name << " n = " << n << " wrote past the end";
    }
  };
  for (const auto& [name, f] : unary)
    run(name, [f](const float* xp, const float*, float* y, int64_t n) { f(xp, y, n); });
  for (const auto& [name, f] : binary) run(name, f);
}

INSTANTIATE_TEST_SUITE_P(Levels, VectorMath, ::testing::Values(Isa::baseline, Isa::avx2, Isa::avx512),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

TEST(VectorMathDispatch, BestLevelIsSupportedAndUnsupportedOnesThrow) {
  EXPECT_TRUE(cpu_supports(best_isa()));
  EXPECT_EQ(&best_kernels(), &kernels(best_isa()));
  for (Isa level : {Isa::baseline, Isa::avx2, Isa::avx512})
    if (!cpu_supports(level)) EXPECT_THROW(kernels(level), Error);
}

}  // namespace
}  // namespace scalpel::vecmath
