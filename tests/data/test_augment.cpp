#include <gtest/gtest.h>

#include <cmath>

#include "data/augment.h"
#include "data/transforms.h"
#include "data_test_util.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::data {
namespace {

ImageF gray_ramp(int w, int h) {
  ImageF im(w, h, 1);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) im.at(y, x) = static_cast<float>(10 * y + x);
  return im;
}

TEST(Photometric, HandComputed) {
  ImageF im(2, 1, 1);
  im.pixels = {100, 200};
  adjust_brightness(im, 1.5);
  EXPECT_EQ(im.pixels, (std::vector<float>{150, 255}));  // clamped
  im.pixels = {100, 200};
  adjust_contrast(im, 0.5);  // mean 150: 150 + 0.5 * (v - 150)
  EXPECT_EQ(im.pixels, (std::vector<float>{125, 175}));
  im.pixels = {0, 63.75f};
  adjust_gamma(im, 2.0);  // 255 * (v / 255)^2
  EXPECT_NEAR(im.pixels[1], 255 * 0.0625, 1e-4);
  EXPECT_EQ(im.pixels[0], 0);

  ImageF rgb(1, 1, 3);
  rgb.pixels = {200, 100, 50};
  const float gray = 0.299f * 200 + 0.587f * 100 + 0.114f * 50;
  adjust_saturation(rgb, 0.0);
  for (float v : rgb.pixels) EXPECT_NEAR(v, gray, 1e-3);
  // A half-turn hue shift of pure red is cyan; a third of a turn is green.
  rgb.pixels = {255, 0, 0};
  adjust_hue(rgb, 0.5);
  EXPECT_NEAR(rgb.pixels[0], 0, 1e-3);
  EXPECT_NEAR(rgb.pixels[1], 255, 1e-3);
  EXPECT_NEAR(rgb.pixels[2], 255, 1e-3);
  rgb.pixels = {255, 0, 0};
  adjust_hue(rgb, 1.0 / 3.0);
  EXPECT_NEAR(rgb.pixels[0], 0, 1e-3);
  EXPECT_NEAR(rgb.pixels[1], 255, 1e-3);
}

TEST(Photometric, BlurKeepsConstantsAndSpreadsAnImpulse) {
  ImageF c(9, 9, 1, 80.0f);
  gaussian_blur(c, 1.3);
  for (float v : c.pixels) EXPECT_NEAR(v, 80.0f, 1e-3);
  ImageF d(9, 9, 1, 0.0f);
  d.at(4, 4) = 100;
  gaussian_blur(d, 1.0);
  double total = 0;
  for (float v : d.pixels) total += v;
  EXPECT_NEAR(total, 100, 1e-2);  // interior impulse: mass preserved
  EXPECT_LT(d.at(4, 4), 100);
  EXPECT_NEAR(d.at(4, 3), d.at(3, 4), 1e-5);
  // Normalized 1-D weights exp(-x^2/2) at 0 and 1 (radius 3): centre = w0^2.
  double s = 0;
  for (int i = -3; i <= 3; ++i) s += std::exp(-0.5 * i * i);
  EXPECT_NEAR(d.at(4, 4), 100 / (s * s), 1e-3);
}

