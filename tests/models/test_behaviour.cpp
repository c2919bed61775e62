// Behaviour of the built models: training vs evaluation (dropout, drop-path, BatchNorm),
// headless mode and head names, the feature map, forward + backward of small models, and the
// errors a user can cause (unknown name, bad option, wrong channels, input too small).
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/autograd.h"
#include "layers/blocks.h"
#include "models/registry.h"
#include "models_test_util.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

using test::error_of;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector(), vb = b.to_vector();
  EXPECT_EQ(va.size(), vb.size());
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

Tensor random_input(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, gen);
}

TEST(Modes, DropoutOnlyInTraining) {
  ModelOptions o;
  o.dropout = 0.5;
  auto model = create_model("mobilenet_v2", o);
  const Tensor x = random_input({2, 3, 32, 32}, 1);
  NoGradGuard no_grad;
  model->eval();
  const Tensor e1 = (*model)(x), e2 = (*model)(x);
  EXPECT_EQ(max_abs_diff(e1, e2), 0.0) << "evaluation is deterministic";
  model->train();
  const Tensor t1 = (*model)(x), t2 = (*model)(x);
  EXPECT_GT(max_abs_diff(t1, t2), 1e-6) << "training draws new dropout masks";
}

TEST(Modes, StochasticDepthGrowsLinearlyAndActsInTraining) {
  auto model = create_model("efficientnet_b0");
  std::vector<double> probs;
  for (const auto& [name, m] : model->named_modules())
    if (auto* mb = dynamic_cast<nn::MBConv*>(m)) probs.push_back(mb->stochastic_depth->p);
  ASSERT_EQ(probs.size(), 16u);  // torchvision: 1 + 2 + 2 + 3 + 3 + 4 + 1 blocks
  for (size_t i = 0; i < probs.size(); ++i) EXPECT_DOUBLE_EQ(probs[i], 0.2 * static_cast<double>(i) / 16.0);

  // With dropout off, only drop-path makes two training passes differ (BatchNorm uses batch
  // statistics, identical for the same batch).
  ModelOptions o;
  o.dropout = 0.0;
  o.drop_path = 0.9;
  auto deep = create_model("efficientnet_b0", o);
  const Tensor x = random_input({4, 3, 32, 32}, 2);
  NoGradGuard no_grad;
  deep->train();
  EXPECT_GT(max_abs_diff((*deep)(x), (*deep)(x)), 1e-6);
  ModelOptions no_drop = o;
  no_drop.drop_path = 0.0;
  auto plain = create_model("efficientnet_b0", no_drop);
  plain->train();
  EXPECT_EQ(max_abs_diff((*plain)(x), (*plain)(x)), 0.0);
}

TEST(Modes, BatchNormStatisticsUpdateOnlyInTraining) {
  auto model = create_model("resnet18");
  auto* bn = dynamic_cast<nn::BatchNorm2d*>(model->child("bn1").get());
  ASSERT_NE(bn, nullptr);
  const Tensor x = random_input({2, 3, 32, 32}, 3);
  NoGradGuard no_grad;
  model->eval();
  (*model)(x);
  EXPECT_EQ(bn->running_mean.to_vector(), std::vector<double>(64, 0.0));
  EXPECT_EQ(bn->num_batches_tracked.item(), 0);
  model->train();
  (*model)(x);
  EXPECT_GT(max_abs_diff(bn->running_mean, Tensor::zeros({64})), 0.0);
  EXPECT_EQ(bn->num_batches_tracked.item(), 1);
}

// mean and standard deviation of a tensor's elements
std::pair<double, double> moments(const Tensor& t) {
  const auto v = t.to_vector();
  double sum = 0, sq = 0;
  for (double x : v) sum += x;
  const double mean = sum / static_cast<double>(v.size());
  for (double x : v) sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sq / static_cast<double>(v.size()))};
}

TEST(Init, FollowsTheReferenceImplementations) {
  auto parameter = [](Model& m, const std::string& name) {
    for (const auto& p : m.named_parameters())
      if (p.name == name) return p.tensor;
    ADD_FAILURE() << "no parameter " << name;
    return Tensor();
  };
  // torchvision MobileNetV2: convs kaiming_normal_(fan_out), Linear normal(0, 0.01), bias 0.
  auto v2 = create_model("mobilenet_v2");
  auto [conv_mean, conv_std] = moments(parameter(*v2, "features.18.0.weight"));  // [1280, 320, 1, 1]
  EXPECT_NEAR(conv_mean, 0.0, 0.002);
  EXPECT_NEAR(conv_std, std::sqrt(2.0 / 1280), 0.02 * std::sqrt(2.0 / 1280));
  auto [fc_mean, fc_std] = moments(parameter(*v2, "classifier.1.weight"));
  EXPECT_NEAR(fc_mean, 0.0, 1e-4);
  EXPECT_NEAR(fc_std, 0.01, 2e-4);
  EXPECT_EQ(moments(parameter(*v2, "classifier.1.bias")).second, 0.0);
  // torchvision EfficientNet: Linear uniform(+-1/sqrt(out_features)) -> std 1/sqrt(3 * 1000).
  auto b0 = create_model("efficientnet_b0");
  EXPECT_NEAR(moments(parameter(*b0, "classifier.1.weight")).second, 1 / std::sqrt(3000.0), 5e-4);
  // Keras ResNetV2: glorot_uniform, biases 0: std sqrt(2 / (fan_in + fan_out)) for the fc.
  auto r2 = create_model("resnet50_v2");
  EXPECT_NEAR(moments(parameter(*r2, "fc.weight")).second, std::sqrt(2.0 / 3048), 5e-4);
  EXPECT_EQ(moments(parameter(*r2, "conv1.bias")).second, 0.0);
}

