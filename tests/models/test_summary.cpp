// summary (models/summary.h): per-layer rows, totals in the Keras convention, and MACs equal
// to torchvision's Conv2d + Linear multiply-accumulates (param_counts.json "macs_224") and
// to the usual figures (resnet50 ~4.09 G, mobilenet_v2 ~0.30 G, efficientnet_b0 ~0.39 G,
// vgg16 ~15.5 G).
#include <gtest/gtest.h>

#include "layers/modules.h"
#include "models/registry.h"
#include "models/summary.h"
#include "models_test_util.h"

namespace scalpel::models {
namespace {

const Json& param_counts() {
  static const Json j = test::read_json(test::fixtures_dir() / "param_counts.json");
  return j;
}

const SummaryRow* find_row(const Summary& s, const std::string& name) {
  for (const SummaryRow& r : s.rows)
    if (r.name == name) return &r;
  return nullptr;
}

TEST(Summary, Thousands) {
  EXPECT_EQ(thousands(0), "0");
  EXPECT_EQ(thousands(999), "999");
  EXPECT_EQ(thousands(1000), "1,000");
  EXPECT_EQ(thousands(25557032), "25,557,032");
  EXPECT_EQ(thousands(-1234567), "-1,234,567");
}

TEST(Summary, MacsAt224MatchTorchvision) {
  const std::pair<std::string, double> cases[] = {
      {"resnet18", 1.81e9}, {"resnet50", 4.09e9}, {"mobilenet_v2", 0.30e9}, {"efficientnet_b0", 0.39e9}};
  for (const auto& [name, usual] : cases) {
    auto model = create_model(name);
    const Summary s = summarize(*model, {1, 3, 224, 224});
    EXPECT_EQ(s.macs, param_counts().at("models").at(name).at("macs_224").as_int()) << name;
    EXPECT_NEAR(static_cast<double>(s.macs), usual, 0.02 * usual) << name;  // the usual figures are rounded
    EXPECT_EQ(s.output, (Shape{1, 1000}));
  }
}

TEST(Summary, VggMacsScaleWithThePixels) {
  // VGG's convs keep the size and its pools halve it, so conv MACs at 224 are (224/32)^2 = 49
  // times those at 32; the classifier (after the adaptive 7x7 pool) costs the same. This
  // checks vgg16's 224 figure without its 15.5 G forward pass.
  nn::SkipInitGuard macs_only;
  auto model = create_model("vgg16");
  const Summary s = summarize(*model, {1, 3, 32, 32});
  const int64_t classifier = find_row(s, "classifier")->macs;
  EXPECT_EQ(classifier, 25088 * 4096 + 4096 * 4096 + 4096 * 1000);
  const int64_t at_224 = 49 * (s.macs - classifier) + classifier;
  EXPECT_EQ(at_224, param_counts().at("models").at("vgg16").at("macs_224").as_int());
  EXPECT_NEAR(static_cast<double>(at_224), 15.5e9, 0.01 * 15.5e9);
}

TEST(Summary, RowsAndTotals) {
  auto model = create_model("resnet18");
  model->train();
  const Summary s = summarize(*model, {2, 3, 64, 64});
  EXPECT_TRUE(model->is_training()) << "training mode restored";
  EXPECT_EQ(s.total_params, 11689512 + 9600);
  EXPECT_EQ(s.trainable_params, 11689512);
  EXPECT_EQ(s.non_trainable_params, 9600);

  const SummaryRow* conv = find_row(s, "layer1.0.conv1");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->type, "Conv2d");
  EXPECT_EQ(conv->depth, 3);
  EXPECT_EQ(conv->output, (Shape{2, 64, 16, 16}));
  EXPECT_EQ(conv->params, 64 * 64 * 9);
  EXPECT_EQ(conv->macs, 2 * 64 * 16 * 16 * 64 * 9);
  const SummaryRow* layer1 = find_row(s, "layer1");
  ASSERT_NE(layer1, nullptr);
  EXPECT_EQ(layer1->macs, 4 * conv->macs) << "a container sums its children";
  EXPECT_EQ(find_row(s, "fc")->output, (Shape{2, 1000}));

  // Freezing moves parameters to non-trainable.
  model->set_requires_grad("layer1.", false);
  const Summary frozen = summarize(*model, {1, 3, 32, 32});
  EXPECT_EQ(frozen.trainable_params, 11689512 - layer1->params);
  EXPECT_EQ(frozen.non_trainable_params, 9600 + layer1->params);
  EXPECT_EQ(frozen.total_params, s.total_params);

  const std::string text = format_summary(s);
  EXPECT_NE(text.find("Total params: 11,699,112\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Trainable params: 11,689,512\n"), std::string::npos);
  EXPECT_NE(text.find("Non-trainable params: 9,600\n"), std::string::npos);
  EXPECT_NE(text.find("MACs: " + thousands(s.macs) + "\n"), std::string::npos);
  EXPECT_NE(text.find("layer1.0.conv1"), std::string::npos);
  EXPECT_EQ(format_summary(s, 1).find("layer1.0.conv1"), std::string::npos) << "max_depth 1 shows top rows only";
}

TEST(Summary, ForwardErrorsPropagate) {
  nn::SkipInitGuard not_run;
  auto model = create_model("vgg11");
  EXPECT_THROW(summarize(*model, {1, 3, 16, 16}), Error);
  EXPECT_TRUE(model->is_training());
}

}  // namespace
}  // namespace scalpel::models