TEST(Warp, RotationByNinetyDegreesAndFlips) {
  const ImageF im = gray_ramp(5, 5);
  Geometry g;
  g.angle_deg = 90;  // counter-clockwise on screen: the right column becomes the top row
  const ImageF r = warp(im, g, false, false);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 5; ++x) EXPECT_NEAR(r.at(y, x), im.at(x, 4 - y), 1e-3) << y << "," << x;
  Geometry h;
  h.hflip = true;
  EXPECT_EQ(warp(im, h, false, false).pixels, hflip(im).pixels);
  Geometry v;
  v.vflip = true;
  EXPECT_EQ(warp(Image(to_uint8(im)), v, true, false).pixels, vflip(to_uint8(im)).pixels);
  // Translation by one pixel right: column 0 comes from outside (0, or the edge with fill_edge).
  Geometry t;
  t.tx = 1;
  const ImageF shifted = warp(im, t, false, false);
  const ImageF edged = warp(im, t, false, true);
  for (int y = 0; y < 5; ++y) {
    EXPECT_NEAR(shifted.at(y, 0), 0, 1e-4);
    EXPECT_NEAR(edged.at(y, 0), im.at(y, 0), 1e-4);
    EXPECT_NEAR(shifted.at(y, 3), im.at(y, 2), 1e-4);
  }
  // Zoom 2 about the centre: the centre pixel stays, its neighbour reads half a pixel away.
  Geometry z;
  z.scale = 2;
  const ImageF zoomed = warp(im, z, false, false);
  EXPECT_NEAR(zoomed.at(2, 2), im.at(2, 2), 1e-4);
  EXPECT_NEAR(zoomed.at(2, 3), (im.at(2, 2) + im.at(2, 3)) / 2, 1e-4);
}

TEST(Augment, PresetsAndParsing) {
  const AugmentConfig xray = parse_augment("xray");
  EXPECT_EQ(xray.hflip, 0);
  EXPECT_EQ(xray.vflip, 0);
  EXPECT_GT(xray.rotation, 0);
  EXPECT_GT(xray.zoom, 0);
  const AugmentConfig derm = parse_augment("dermoscopy");
  EXPECT_GT(derm.hflip, 0);
  EXPECT_GT(derm.vflip, 0);
  EXPECT_FALSE(parse_augment("none").enabled());
  const AugmentConfig custom = parse_augment("xray,rotation=5,noise=0.3,fill=edge");
  EXPECT_EQ(custom.rotation, 5);
  EXPECT_EQ(custom.noise, 0.3);
  EXPECT_TRUE(custom.fill_edge);
  EXPECT_NE(custom.describe().find("rotation=5"), std::string::npos);
  EXPECT_THROW(parse_augment("mri"), Error);
  EXPECT_THROW(parse_augment("xray,spin=3"), Error);
  EXPECT_THROW(parse_augment("xray,hflip=2"), Error);
  EXPECT_THROW(parse_augment("xray,rotation=abc"), Error);
}

TEST(Augment, SeededAndXrayNeverFlips) {
  const ImageF im = to_float(testing::pattern_image(24, 20, 3, 5));
  AugmentConfig all = parse_augment("dermoscopy,gamma=0.2,blur=0.5,noise=0.5,translate=0.1,crop_scale=0.5");
  Generator a(11), b(11), c(12);
  const ImageF x = augment(im, all, a), y = augment(im, all, b), z = augment(im, all, c);
  EXPECT_EQ(x.pixels, y.pixels);
  EXPECT_NE(x.pixels, z.pixels);
  for (float v : x.pixels) {
    EXPECT_GE(v, 0);
    EXPECT_LE(v, 255);
  }
  const AugmentConfig xray = parse_augment("xray");
  for (uint64_t seed = 0; seed < 100; ++seed) {
    Generator gen(seed);
    const Geometry g = sample_geometry(xray, 24, 20, gen);
    EXPECT_FALSE(g.hflip || g.vflip);
    EXPECT_LE(std::abs(g.angle_deg), 10);
  }
  Generator none_gen(1);
  EXPECT_EQ(augment(im, parse_augment("none"), none_gen).pixels, im.pixels);
}

TEST(Augment, MaskFollowsTheGeometry) {
  ImageF im(8, 8, 1, 0.0f);
  Image mask(8, 8, 1, 0);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 4; ++x) {
      im.at(y, x) = 255;
      mask.at(y, x) = 255;
    }
  AugmentConfig flip;
  flip.hflip = 1.0;
  Generator gen(3);
  Image m = mask;
  const ImageF out = augment(im, flip, gen, &m);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) EXPECT_EQ(out.at(y, x) > 127, m.at(y, x) > 127);
  EXPECT_EQ(m.at(0, 7), 255);
  EXPECT_EQ(m.at(0, 0), 0);
}

}  // namespace
}  // namespace scalpel::data
