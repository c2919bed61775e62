// Parameter counts, BatchNorm settings and layer output shapes of every model of the zoo:
//  - torchvision models against tests/fixtures/models/param_counts.json and
//    output_shapes.json (written from torchvision by scripts/fixtures/counts.py): trainable
//    and buffer counts with 1000 and 2 classes, number of BatchNorm layers and their
//    (eps, momentum), and the output shape of every module at dotted depth <= 1 for a 32x32
//    input (other sizes in test_shapes.cpp; 32x32 keeps the 25 forward passes cheap);
//  - Keras and U-Net models against the table / Keras' model.summary() totals.
// Models are built under nn::SkipInitGuard: counts and shapes do not depend on the values,
// and initializing the VGGs' 130 M parameters would dominate the run time.
#include <gtest/gtest.h>

#include <set>

#include "autograd/autograd.h"
#include "layers/modules.h"
#include "models/registry.h"
#include "models_test_util.h"

namespace scalpel::models {
namespace {

using test::fixtures_dir;
using test::read_json;
using test::to_shape;

const Json& param_counts() {
  static const Json j = read_json(fixtures_dir() / "param_counts.json");
  return j;
}
const Json& output_shapes() {
  static const Json j = read_json(fixtures_dir() / "output_shapes.json");
  return j;
}

std::set<std::pair<double, double>> batchnorm_settings(Model& model, int64_t* layers) {
  std::set<std::pair<double, double>> settings;
  *layers = 0;
  for (const auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m)) {
      settings.insert({bn->eps, bn->momentum});
      ++*layers;
    }
  return settings;
}

class ModelCounts : public testing::TestWithParam<std::string> {};

TEST_P(ModelCounts, MatchTorchvision) {
  const std::string name = GetParam();
  const Json* ref = param_counts().at("models").find(name);
  ASSERT_NE(ref, nullptr) << name << " is missing from param_counts.json";
  nn::SkipInitGuard counting_only;
  auto model = create_model(name);
  EXPECT_EQ(model->count_parameters(true), ref->at("trainable").as_int());
  EXPECT_EQ(model->count_parameters(), ref->at("trainable").as_int()) << "every parameter trainable";
  EXPECT_EQ(model->count_buffers(), ref->at("buffers").as_int());

  int64_t bn_layers = 0;
  const auto settings = batchnorm_settings(*model, &bn_layers);
  EXPECT_EQ(bn_layers, ref->at("batchnorm_layers").as_int());
  std::set<std::pair<double, double>> expected;
  for (const Json& s : ref->at("batchnorm_eps_momentum").as_array())
    expected.insert({s[0].as_number(), s[1].as_number()});
  EXPECT_EQ(settings, expected);

  // Output shape of every module at depth <= 1, and the logits, for one 32x32 image (or the
  // smallest size of the fixture the network takes: inception_v3 needs 75x75).
  const Json& sizes = output_shapes().at("models").at(name);
  std::string size = "32x32";
  int64_t smallest = 0;
  for (const auto& [hw, _] : sizes.as_object()) {
    const int64_t h = std::stoll(hw.substr(0, hw.find('x'))), w = std::stoll(hw.substr(hw.find('x') + 1));
    if (!sizes.find("32x32") && (smallest == 0 || h * w < smallest)) smallest = h * w, size = hw;
  }
  const Json& shapes = sizes.at(size);
  const int64_t h = std::stoll(size.substr(0, size.find('x'))), w = std::stoll(size.substr(size.find('x') + 1));
  model->eval();
  Shape logits;
  auto seen = test::record_shapes(*model, [&] {
    NoGradGuard no_grad;
    logits = (*model)(Tensor::zeros({1, 3, h, w})).shape();
  });
  EXPECT_EQ(logits, to_shape(shapes.at("logits")));
  std::set<std::string> expected_names;
  for (const auto& [module, shape] : shapes.at("modules").as_object()) {
    expected_names.insert(module);
    ASSERT_TRUE(seen.count(module)) << module << " was not called (or is misnamed)";
    EXPECT_EQ(seen[module], to_shape(shape)) << module;
  }
  for (const auto& [module, shape] : seen) EXPECT_TRUE(expected_names.count(module)) << "extra module " << module;

  // --classes replaces the head only.
  ModelOptions two;
  two.classes = 2;
  EXPECT_EQ(create_model(name, two)->count_parameters(true), ref->at("trainable_2_classes").as_int());
}

// The torchvision models of the registry (the others: KerasAndUNetCounts).
std::vector<std::string> torchvision_models() {
  std::vector<std::string> names;
  for (const std::string& name : model_names())
    if (model_info(name).layout == "torchvision") names.push_back(name);
  return names;
}

TEST(ModelCountsCoverage, EveryTorchvisionModelOfTheFixtureIsInTheRegistry) {
  const auto names = torchvision_models();
  std::set<std::string> ours(names.begin(), names.end());
  std::set<std::string> reference;
  for (const auto& [name, counts] : param_counts().at("models").as_object()) reference.insert(name);
  EXPECT_EQ(ours, reference);
}

INSTANTIATE_TEST_SUITE_P(Zoo, ModelCounts, testing::ValuesIn(torchvision_models()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(KerasAndUNetCounts, MatchReferences) {
  nn::SkipInitGuard counting_only;
  struct Ref {
    std::string name;
    ModelOptions options;
    int64_t trainable, non_trainable;
  };
  ModelOptions unet_3_2;
  unet_3_2.classes = 2;
  // The table (also tests/fixtures/blocks/layouts.json "networks"); 101/152 V2: Keras
  // applications' model.summary() totals 44,675,560 and 60,380,648 (trainable + BatchNorm).
  const Ref refs[] = {
      {"resnet50_v2", {}, 25568360, 45440},
      {"mobilenet_v1", {}, 4231976, 21888},
      {"unet", unet_3_2, 31037698, 11776},
  };
  for (const Ref& r : refs) {
    auto model = create_model(r.name, r.options);
    EXPECT_EQ(model->count_parameters(true), r.trainable) << r.name;
    EXPECT_EQ(model->count_buffers(), r.non_trainable) << r.name;
  }
  auto r101 = create_model("resnet101_v2");
  EXPECT_EQ(r101->count_parameters() + r101->count_buffers(), 44675560);
  auto r152 = create_model("resnet152_v2");
  EXPECT_EQ(r152->count_parameters() + r152->count_buffers(), 60380648);
}

TEST(KerasAndUNetCounts, BatchNormSettings) {
  nn::SkipInitGuard counting_only;
  int64_t layers = 0;
  using Settings = std::set<std::pair<double, double>>;
  EXPECT_EQ(batchnorm_settings(*create_model("resnet50_v2"), &layers), (Settings{{1.001e-5, 0.01}}));
  EXPECT_EQ(batchnorm_settings(*create_model("mobilenet_v1"), &layers), (Settings{{1e-3, 0.01}}));
  EXPECT_EQ(layers, 27);
  ModelOptions torch;
  torch.padding = "torch";
  EXPECT_EQ(batchnorm_settings(*create_model("mobilenet_v1", torch), &layers), (Settings{{1e-5, 0.1}}));
  EXPECT_EQ(batchnorm_settings(*create_model("unet"), &layers), (Settings{{1e-5, 0.1}}));
  EXPECT_EQ(layers, 18);
}

TEST(MobileNetV2Width, MatchesTorchvisionVariants) {
  nn::SkipInitGuard counting_only;
  for (const Json& v : param_counts().at("variants").as_array()) {
    ModelOptions o;
    o.width = v.at("kwargs").at("width_mult").as_number();
    auto model = create_model(v.at("model").as_string(), o);
    EXPECT_EQ(model->count_parameters(true), v.at("trainable").as_int()) << "width " << *o.width;
    EXPECT_EQ(model->count_buffers(), v.at("buffers").as_int()) << "width " << *o.width;
  }
}

TEST(ListModels, CountsAndInfo) {
  const auto& listing = list_models();
  ASSERT_EQ(listing.size(), model_names().size());
  for (const ModelListing& l : listing) {
    const Json* ref = param_counts().at("models").find(l.info.name);
    if (ref) {
      EXPECT_EQ(l.trainable, ref->at("trainable").as_int()) << l.info.name;
      EXPECT_EQ(l.non_trainable, ref->at("buffers").as_int()) << l.info.name;
      // Default input size and preprocessing = torchvision's DEFAULT weights' transforms.
      const Json& pre = ref->at("preprocess");
      EXPECT_EQ(l.info.input_size, pre.at("crop_size")[0].as_int()) << l.info.name;
      EXPECT_EQ(l.info.resize_size, pre.at("resize_size")[0].as_int()) << l.info.name;
      EXPECT_EQ(l.info.interpolation, pre.at("interpolation").as_string()) << l.info.name;
      // torchvision's inception_v3 weights normalize to [-1, 1] (transform_input): "tf".
      EXPECT_EQ(l.info.preprocess, l.info.name == "inception_v3" ? "tf" : "imagenet") << l.info.name;
      EXPECT_EQ(l.info.layout, "torchvision") << l.info.name;
    } else {
      EXPECT_EQ(l.info.preprocess, l.info.name == "unet" ? "unit" : "tf") << l.info.name;
    }
  }
  EXPECT_EQ(model_info("mobilenet_v1").preprocess, "tf");
  ModelOptions torch;
  torch.padding = "torch";
  EXPECT_EQ(model_info("mobilenet_v1", torch).preprocess, "imagenet");
}

}  // namespace
}  // namespace scalpel::models
