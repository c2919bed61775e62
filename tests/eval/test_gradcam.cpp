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

// A heatmap that is 1 on the whole model input, mapped back onto a 100 x 50 image.
GradCamResult ones(int width, int height) {
  GradCamResult cam;
  cam.width = width;
  cam.height = height;
  cam.heatmap.assign(static_cast<size_t>(width) * height, 1.f);
  return cam;
}

TEST(GradCam, HeatmapGoesBackToTheImagesSizeAndGeometry) {
  data::Preprocess p;
  p.width = p.height = 32;
  p.fit = data::Fit::stretch;
  GradCamResult back = heatmap_on_image(ones(32, 32), 100, 50, p);
  ASSERT_EQ(back.width, 100);
  ASSERT_EQ(back.height, 50);
  ASSERT_EQ(back.heatmap.size(), 5000u);
  for (float v : back.heatmap) ASSERT_NEAR(v, 1.f, 1e-6);

  // crop 0.5: the short side 50 -> 64, so the image is 128 x 64 and the input its centre 32 x 32,
  // i.e. x in [48, 80) of 128 and y in [16, 48) of 64: [37.5, 62.5) x [12.5, 37.5) of the image.
  p.fit = data::Fit::crop;
  p.crop_fraction = 0.5;
  back = heatmap_on_image(ones(32, 32), 100, 50, p);
  auto at = [&](int y, int x) { return back.heatmap[static_cast<size_t>(y) * back.width + x]; };
  EXPECT_NEAR(at(25, 50), 1.f, 1e-6);
  EXPECT_NEAR(at(14, 40), 1.f, 1e-6);
  EXPECT_EQ(at(25, 20), 0.f);  // cut away by the crop: no evidence computed there
  EXPECT_EQ(at(5, 50), 0.f);
  EXPECT_EQ(at(45, 80), 0.f);

  // letterbox: the image fills 32 x 16 of the input, rows 8..23; the padding rows are dropped.
  p.fit = data::Fit::letterbox;
  GradCamResult padded = ones(32, 32);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      if (y < 8 || y >= 24) padded.heatmap[static_cast<size_t>(y) * 32 + x] = 0.f;
  back = heatmap_on_image(padded, 100, 50, p);
  for (float v : back.heatmap) ASSERT_NEAR(v, 1.f, 1e-6);
}

}  // namespace
}  // namespace scalpel
