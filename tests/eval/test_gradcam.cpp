// Grad-CAM on a network whose class evidence sits in known image regions.
#include <gtest/gtest.h>

#include "apps/gradcam.h"
#include "autograd/functions.h"
#include "layers/functional.h"
#include "layers/modules.h"
#include "tensor/error.h"

namespace scalpel {
namespace {

// conv (1x1, identity on R and G) -> global average pool -> fc (identity): logit 0 is the mean
// red level, logit 1 the mean green level. An image with a red square at the top left and a
// green square at the bottom right puts class 0's evidence at the top left only.
models::ModelOptions two_classes() {
  models::ModelOptions o;
  o.classes = 2;
  return o;
}

class TwoColourNet : public models::Model {
 public:
  TwoColourNet() : Model("TwoColourNet", "two_colour", two_classes()) {
    conv_ = register_module("conv", std::make_shared<nn::Conv2d>(3, 2, 1));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(2, 2));
    set_layout("fc", "conv", 2, 1);
    load_state_dict({{"conv.weight", Tensor::from_vector({1, 0, 0, 0, 1, 0}, {2, 3, 1, 1})},
                     {"conv.bias", Tensor::zeros({2})},
                     {"fc.weight", Tensor::from_vector({1, 0, 0, 1}, {2, 2})},
                     {"fc.bias", Tensor::zeros({2})}});
  }
  Tensor forward_head(const Tensor& f) override { return (*fc_)(nn::global_avg_pool(f)); }

 protected:
  Tensor features(const Tensor& x) override { return (*conv_)(x); }

 private:
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::Linear> fc_;
};

// [1, 3, 16, 16]: red square at rows/cols 2..5, green square at rows/cols 10..13.
Tensor two_squares() {
  std::vector<double> v(3 * 16 * 16, 0.0);
  for (int y = 2; y < 6; ++y)
    for (int x = 2; x < 6; ++x) v[0 * 256 + y * 16 + x] = 1;
  for (int y = 10; y < 14; ++y)
    for (int x = 10; x < 14; ++x) v[1 * 256 + y * 16 + x] = 1;
  return Tensor::from_vector(v, {1, 3, 16, 16});
}

// Fraction of the heatmap's mass in the quadrant (qy, qx).
double quadrant_mass(const GradCamResult& cam, int qy, int qx) {
  double in = 0, all = 0;
  for (int y = 0; y < cam.height; ++y)
    for (int x = 0; x < cam.width; ++x) {
      const double v = cam.heatmap[y * cam.width + x];
      all += v;
      if (y / (cam.height / 2) == qy && x / (cam.width / 2) == qx) in += v;
    }
  return in / all;
}

TEST(GradCam, HighlightsTheRegionTheClassDependsOn) {
  TwoColourNet net;
  const GradCamResult red = gradcam(net, two_squares(), 0);
  ASSERT_EQ(red.width, 16);
  ASSERT_EQ(red.height, 16);
  EXPECT_EQ(red.layer, "conv");
  EXPECT_GT(quadrant_mass(red, 0, 0), 0.95);
  const GradCamResult green = gradcam(net, two_squares(), 1);
  EXPECT_GT(quadrant_mass(green, 1, 1), 0.95);
  float peak = 0;
  for (float v : red.heatmap) peak = std::max(peak, v);
  EXPECT_FLOAT_EQ(peak, 1.0f);
  EXPECT_TRUE(net.is_training());  // mode restored
}

TEST(GradCam, DefaultClassIsThePrediction) {
  TwoColourNet net;
  Tensor x = two_squares();
  const GradCamResult cam = gradcam(net, x);  // the red square is as large as the green: tie -> class 0
  EXPECT_EQ(cam.class_index, 0);
  EXPECT_NEAR(cam.probability, 0.5, 1e-6);
}

TEST(GradCam, BadLayerOrClassIsAnError) {
  TwoColourNet net;
  EXPECT_THROW(gradcam(net, two_squares(), 0, "nope"), Error);
  EXPECT_THROW(gradcam(net, two_squares(), 0, "fc"), Error);  // not a 4-D map
  EXPECT_THROW(gradcam(net, two_squares(), 2), Error);
}

TEST(GradCam, OverlayBlendsJetColours) {
  GradCamResult cam;
  cam.width = 2;
  cam.height = 1;
  cam.heatmap = {0.f, 1.f};
  const data::Image gray(2, 1, 1, 0);
  const data::Image out = gradcam_overlay(gray, cam, 1.0);
  ASSERT_EQ(out.channels, 3);
  EXPECT_GT(out.at(0, 0, 2), 100);  // cold = blue
  EXPECT_EQ(out.at(0, 0, 0), 0);
  EXPECT_GT(out.at(0, 1, 0), 100);  // hot = red
  EXPECT_EQ(out.at(0, 1, 2), 0);
}

}  // namespace
}  // namespace scalpel
