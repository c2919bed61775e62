#include <gtest/gtest.h>

#include <map>

#include "data/balance.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::data {
namespace {

TEST(Balance, BalancedWeightsAreSklearns) {
  // n = 100, k = 3 classes with samples: 100 / (3 * n_c); the empty class gets 0.
  const auto w = balanced_class_weights({50, 30, 20, 0});
  EXPECT_NEAR(w[0], 100.0 / 150, 1e-12);
  EXPECT_NEAR(w[1], 100.0 / 90, 1e-12);
  EXPECT_NEAR(w[2], 100.0 / 60, 1e-12);
  EXPECT_EQ(w[3], 0);
}

TEST(Balance, ParseClassWeights) {
  const std::vector<std::string> classes = {"COVID", "Normal", "Viral"};
  EXPECT_EQ(parse_class_weights("COVID=3", classes, {1, 1, 1}), (std::vector<double>{3, 1, 1}));
  EXPECT_EQ(parse_class_weights("COVID=3,Viral=0.5", classes, {1, 1, 1}), (std::vector<double>{3, 1, 0.5}));
  EXPECT_EQ(parse_class_weights("none", classes, {1, 2, 3}), (std::vector<double>{1, 1, 1}));
  EXPECT_NEAR(parse_class_weights("balanced", classes, {10, 20, 30})[0], 60.0 / 30, 1e-12);
  EXPECT_THROW(parse_class_weights("Flu=2", classes, {1, 1, 1}), Error);
  EXPECT_THROW(parse_class_weights("COVID=x", classes, {1, 1, 1}), Error);
  EXPECT_THROW(parse_class_weights("COVID", classes, {1, 1, 1}), Error);
}

TEST(Balance, WeightedSampleFollowsWeights) {
  Generator gen(5);
  const auto draws = weighted_sample({1.0, 0.0, 3.0}, 40000, gen);
  std::map<size_t, int> hist;
  for (size_t i : draws) ++hist[i];
  EXPECT_EQ(hist[1], 0);
  EXPECT_NEAR(hist[2] / 40000.0, 0.75, 0.01);
  EXPECT_THROW(weighted_sample({0.0, 0.0}, 3, gen), Error);
  // Inverse-frequency weights give each class the same expected share.
  const std::vector<int64_t> labels = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2};
  const auto w = inverse_frequency_weights(labels);
  std::map<int64_t, int> per_class;
  for (size_t i : weighted_sample(w, 30000, gen)) ++per_class[labels[i]];
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(per_class[c] / 30000.0, 1.0 / 3, 0.015);
}

TEST(Balance, OversampleEqualizesClasses) {
  const std::vector<int64_t> labels = {0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2};
  Generator gen(1);
  const auto idx = oversample(labels, gen);
  std::map<int64_t, int> per_class;
  std::map<size_t, int> per_sample;
  for (size_t i : idx) {
    ++per_class[labels[i]];
    ++per_sample[i];
  }
  EXPECT_EQ(per_class[0], 7);
  EXPECT_EQ(per_class[1], 7);
  EXPECT_EQ(per_class[2], 7);
  for (size_t i = 0; i < labels.size(); ++i) EXPECT_GE(per_sample[i], 1) << i;  // nobody lost
  EXPECT_EQ(per_sample[0], 1);
  // Class 1 (2 samples): 3 full copies + 1 extra -> counts {4, 3}.
  EXPECT_EQ(per_sample[7] + per_sample[8], 7);
  EXPECT_LE(std::abs(per_sample[7] - per_sample[8]), 1);
}

}  // namespace
}  // namespace scalpel::data
