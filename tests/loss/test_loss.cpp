// Losses: PyTorch parity for every fixture case (float32 and float64), hand values, gradient
// checks, class-weight helpers and bad-input errors.
#include <gtest/gtest.h>

#include <cmath>

#include "layer_ops/op_fixture.h"
#include "layers/loss.h"
#include "support/errors.h"
#include "tensor/json.h"

namespace scalpel {
namespace {

using nn::Reduction;
using testing::expect_gradcheck;
using testing::expect_parity;
using testing::random_leaf;

Tensor labels(const std::vector<double>& v, const Shape& shape) { return Tensor::from_vector(v, shape, DType::I64); }

using scalpel::test::expect_error;

// ---------------------------------------------------------------- PyTorch parity

std::vector<int64_t> to_counts(const Json& counts) {
  std::vector<int64_t> out;
  for (const Json& c : counts.as_array()) out.push_back(c.as_int());
  return out;
}

// Runs the loss a fixture case describes (attributes in its meta.json).
Tensor run_loss_case(const testing::OpCase& c, const std::map<std::string, Tensor>& in, DType dtype) {
  const Json& m = c.meta();
  const std::string op = m.at("op").as_string();
  const Tensor& x = in.at("x");
  const Tensor target = c.get("target", dtype);
  if (op == "cross_entropy") {
    nn::CrossEntropyOptions o;
    o.reduction = nn::parse_reduction(m.at("reduction").as_string());
    o.label_smoothing = m.at("label_smoothing").as_number();
    o.ignore_index = m.at("ignore_index").as_int();
    if (m.at("class_weight").is_string() && m.at("class_weight").as_string() == "balanced") {
      const std::vector<double> w = nn::balanced_class_weights(to_counts(m.at("class_counts")));
      o.weight = Tensor::from_vector(w, {static_cast<int64_t>(w.size())}, dtype);
      testing::expect_close(o.weight, c.get("weight", dtype), 1e-6, c.name() + " balanced weights");
    } else if (c.has("weight")) {
      o.weight = c.get("weight", dtype);
    }
    return nn::cross_entropy(x, target, o);
  }
  if (op == "binary_cross_entropy_with_logits")
    return nn::binary_cross_entropy_with_logits(x, target, c.has("pos_weight") ? c.get("pos_weight", dtype) : Tensor(),
                                                nn::parse_reduction(m.at("reduction").as_string()));
  if (op == "mse") return nn::mse_loss(x, target, nn::parse_reduction(m.at("reduction").as_string()));
  if (op == "focal_loss") {
    const Reduction r = nn::parse_reduction(m.at("reduction").as_string());
    const double gamma = m.at("gamma").as_number();
    if (m.at("variant").as_string() == "softmax")
      return nn::focal_loss(x, target, gamma, c.has("alpha") ? c.get("alpha", dtype) : Tensor(), r);
    return nn::sigmoid_focal_loss(x, target, m.at("alpha").as_number(), gamma, r);
  }
  if (op == "dice_loss") {
    const double smooth = m.at("smooth").as_number();
    if (m.at("variant").as_string() == "softmax") return nn::dice_loss(x, target, smooth);
    return nn::binary_dice_loss(x, target, smooth);
  }
  fail("unknown loss op '{}' in fixture {}", op, c.name());
}

TEST(Loss, PyTorchParity) {
  std::ifstream in(std::string(SCALPEL_FIXTURES) + "/ops/index.json");
  std::stringstream text;
  text << in.rdbuf();
  const Json index = Json::parse(text.str(), "ops/index.json");
  const Json::Array& cases = index.at("cases").at("losses").as_array();
  ASSERT_GE(cases.size(), 25u);
  for (const Json& name : cases)
    for (DType dtype : {DType::F32, DType::F64}) expect_parity(name.as_string(), dtype, run_loss_case);
  for (DType dtype : {DType::F32, DType::F64})
    expect_parity("ops_extra/cross_entropy_2d_weight_ignore_smoothing_sum", dtype, run_loss_case);
}

// ---------------------------------------------------------------- hand values

TEST(CrossEntropy, HandValues) {
  // Equal logits over 4 classes: -log(1/4) per row.
  Tensor x = Tensor::zeros({3, 4}, DType::F64);
  Tensor t = labels({0, 3, 1}, {3});
  EXPECT_NEAR(nn::cross_entropy(x, t).item(), std::log(4.0), 1e-12);
  nn::CrossEntropyOptions sum_opts;
  sum_opts.reduction = Reduction::Sum;
  EXPECT_NEAR(nn::cross_entropy(x, t, sum_opts).item(), 3 * std::log(4.0), 1e-12);
  // Weighted mean divides by the weights of the (non-ignored) targets: (2a + 3b) / (2 + 3).
  Tensor x2 = Tensor::from_vector({2, 0, 0, 1}, {2, 2}, DType::F64);
  nn::CrossEntropyOptions w;
  w.weight = Tensor::from_vector({2, 3}, {2}, DType::F64);
  const double a = std::log(1 + std::exp(-2.0)), b = std::log(1 + std::exp(-1.0));
  EXPECT_NEAR(nn::cross_entropy(x2, labels({0, 1}, {2}), w).item(), (2 * a + 3 * b) / 5, 1e-12);
  w.ignore_index = 1;
  EXPECT_NEAR(nn::cross_entropy(x2, labels({0, 1}, {2}), w).item(), a, 1e-12);
  // Every target ignored: 0 / 0 = NaN, as PyTorch.
  EXPECT_TRUE(std::isnan(nn::cross_entropy(x2, labels({1, 1}, {2}), w).item()));
}

TEST(CrossEntropy, SegmentationShapes) {
  Tensor x = random_leaf({2, 3, 4, 5}, 1).detach();
  Tensor t = Tensor::empty({2, 4, 5}, DType::I64);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = i % 3;
  nn::CrossEntropyOptions none;
  none.reduction = Reduction::None;
  Tensor per_pixel = nn::cross_entropy(x, t, none);
  EXPECT_EQ(per_pixel.shape(), (Shape{2, 4, 5}));
  // The same as classifying each pixel as a row of [N*H*W, C].
  Tensor rows = x.permute({0, 2, 3, 1}).reshape({40, 3});
  EXPECT_LT(ops::max_abs_diff(per_pixel.reshape({40}), nn::cross_entropy(rows, t.reshape({40}), none)), 1e-12);
}

TEST(BCEWithLogits, HandValuesAndLargeLogits) {
  Tensor x = Tensor::from_vector({0, 100, -100}, {3}, DType::F32);
  Tensor t = Tensor::from_vector({1, 1, 1}, {3}, DType::F32);
  const std::vector<double> l = nn::binary_cross_entropy_with_logits(x, t, {}, Reduction::None).to_vector();
  EXPECT_NEAR(l[0], std::log(2.0), 1e-6);
  EXPECT_NEAR(l[1], 0, 1e-6);
  EXPECT_NEAR(l[2], 100, 1e-4);  // finite, no log(0)
  // pos_weight scales the positive term only.
  Tensor pw = Tensor::from_vector({3}, {1}, DType::F32);
  EXPECT_NEAR(nn::binary_cross_entropy_with_logits(x.slice(0, 0, 1), t.slice(0, 0, 1), pw).item(), 3 * std::log(2.0),
              1e-6);
}

TEST(FocalLoss, GammaZeroIsCrossEntropy) {
  Tensor x = random_leaf({5, 4}, 2).detach();
  Tensor t = labels({0, 1, 2, 3, 1}, {5});
  EXPECT_NEAR(nn::focal_loss(x, t, 0.0).item(), nn::cross_entropy(x, t).item(), 1e-12);
  // gamma > 0 down-weights every example: the loss shrinks.
  EXPECT_LT(nn::focal_loss(x, t, 2.0).item(), nn::cross_entropy(x, t).item());
}

TEST(DiceLoss, PerfectPredictionIsNearZero) {
  Tensor t = labels({0, 1, 1, 0}, {1, 2, 2});
  Tensor x = Tensor::zeros({1, 2, 2, 2}, DType::F64);
  for (int64_t i = 0; i < 4; ++i) x.data<double>()[static_cast<int64_t>(t.data<int64_t>()[i]) * 4 + i] = 30;
  EXPECT_NEAR(nn::dice_loss(x, t, 1e-5).item(), 0, 1e-9);
  Tensor bt = Tensor::from_vector({1, 0, 1}, {3}, DType::F64);
  Tensor bx = Tensor::from_vector({40, -40, 40}, {3}, DType::F64);
  EXPECT_NEAR(nn::binary_dice_loss(bx, bt, 0).item(), 0, 1e-12);
  EXPECT_NEAR(nn::binary_dice_loss(ops::neg(bx), bt, 0).item(), 1, 1e-12);
}

// ---------------------------------------------------------------- gradient checks

TEST(Loss, Gradcheck) {
  Tensor t2 = labels({0, 2, 1, 2, 0}, {5});
  Tensor weight = Tensor::from_vector({0.5, 2, 1.5}, {3}, DType::F64);
  for (Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    for (double smoothing : {0.0, 0.2}) {
      SCOPED_TRACE(fmt::format("reduction {} smoothing {}", static_cast<int>(r), smoothing));
      nn::CrossEntropyOptions o;
      o.reduction = r;
      o.label_smoothing = smoothing;
      o.weight = weight;
      o.ignore_index = 1;
      expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::cross_entropy(in[0], t2, o); },
                       {random_leaf({5, 3}, 3)});
    }
  }
  Tensor seg_t = labels({0, 1, 2, 1, 0, 2, 2, 1, 0, 1, 1, 2}, {2, 2, 3});
  nn::CrossEntropyOptions seg;
  seg.label_smoothing = 0.1;
  expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::cross_entropy(in[0], seg_t, seg); },
                   {random_leaf({2, 3, 2, 3}, 4)});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::dice_loss(in[0], seg_t, 1.0); },
                   {random_leaf({2, 3, 2, 3}, 5)});

  Tensor soft = random_leaf({4, 3}, 6, 0, 1).detach();
  Tensor pos_weight = Tensor::from_vector({0.5, 2, 3}, {3}, DType::F64);
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return nn::binary_cross_entropy_with_logits(in[0], soft, pos_weight, Reduction::Sum);
      },
      {random_leaf({4, 3}, 7)});
  Tensor hard = Tensor::from_vector({1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1}, {4, 3}, DType::F64);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::sigmoid_focal_loss(in[0], hard, 0.25, 2.0); },
                   {random_leaf({4, 3}, 8)});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::binary_dice_loss(in[0], hard, 1.0); },
                   {random_leaf({4, 3}, 9)});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::mse_loss(in[0], soft, Reduction::Mean); },
                   {random_leaf({4, 3}, 10)});
  Tensor alpha = Tensor::from_vector({0.25, 0.5, 1}, {3}, DType::F64);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::focal_loss(in[0], t2, 1.5, alpha); },
                   {random_leaf({5, 3}, 11)});
}

