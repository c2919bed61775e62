// Output shapes for input sizes other than 32x32 (see test_counts.cpp):
//  - torchvision models against tests/fixtures/models/output_shapes.json at 224x224, 299x299
//    and 193x257 (the cheap models at every size; ResNet18 at the odd size only);
//  - MobileNet V1's two padding conventions, whose sizes differ at odd inputs;
//  - ResNet50 V2's stage sizes (Keras: stride in the last block of layer1..3);
//  - U-Net at 572x572 (the paper's size) and odd sizes: the mask has the input's size.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "models/registry.h"
#include "models_test_util.h"

namespace scalpel::models {
namespace {

using test::to_shape;

std::map<std::string, Shape> run_shapes(Model& model, const Shape& input, Shape* output) {
  model.eval();
  return test::record_shapes(model, [&] {
    NoGradGuard no_grad;
    *output = model(Tensor::zeros(input)).shape();
  });
}

TEST(TorchvisionShapes, MatchFixture) {
  static const Json shapes = test::read_json(test::fixtures_dir() / "output_shapes.json");
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {"mobilenet_v2", {"224x224", "299x299", "193x257"}},
      {"efficientnet_b0", {"224x224", "299x299", "193x257"}},
      {"resnet18", {"193x257"}},
  };
  for (const auto& [name, sizes] : cases) {
    auto model = create_model(name);
    for (const std::string& size : sizes) {
      const Json& ref = shapes.at("models").at(name).at(size);
      const auto x = size.find('x');
      const int64_t h = std::stoll(size.substr(0, x)), w = std::stoll(size.substr(x + 1));
      Shape logits;
      auto seen = run_shapes(*model, {1, 3, h, w}, &logits);
      EXPECT_EQ(logits, to_shape(ref.at("logits"))) << name << " " << size;
      for (const auto& [module, shape] : ref.at("modules").as_object())
        EXPECT_EQ(seen[module], to_shape(shape)) << name << " " << size << " " << module;
    }
  }
}

TEST(MobileNetV1Shapes, KerasAndTorchPadding) {
  // Keras: SAME stem (ceil(193 / 2) = 97), then (0, 1) padding before the four strided
  // depthwise convs: 97 -> 48 -> 24 (stage1) -> 12 (stage2) -> 6 (stage3).
  // Torch: symmetric padding 1: 97 -> 49 -> 25 -> 13 -> 7.
  struct Case {
    std::string padding;
    int64_t size, stage1, stage2, stage3;
  };
  const Case cases[] = {{"keras", 224, 28, 14, 7}, {"torch", 224, 28, 14, 7}, {"keras", 193, 24, 12, 6},
                        {"torch", 193, 25, 13, 7}};
  for (const Case& c : cases) {
    ModelOptions o;
    o.padding = c.padding;
    o.width = 0.25;
    auto model = create_model("mobilenet_v1", o);
    Shape logits;
    auto seen = run_shapes(*model, {1, 3, c.size, c.size}, &logits);
    EXPECT_EQ(seen["stage1"], (Shape{1, 64, c.stage1, c.stage1})) << c.padding << " " << c.size;
    EXPECT_EQ(seen["stage2"], (Shape{1, 128, c.stage2, c.stage2})) << c.padding << " " << c.size;
    EXPECT_EQ(seen["stage3"], (Shape{1, 256, c.stage3, c.stage3})) << c.padding << " " << c.size;
    EXPECT_EQ(logits, (Shape{1, 1000}));
  }
}

TEST(ResNetV2Shapes, StrideInTheLastBlock) {
  auto model = create_model("resnet50_v2");
  Shape logits;
  auto seen = run_shapes(*model, {1, 3, 96, 96}, &logits);
  EXPECT_EQ(seen["conv1"], (Shape{1, 64, 48, 48}));
  EXPECT_EQ(seen["maxpool"], (Shape{1, 64, 24, 24}));
  EXPECT_EQ(seen["layer1.0"], (Shape{1, 256, 24, 24}));
  EXPECT_EQ(seen["layer1.2"], (Shape{1, 256, 12, 12}));
  EXPECT_EQ(seen["layer2"], (Shape{1, 512, 6, 6}));
  EXPECT_EQ(seen["layer3"], (Shape{1, 1024, 3, 3}));
  EXPECT_EQ(seen["layer4"], (Shape{1, 2048, 3, 3}));
  EXPECT_EQ(seen["post_relu"], (Shape{1, 2048, 3, 3}));
  EXPECT_EQ(seen["avgpool"], (Shape{1, 2048}));
  EXPECT_EQ(logits, (Shape{1, 1000}));
}

TEST(UNetShapes, MaskHasTheInputSize) {
  // base_width 4 keeps the 572x572 pass cheap; the spatial arithmetic is that of width 64.
  ModelOptions o;
  o.classes = 2;
  o.base_width = 4;
  for (bool bilinear : {false, true}) {
    o.bilinear = bilinear;
    auto model = create_model("unet", o);
    Shape mask;
    auto seen = run_shapes(*model, {1, 3, 572, 572}, &mask);
    EXPECT_EQ(mask, (Shape{1, 2, 572, 572})) << "bilinear " << bilinear;
    EXPECT_EQ(seen["inc"], (Shape{1, 4, 572, 572}));
    EXPECT_EQ(seen["down1"], (Shape{1, 8, 286, 286}));
    EXPECT_EQ(seen["down3"], (Shape{1, 32, 71, 71}));
    EXPECT_EQ(seen["down4"], (Shape{1, bilinear ? 32 : 64, 35, 35}));
    EXPECT_EQ(seen["up1.conv"], (Shape{1, bilinear ? 16 : 32, 71, 71}));
    EXPECT_EQ(seen["up4.conv"], (Shape{1, 4, 572, 572}));
  }
  o.bilinear.reset();
  auto model = create_model("unet", o);
  for (const Shape& input : {Shape{2, 3, 16, 16}, Shape{1, 3, 17, 45}, Shape{1, 3, 100, 33}}) {
    Shape mask;
    run_shapes(*model, input, &mask);
    EXPECT_EQ(mask, (Shape{input[0], 2, input[2], input[3]})) << shape_str(input);
  }
}

}  // namespace
}  // namespace scalpel::models