TEST(Heads, NamesAndHeadlessFeatures) {
  struct Case {
    std::string name;
    std::vector<std::string> head_params;
    std::string feature_layer;
    int64_t feature_dim;
  };
  const Case cases[] = {
      {"resnet18", {"fc.weight", "fc.bias"}, "layer4", 512},
      {"vgg11_bn", {"classifier.6.weight", "classifier.6.bias"}, "features", 4096},
      {"mobilenet_v2", {"classifier.1.weight", "classifier.1.bias"}, "features", 1280},
      {"efficientnet_b0", {"classifier.1.weight", "classifier.1.bias"}, "features", 1280},
      {"mobilenet_v1", {"fc.weight", "fc.bias"}, "stage3", 1024},
      {"resnet50_v2", {"fc.weight", "fc.bias"}, "post_relu", 2048},
  };
  const Tensor x = random_input({2, 3, 32, 32}, 4);
  nn::SkipInitGuard shapes_only;  // values do not matter here; VGG's init would dominate
  for (const Case& c : cases) {
    auto model = create_model(c.name);
    EXPECT_EQ(model->head_parameter_names(), c.head_params) << c.name;
    EXPECT_EQ(model->feature_layer(), c.feature_layer) << c.name;
    EXPECT_EQ(model->feature_dim(), c.feature_dim) << c.name;

    ModelOptions headless;
    headless.headless = true;
    auto body = create_model(c.name, headless);
    EXPECT_TRUE(body->head_parameter_names().empty()) << c.name;
    EXPECT_EQ(body->count_parameters() + c.feature_dim * 1000 + 1000, model->count_parameters()) << c.name;
    NoGradGuard no_grad;
    body->eval();
    EXPECT_EQ((*body)(x).shape(), (Shape{2, c.feature_dim})) << c.name;
  }
}

TEST(Heads, UNetHeadIsTheOutputConv) {
  ModelOptions o;
  o.base_width = 4;
  o.classes = 3;
  auto model = create_model("unet", o);
  EXPECT_EQ(model->head_parameter_names(), (std::vector<std::string>{"outc.conv.weight", "outc.conv.bias"}));
  o.headless = true;
  auto body = create_model("unet", o);
  body->eval();  // training-mode BatchNorm refuses the 1x1 bottom level of a single image
  NoGradGuard no_grad;
  EXPECT_EQ((*body)(Tensor::zeros({1, 3, 20, 24})).shape(), (Shape{1, 4, 20, 24}));
}

TEST(Features, ForwardFeaturesIsTheFeatureLayersOutput) {
  ModelOptions unet;
  unet.base_width = 4;
  const std::pair<std::string, ModelOptions> cases[] = {
      {"resnet18", {}}, {"mobilenet_v2", {}}, {"efficientnet_b0", {}}, {"resnet50_v2", {}}, {"unet", unet}};
  const Tensor x = random_input({1, 3, 48, 40}, 5);
  for (const auto& [name, options] : cases) {
    auto model = create_model(name, options);
    model->eval();
    NoGradGuard no_grad;
    nn::Module* layer = nullptr;
    for (const auto& [n, m] : model->named_modules())
      if (n == model->feature_layer()) layer = m;
    ASSERT_NE(layer, nullptr) << name << ": no module " << model->feature_layer();
    Tensor hooked;
    nn::ForwardHookGuard guard([&](nn::Module& m, const Tensor&, const Tensor& out) {
      if (&m == layer) hooked = out;
    });
    const Tensor features = model->forward_features(x);
    ASSERT_TRUE(hooked.defined()) << name;
    EXPECT_EQ(max_abs_diff(hooked, features), 0.0) << name;
    EXPECT_EQ(features.size(1), model->feature_dim()) << name;
    EXPECT_EQ(max_abs_diff(model->forward_head(features), (*model)(x)), 0.0) << name;
  }
}