// ---------------------------------------------------------------- class weights

TEST(ClassWeights, Balanced) {
  const std::vector<double> w = nn::balanced_class_weights({50, 10, 40});
  ASSERT_EQ(w.size(), 3u);
  EXPECT_DOUBLE_EQ(w[0], 100.0 / (3 * 50));
  EXPECT_DOUBLE_EQ(w[1], 100.0 / (3 * 10));
  EXPECT_DOUBLE_EQ(w[2], 100.0 / (3 * 40));
  expect_error([] { nn::balanced_class_weights({5, 0}); }, {"class 1", "0 samples"});
}

TEST(ClassWeights, ParseSpec) {
  const std::vector<std::string> names{"COVID", "Normal", "Pneumonia"};
  EXPECT_EQ(nn::parse_class_weights("COVID=3,Normal=1", names), (std::vector<double>{3, 1, 1}));
  EXPECT_EQ(nn::parse_class_weights("Pneumonia=0.5", names), (std::vector<double>{1, 1, 0.5}));
  EXPECT_EQ(nn::parse_class_weights("2,1,0.5", names), (std::vector<double>{2, 1, 0.5}));
  EXPECT_EQ(nn::parse_class_weights("balanced", names, {10, 20, 30}), nn::balanced_class_weights({10, 20, 30}));
  expect_error([&] { nn::parse_class_weights("COVID=3,Flu=2", names); }, {"COVID=3,Flu=2", "unknown class 'Flu'"});
  expect_error([&] { nn::parse_class_weights("1,2", names); }, {"2 values for 3 classes"});
  expect_error([&] { nn::parse_class_weights("COVID=x", names); }, {"'x' is not a non-negative number"});
  expect_error([&] { nn::parse_class_weights("balanced", names, {1, 2}); }, {"2 class counts for 3 classes"});
}

