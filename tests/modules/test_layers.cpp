// Concrete layers (layers/modules.h): PyTorch names, shapes and default init, descriptions,
// MACs, modes, and errors naming the layer. The ops themselves are tested in tests/layers.
#include <gtest/gtest.h>

#include <cmath>

#include "layers/modules.h"
#include "support/errors.h"
#include "tensor/error.h"

namespace scalpel::nn {
namespace {

using scalpel::test::error_of;

std::vector<std::string> keys(const Module& m) {
  std::vector<std::string> out;
  for (const auto& nt : m.state_dict()) out.push_back(nt.name);
  return out;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

double std_dev(const Tensor& t) {
  const auto v = t.to_vector();
  double mean = 0, sq = 0;
  for (double x : v) mean += x / static_cast<double>(v.size());
  for (double x : v) sq += (x - mean) * (x - mean) / static_cast<double>(v.size());
  return std::sqrt(sq);
}

// torch's default: weight ~ U(-b, b) and bias ~ U(-b, b) with b = 1 / sqrt(fan_in).
void expect_default_init(const Tensor& weight, const Tensor& bias, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  EXPECT_LE(max_abs(weight), bound);
  EXPECT_GT(max_abs(weight), 0.9 * bound);                    // uses the whole range
  EXPECT_NEAR(std_dev(weight), bound / std::sqrt(3.0), 0.05 * bound);  // uniform, not normal
  if (bias.defined()) {
    EXPECT_LE(max_abs(bias), bound);
  }
}

TEST(Layers, Conv2dShapesNamesAndInit) {
  Conv2dOptions o;
  o.stride = {2, 2};
  o.padding = Padding2d::symmetric(3);
  Conv2d conv(3, 64, 7, o, /*bias=*/false);
  EXPECT_EQ(keys(conv), std::vector<std::string>{"weight"});
  EXPECT_EQ(conv.weight.shape(), (Shape{64, 3, 7, 7}));
  EXPECT_FALSE(conv.bias.defined());
  expect_default_init(conv.weight, conv.bias, 3 * 49);
  EXPECT_EQ(conv.describe(), "3->64, k7, s2, p3, no bias");
  EXPECT_EQ(conv.macs({1, 3, 224, 224}, {1, 64, 112, 112}), int64_t{64} * 112 * 112 * 3 * 49);  // 118 M

  Conv2dOptions dw;
  dw.groups = 32;
  dw.same = true;
  Conv2d depthwise(32, 64, {3, 5}, dw);
  EXPECT_EQ(keys(depthwise), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(depthwise.weight.shape(), (Shape{64, 1, 3, 5}));
  expect_default_init(depthwise.weight, depthwise.bias, 15);
  EXPECT_EQ(depthwise.describe(), "32->64, k3x5, s1, same, g32");
  EXPECT_EQ(depthwise.macs({2, 32, 8, 8}, {2, 64, 8, 8}), int64_t{2} * 64 * 64 * 15);
}

TEST(Layers, ConvTransposeLinearShapes) {
  ConvTranspose2dOptions t;
  t.stride = {2, 2};
  ConvTranspose2d up(64, 32, {2, 2}, t);
  EXPECT_EQ(up.weight.shape(), (Shape{64, 32, 2, 2}));  // [in, out/groups, kh, kw]
  expect_default_init(up.weight, up.bias, 32 * 4);
  EXPECT_EQ(up.describe(), "64->32, k2, s2");
  EXPECT_EQ(up.macs({1, 64, 10, 10}, {1, 32, 20, 20}), int64_t{64} * 100 * 32 * 4);

  Linear fc(512, 1000);
  EXPECT_EQ(keys(fc), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(fc.weight.shape(), (Shape{1000, 512}));
  expect_default_init(fc.weight, fc.bias, 512);
  EXPECT_EQ(fc.macs({4, 512}, {4, 1000}), 4 * 512 * 1000);
  EXPECT_EQ(fc.count_parameters(), 513000);
}

TEST(Layers, BatchNormStateAsTorchvision) {
  BatchNorm2d bn(64, 1e-3, 0.01);
  EXPECT_EQ(keys(bn), (std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                                "num_batches_tracked"}));
  EXPECT_EQ(bn.weight.to_vector(), std::vector<double>(64, 1.0));
  EXPECT_EQ(bn.bias.to_vector(), std::vector<double>(64, 0.0));
  EXPECT_EQ(bn.running_mean.to_vector(), std::vector<double>(64, 0.0));
  EXPECT_EQ(bn.running_var.to_vector(), std::vector<double>(64, 1.0));
  EXPECT_EQ(bn.num_batches_tracked.dtype(), DType::I64);
  EXPECT_EQ(bn.num_batches_tracked.dim(), 0);
  // Keras convention: running mean and variance are the non-trainable parameters.
  EXPECT_EQ(bn.count_parameters(), 128);
  EXPECT_EQ(bn.count_buffers(), 128);
  EXPECT_EQ(bn.describe(), "64, eps 0.001, momentum 0.01");
  EXPECT_THROW(BatchNorm2d(0), Error);
  EXPECT_THROW(BatchNorm2d(4, 0.0), Error);
}

TEST(Layers, ActivationTypesArePyTorchClassNames) {
  EXPECT_EQ(ActivationLayer(Activation{"relu6"}).type(), "ReLU6");
  EXPECT_EQ(ActivationLayer(Activation{"swish"}).type(), "SiLU");
  EXPECT_EQ(ActivationLayer(Activation::parse("leaky_relu:0.1")).type(), "LeakyReLU");
  EXPECT_EQ(ActivationLayer(Activation{"hardswish"}).type(), "Hardswish");
  EXPECT_THROW(ActivationLayer(Activation{"softplus"}), Error);
}

TEST(Layers, DropoutIsIdentityInEvalOnly) {
  Generator gen(3);
  Dropout drop(0.5, &gen);
  Tensor x = Tensor::ones({1000});
  drop.eval();
  EXPECT_EQ(ops::max_abs_diff(drop(x), x), 0);
  drop.train();
  Tensor y = drop(x);
  int64_t zeros = 0;
  for (double v : y.to_vector()) {
    zeros += v == 0;
    if (v != 0) {
      EXPECT_DOUBLE_EQ(v, 2.0);  // survivors scaled by 1 / (1 - p)
    }
  }
  EXPECT_GT(zeros, 400);
  EXPECT_LT(zeros, 600);
  EXPECT_THROW(Dropout(1.0), Error);
}

TEST(Layers, StatelessLayersShapes) {
  Pool2dOptions p;
  p.kernel = {3, 3};
  p.stride = {2, 2};
  p.padding = Padding2d::symmetric(1);
  MaxPool2d pool(p);
  EXPECT_EQ(pool.describe(), "k3, s2, p1");
  EXPECT_EQ(pool(Tensor::zeros({1, 2, 112, 112})).shape(), (Shape{1, 2, 56, 56}));
  EXPECT_EQ(AdaptiveAvgPool2d(7, 7)(Tensor::zeros({2, 3, 9, 13})).shape(), (Shape{2, 3, 7, 7}));
  EXPECT_EQ(GlobalAvgPool()(Tensor::zeros({2, 3, 9, 13})).shape(), (Shape{2, 3}));
  EXPECT_EQ(Flatten()(Tensor::zeros({2, 3, 4, 5})).shape(), (Shape{2, 60}));
  EXPECT_EQ(ZeroPad2d(Padding2d{0, 1, 0, 1})(Tensor::zeros({1, 1, 4, 4})).shape(), (Shape{1, 1, 5, 5}));
  EXPECT_EQ(Upsample(2, "bilinear", true)(Tensor::zeros({1, 1, 3, 4})).shape(), (Shape{1, 1, 6, 8}));
  EXPECT_THROW(Upsample(2, "bicubic"), Error);
}

TEST(Layers, SamePaddingFollowsTheInputSize) {
  Conv2dOptions o;
  o.stride = {2, 2};
  o.same = true;
  Conv2d conv(3, 4, 3, o);
  EXPECT_EQ(conv(Tensor::zeros({1, 3, 9, 8})).shape(), (Shape{1, 4, 5, 4}));  // ceil(in / stride)
  EXPECT_EQ(conv(Tensor::zeros({1, 3, 224, 224})).shape(), (Shape{1, 4, 112, 112}));
}

TEST(Layers, BadInputNamesTheLayer) {
  Sequential net;
  net.add("stem", std::make_shared<Conv2d>(3, 8, 3));
  net.add("bn", std::make_shared<BatchNorm2d>(8));
  net.add("fc", std::make_shared<Linear>(8, 2));
  std::string message = error_of([&] { net(Tensor::zeros({1, 1, 8, 8})); });
  EXPECT_NE(message.find("stem (Conv2d 3->8, k3, s1, p0): expected 3 input channels, got input [1, 1, 8, 8]"),
            std::string::npos)
      << message;
  message = error_of([&] { (*net.child("bn"))(Tensor::zeros({1, 4, 2, 2})); });
  EXPECT_NE(message.find("bn (BatchNorm2d"), std::string::npos) << message;
  message = error_of([&] { (*net.child("fc"))(Tensor::zeros({1, 7})); });
  EXPECT_NE(message.find("fc (Linear 8->2): expected 8 input features"), std::string::npos) << message;
  Conv2dOptions grouped;
  grouped.groups = 4;
  EXPECT_NE(error_of([&] { Conv2d(6, 4, 3, grouped); }).find("groups 4 must divide"),
            std::string::npos);
}

}  // namespace
}  // namespace scalpel::nn