TEST(Training, ForwardBackwardReachesEveryParameter) {
  ModelOptions small_v1;
  small_v1.width = 0.25;
  ModelOptions small_v2;
  small_v2.width = 0.35;
  ModelOptions unet;
  unet.base_width = 4;
  unet.classes = 2;
  ModelOptions bilinear = unet;
  bilinear.bilinear = true;
  ModelOptions two_classes;
  two_classes.classes = 2;
  ModelOptions gray = two_classes;
  gray.in_channels = 1;
  gray.drop_path = 0.0;  // a dropped residual branch (both samples) would get no gradient
  const std::tuple<std::string, ModelOptions, Shape> cases[] = {
      {"resnet18", two_classes, {2, 3, 32, 32}},   {"mobilenet_v2", small_v2, {2, 3, 32, 32}},
      {"efficientnet_b0", gray, {2, 1, 32, 32}},   {"mobilenet_v1", small_v1, {2, 3, 40, 40}},
      {"resnet50_v2", two_classes, {2, 3, 32, 32}}, {"unet", unet, {2, 3, 20, 20}},
      {"unet", bilinear, {2, 3, 17, 16}},
  };
  for (const auto& [name, options, shape] : cases) {
    auto model = create_model(name, options);
    model->train();
    const Tensor y = (*model)(random_input(shape, 6));
    backward(sum(mul(y, y)));
    for (const auto& p : model->named_parameters()) {
      const Tensor g = p.tensor.grad();
      ASSERT_TRUE(g.defined()) << name << ": no gradient for " << p.name;
      EXPECT_EQ(g.shape(), p.tensor.shape()) << name << " " << p.name;
      double norm = 0;
      for (double v : g.to_vector()) {
        ASSERT_TRUE(std::isfinite(v)) << name << " " << p.name;
        norm += v * v;
      }
      // Weights must learn. A bias may get exactly zero: when a conv and a training-mode
      // BatchNorm follow it (MobileNetV2's linear bottlenecks), the batch mean removes it.
      if (p.tensor.dim() >= 2) EXPECT_GT(norm, 0.0) << name << ": zero gradient for " << p.name;
    }
  }
}

TEST(Errors, UnknownModelListsTheKnownOnes) {
  const std::string msg = error_of([] { create_model("resnet51"); });
  EXPECT_NE(msg.find("unknown model 'resnet51'"), std::string::npos) << msg;
  for (const std::string& name : model_names()) EXPECT_NE(msg.find(name), std::string::npos) << name;
  EXPECT_NE(error_of([] { model_info("vgg"); }).find("known models"), std::string::npos);
}

TEST(Errors, OptionsAModelDoesNotTake) {
  ModelOptions width;
  width.width = 0.5;
  EXPECT_NE(error_of([&] { create_model("resnet50", width); }).find("resnet50 does not take the option 'width'"),
            std::string::npos);
  ModelOptions bad_width;
  bad_width.width = 0.3;
  EXPECT_NE(error_of([&] { create_model("mobilenet_v1", bad_width); }).find("0.25, 0.5, 0.75 or 1.0"),
            std::string::npos);
  ModelOptions padding;
  padding.padding = "same";
  EXPECT_NE(error_of([&] { create_model("mobilenet_v1", padding); }).find("keras or torch"), std::string::npos);
  ModelOptions act;
  act.activation = "silu";
  EXPECT_NE(error_of([&] { create_model("mobilenet_v1", act); }).find("relu6, relu or leaky_relu"), std::string::npos);
  ModelOptions classes;
  classes.classes = 0;
  EXPECT_NE(error_of([&] { create_model("vgg11", classes); }).find("classes"), std::string::npos);
  ModelOptions dropout;
  dropout.dropout = 1.0;
  EXPECT_NE(error_of([&] { create_model("efficientnet_b0", dropout); }).find("dropout"), std::string::npos);
}

TEST(Errors, InputsNameTheModelAndTheShape) {
  auto model = create_model("resnet18");
  std::string msg = error_of([&] { (*model)(Tensor::zeros({1, 1, 64, 64})); });
  EXPECT_NE(msg.find("resnet18"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 1, 64, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("channels"), std::string::npos) << msg;

  std::shared_ptr<Model> vgg;
  {
    nn::SkipInitGuard not_run;
    vgg = create_model("vgg11");
  }
  msg = error_of([&] { (*vgg)(Tensor::zeros({1, 3, 31, 64})); });
  EXPECT_NE(msg.find("vgg11"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 3, 31, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("too small"), std::string::npos) << msg;

  msg = error_of([&] { (*vgg)(Tensor::zeros({3, 32, 32})); });
  EXPECT_NE(msg.find("[3, 32, 32]"), std::string::npos) << msg;

  ModelOptions gray;
  gray.in_channels = 1;
  gray.base_width = 4;
  auto unet = create_model("unet", gray);
  msg = error_of([&] { (*unet)(Tensor::zeros({1, 3, 32, 32})); });
  EXPECT_NE(msg.find("unet"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expects 1"), std::string::npos) << msg;
  msg = error_of([&] { (*unet)(Tensor::zeros({1, 1, 15, 32})); });
  EXPECT_NE(msg.find("at least 16x16"), std::string::npos) << msg;
}

}  // namespace
}  // namespace scalpel::models