// ---------------------------------------------------------------- errors

TEST(Loss, Errors) {
  Tensor x = Tensor::zeros({4, 3});
  Tensor t = labels({0, 1, 2, 1}, {4});
  nn::CrossEntropyOptions wrong;
  wrong.weight = Tensor::ones({2});
  expect_error([&] { nn::cross_entropy(x, t, wrong); }, {"class weight", "[2]", "3 classes"});
  expect_error([&] { nn::cross_entropy(x, labels({0, 1, 3, 1}, {4})); }, {"target 3", "position 2", "[0, 3)"});
  expect_error([&] { nn::cross_entropy(x, labels({0, 1}, {2})); }, {"[4]", "[2]"});
  expect_error([&] { nn::cross_entropy(x, Tensor::zeros({4})); }, {"int64"});
  expect_error([&] { nn::binary_cross_entropy_with_logits(x, Tensor::zeros({4, 2})); }, {"[4, 2]", "[4, 3]"});
  expect_error([&] { nn::binary_cross_entropy_with_logits(x, Tensor::zeros({4, 3}), Tensor::ones({2})); },
               {"pos_weight", "[2]"});
  expect_error([&] { nn::focal_loss(x, t, 2.0, Tensor::ones({4})); }, {"alpha", "[4]"});
  expect_error([&] { nn::dice_loss(Tensor::zeros({1, 2, 2, 2}), labels({0, 1, 2, 0}, {1, 2, 2})); }, {"2"});
  expect_error([] { nn::parse_reduction("avg"); }, {"'avg'"});
}

}  // namespace
}  // namespace scalpel
