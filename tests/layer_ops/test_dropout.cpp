// Dropout and drop_path: identity in eval mode, keep-rate statistics, rescaling, gradient =
// the same mask, determinism under a seed.
#include <gtest/gtest.h>

#include <cmath>

#include "layer_ops/op_fixture.h"
#include "layers/functional.h"

namespace scalpel {
namespace {

TEST(Dropout, EvalModeAndZeroProbabilityAreIdentity) {
  Tensor x = Tensor::ones({3, 4});
  Generator gen(1);
  EXPECT_TRUE(nn::dropout(x, 0.5, false, gen).shares_storage(x));
  EXPECT_TRUE(nn::dropout(x, 0.0, true, gen).shares_storage(x));
  EXPECT_TRUE(nn::drop_path(x, 0.5, false, gen).shares_storage(x));
  EXPECT_EQ(nn::dropout(x, 1.0, true, gen).to_vector(), std::vector<double>(12, 0.0));
}

TEST(Dropout, KeepRateAndScale) {
  const int64_t n = 200000;
  for (double p : {0.1, 0.5, 0.8}) {
    SCOPED_TRACE(p);
    Generator gen(7);
    const std::vector<double> y = nn::dropout(Tensor::ones({n}), p, true, gen).to_vector();
    int64_t dropped = 0;
    double total = 0;
    for (double v : y) {
      if (v == 0) ++dropped;
      else EXPECT_NEAR(v, 1 / (1 - p), 1e-6);
      total += v;
    }
    // Binomial(n, p): 5 standard deviations.
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(dropped), n * p, 5 * sd);
    EXPECT_NEAR(total / n, 1.0, 5 * sd / (n * (1 - p)));  // expectation preserved
  }
}

TEST(Dropout, SameSeedSameMaskAndGradientUsesIt) {
  Tensor x = testing::random_leaf({4, 5, 3}, 9);
  Generator a(42), b(42), c(43);
  Tensor ya = nn::dropout(x, 0.3, true, a);
  EXPECT_EQ(ya.to_vector(), nn::dropout(x, 0.3, true, b).to_vector());
  EXPECT_NE(ya.to_vector(), nn::dropout(x, 0.3, true, c).to_vector());
  // Consecutive calls draw fresh masks.
  EXPECT_NE(ya.to_vector(), nn::dropout(x, 0.3, true, a).to_vector());
  // y = x * mask, so dy/dx = mask = y / x elementwise.
  Tensor gx = grad(sum(ya), {x})[0];
  const std::vector<double> g = gx.to_vector(), yv = ya.to_vector(), xv = x.detach().to_vector();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], yv[i] / xv[i], 1e-12);
}

TEST(DropPath, DropsWholeSamples) {
  const int64_t n = 4000;
  Generator gen(5);
  const double p = 0.25;
  Tensor y = nn::drop_path(Tensor::ones({n, 2, 3}), p, true, gen);
  const std::vector<double> v = y.to_vector();
  int64_t dropped = 0;
  for (int64_t s = 0; s < n; ++s) {
    const double first = v[s * 6];
    for (int64_t k = 1; k < 6; ++k) ASSERT_EQ(v[s * 6 + k], first) << "sample " << s;
    if (first == 0) ++dropped;
    else EXPECT_NEAR(first, 1 / (1 - p), 1e-6);
  }
  EXPECT_NEAR(static_cast<double>(dropped), n * p, 5 * std::sqrt(n * p * (1 - p)));
}

TEST(DropPath, Gradcheck) {
  // A fresh generator per call gives the same mask every time, so the function is fixed.
  testing::expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        Generator gen(3);
        return nn::drop_path(in[0], 0.5, true, gen);
      },
      {testing::random_leaf({6, 2, 3}, 10)});
}

TEST(Dropout, BadProbability) {
  Tensor x = Tensor::ones({2});
  EXPECT_THROW(nn::dropout(x, 1.5, true), Error);
  EXPECT_THROW(nn::dropout(x, -0.1, false), Error);
  EXPECT_THROW(nn::drop_path(x, 2, true), Error);
}

}  // namespace
}  // namespace scalpel
