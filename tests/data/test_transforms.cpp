#include <gtest/gtest.h>

#include <cmath>

#include "data/preprocess.h"
#include "data/transforms.h"
#include "data_test_util.h"
#include "tensor/error.h"
#include "tensor/npy.h"
#include "tensor/random.h"

namespace scalpel::data {
namespace {

const std::string kFixtures = std::string(SCALPEL_FIXTURES) + "/data/";

// Max |a - b| between an image and an HWC fixture of the same shape.
template <typename T>
double max_diff(const ImageT<T>& image, const std::string& fixture) {
  const Tensor ref = load_npy(kFixtures + fixture);
  EXPECT_EQ(ref.shape(), (Shape{image.height, image.width, image.channels})) << fixture;
  const auto v = ref.to_vector();
  double err = 0;
  for (size_t i = 0; i < v.size() && i < image.pixels.size(); ++i)
    err = std::max(err, std::abs(static_cast<double>(image.pixels[i]) - v[i]));
  return err;
}

struct Size { int w, h; };
const Size kSizes[] = {{16, 11}, {53, 41}, {20, 40}, {5, 3}};

TEST(Resize, MatchesTorchvisionAntialiasOnFloat) {
  const ImageF input = to_float(load_image(kFixtures + "input.png"));
  for (Size s : kSizes) {
    const std::string suffix = std::to_string(s.w) + "x" + std::to_string(s.h) + ".npy";
    EXPECT_LT(max_diff(resize(input, s.w, s.h, Interp::bilinear), "tv_bilinear_" + suffix), 2e-3) << suffix;
    EXPECT_LT(max_diff(resize(input, s.w, s.h, Interp::bicubic), "tv_bicubic_" + suffix), 2e-3) << suffix;
    EXPECT_LT(max_diff(resize(input, s.w, s.h, Interp::area), "torch_area_" + suffix), 2e-3) << suffix;
    EXPECT_LT(max_diff(resize(input, s.w, s.h, Interp::bilinear, /*antialias=*/false), "tv_bilinear_noaa_" + suffix),
              2e-3) << suffix;
  }
}

TEST(Resize, MatchesPilOnUint8WithinOneLevel) {
  const Image input = load_image(kFixtures + "input.png");
  for (Size s : kSizes) {
    const std::string suffix = std::to_string(s.w) + "x" + std::to_string(s.h) + ".npy";
    // PIL rounds to uint8 between its two passes; we round once at the end.
    EXPECT_LE(max_diff(resize(input, s.w, s.h, Interp::bilinear), "pil_bilinear_" + suffix), 1.0) << suffix;
    EXPECT_LE(max_diff(resize(input, s.w, s.h, Interp::bicubic), "pil_bicubic_" + suffix), 1.0) << suffix;
  }
}

TEST(Resize, HandComputedValues) {
  // 1-D upsample 2 -> 4, bilinear: centres map to -0.25, 0.25, 0.75, 1.25 (clamped by
  // renormalization at the borders): 10, 12.5, 17.5, 20.
  ImageF a(2, 1, 1);
  a.pixels = {10, 20};
  EXPECT_EQ(resize(a, 4, 1).pixels, (std::vector<float>{10, 12.5, 17.5, 20}));
  // Area 4 -> 2 averages pairs; nearest 4 -> 2 picks floor((i + 0.5) * 2) = 1, 3.
  ImageF b(4, 1, 1);
  b.pixels = {0, 10, 20, 40};
  EXPECT_EQ(resize(b, 2, 1, Interp::area).pixels, (std::vector<float>{5, 30}));
  EXPECT_EQ(resize(b, 2, 1, Interp::nearest).pixels, (std::vector<float>{10, 40}));
  // Antialiased bilinear 4 -> 2 (support 2): output 0 centre 1.0, weights over inputs 0..2
  // triangle((j - 1 + 0.5) / 2) = 0.75, 0.75, 0.25 -> (0*.75 + 10*.75 + 20*.25) / 1.75.
  EXPECT_NEAR(resize(b, 2, 1, Interp::bilinear).pixels[0], (7.5 + 5.0) / 1.75, 1e-5);
  // A constant image stays constant under every filter.
  ImageF c(7, 5, 3, 42.0f);
  for (Interp m : {Interp::nearest, Interp::bilinear, Interp::bicubic, Interp::area})
    for (float v : resize(c, 3, 9, m).pixels) EXPECT_NEAR(v, 42.0f, 1e-4);
  EXPECT_THROW(resize(c, 0, 3), Error);
}

TEST(Resize, ShortSide) {
  ImageF im(40, 20, 1, 1.0f);
  ImageF r = resize_short_side(im, 10);
  EXPECT_EQ(r.width, 20);
  EXPECT_EQ(r.height, 10);
  ImageF t = resize_short_side(ImageF(30, 45, 1), 20);
  EXPECT_EQ(t.width, 20);
  EXPECT_EQ(t.height, 30);
}

TEST(Geometry, CropPadFlipLetterbox) {
  Image im(3, 2, 1);
  im.pixels = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(crop(im, 1, 0, 2, 2).pixels, (std::vector<uint8_t>{2, 3, 5, 6}));
  EXPECT_THROW(crop(im, 2, 0, 2, 2), Error);
  EXPECT_EQ(hflip(im).pixels, (std::vector<uint8_t>{3, 2, 1, 6, 5, 4}));
  EXPECT_EQ(vflip(im).pixels, (std::vector<uint8_t>{4, 5, 6, 1, 2, 3}));
  EXPECT_EQ(pad(im, 1, 0, 0, 1, uint8_t{9}).pixels,
            (std::vector<uint8_t>{9, 1, 2, 3, 9, 4, 5, 6, 9, 9, 9, 9}));
  EXPECT_EQ(pad(im, 1, 0, 0, 1, uint8_t{0}, /*replicate=*/true).pixels,
            (std::vector<uint8_t>{1, 1, 2, 3, 4, 4, 5, 6, 4, 4, 5, 6}));
  // torchvision CenterCrop: offset round((3 - 1) / 2) = 1; a larger crop pads with zeros.
  EXPECT_EQ(center_crop(im, 1, 2).pixels, (std::vector<uint8_t>{2, 5}));
  EXPECT_EQ(center_crop(im, 3, 4).pixels, (std::vector<uint8_t>{0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0}));
  // Letterbox 4x2 into 4x4: stays 4x2, one black row above and below.
  Image wide(4, 2, 1, 100);
  const Image lb = letterbox(wide, 4, 4);
  ASSERT_EQ(lb.height, 4);
  EXPECT_EQ(lb.at(0, 0), 0);
  EXPECT_EQ(lb.at(1, 0), 100);
  EXPECT_EQ(lb.at(2, 3), 100);
  EXPECT_EQ(lb.at(3, 3), 0);
}

TEST(Geometry, RandomResizedCropStaysInsideAndIsSeeded) {
  Generator g1(7), g2(7);
  for (int i = 0; i < 200; ++i) {
    const Rect r = random_resized_crop_rect(64, 48, g1);
    const Rect q = random_resized_crop_rect(64, 48, g2);
    EXPECT_EQ(r.x, q.x);
    EXPECT_EQ(r.width, q.width);
    EXPECT_GE(r.x, 0);
    EXPECT_GE(r.y, 0);
    EXPECT_LE(r.x + r.width, 64);
    EXPECT_LE(r.y + r.height, 48);
    const double area = double(r.width) * r.height / (64.0 * 48.0);
    EXPECT_GE(area, 0.07);
  }
  // An impossible ratio falls back to the centre crop clamped to the ratio.
  Generator g(1);
  const Rect r = random_resized_crop_rect(100, 10, g, {0.9, 1.0}, {1.0, 1.0});
  EXPECT_EQ(r.width, 10);
  EXPECT_EQ(r.height, 10);
  EXPECT_EQ(r.x, 45);
  Generator g3(3);
  const Image out = random_resized_crop(testing::pattern_image(50, 40, 3, 2), 16, 16, g3);
  EXPECT_EQ(out.width, 16);
  EXPECT_EQ(out.channels, 3);
}

TEST(Normalize, PresetsOnHandComputedPixels) {
  Image im(1, 1, 3);
  im.pixels = {255, 0, 51};
  std::vector<float> out(3);
  normalize_to_chw(im, normalization_preset("imagenet"), out.data());
  EXPECT_NEAR(out[0], (1.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(out[1], (0.0 - 0.456) / 0.224, 1e-5);
  EXPECT_NEAR(out[2], (0.2 - 0.406) / 0.225, 1e-5);
  normalize_to_chw(im, normalization_preset("tf"), out.data());
  EXPECT_NEAR(out[0], 1.0, 1e-6);
  EXPECT_NEAR(out[1], -1.0, 1e-6);
  EXPECT_NEAR(out[2], 51 / 127.5 - 1, 1e-6);
  normalize_to_chw(im, normalization_preset("unit"), out.data());
  EXPECT_NEAR(out[2], 0.2, 1e-6);
  // caffe: BGR order, minus the BGR means.
  normalize_to_chw(im, normalization_preset("caffe"), out.data());
  EXPECT_NEAR(out[0], 51 - 103.939, 1e-4);
  EXPECT_NEAR(out[1], 0 - 116.779, 1e-4);
  EXPECT_NEAR(out[2], 255 - 123.68, 1e-4);
  EXPECT_THROW(normalization_preset("bogus"), Error);

  // Planar layout of a 2x1 RGB image: [R0 R1 G0 G1 B0 B1].
  Image two(2, 1, 3);
  two.pixels = {0, 10, 20, 30, 40, 50};
  const Tensor t = to_tensor(two, normalization_preset("none"));
  EXPECT_EQ(t.shape(), (Shape{1, 3, 1, 2}));
  EXPECT_EQ(t.to_vector(), (std::vector<double>{0, 30, 10, 40, 20, 50}));
}

}  // namespace
}  // namespace scalpel::data

namespace scalpel::data {
namespace {

TEST(Preprocess, MatchesTorchvisionEvalPipeline) {
  // Resize(16) + CenterCrop(14) + ToTensor + Normalize(ImageNet) on a PIL image.
  Preprocess p;
  p.width = p.height = 14;
  p.fit = Fit::crop;
  p.crop_fraction = 0.875;  // round(14 / 0.875) = 16
  const Tensor ours = preprocess_file(kFixtures + "input.png", p);
  const Tensor ref = load_npy(kFixtures + "tv_preprocess_crop14.npy");
  ASSERT_EQ(ours.shape(), ref.shape());
  const auto a = ours.to_vector(), b = ref.to_vector();
  double err = 0;
  for (size_t i = 0; i < a.size(); ++i) err = std::max(err, std::abs(a[i] - b[i]));
  EXPECT_LT(err, 1.5 / 255 / 0.224);  // PIL's uint8 resize may differ by one level
}

TEST(Preprocess, FitModesAndChannels) {
  const Image im = testing::pattern_image(30, 20, 1, 4);
  Preprocess p;
  p.width = 12;
  p.height = 12;
  p.fit = Fit::stretch;
  EXPECT_EQ(fit_image(im, p).pixels, convert_channels(resize(im, 12, 12), 3).pixels);
  p.fit = Fit::crop;
  p.crop_fraction = 0.75;  // short side 16, then a 12x12 centre crop
  EXPECT_EQ(fit_image(im, p).pixels, convert_channels(center_crop(resize(im, 24, 16), 12, 12), 3).pixels);
  p.fit = Fit::letterbox;
  const Image lb = fit_image(im, p);
  EXPECT_EQ(lb.at(0, 5, 0), 0);  // 30x20 -> 12x8 with 2 black rows above and below
  EXPECT_EQ(lb.at(2, 5, 0), resize(im, 12, 8).at(0, 5));
  p.channels = 1;
  EXPECT_EQ(fit_image(im, p).channels, 1);
  // A mask of another size is first brought to its image's size with nearest.
  Image mask(15, 10, 1, 0);
  for (int y = 0; y < 10; ++y) mask.at(y, 0) = 255;
  p.fit = Fit::stretch;
  const Image m = fit_mask(mask, 30, 20, p);
  EXPECT_EQ(m.width, 12);
  EXPECT_EQ(m.at(6, 0), 255);
  EXPECT_EQ(m.at(6, 1), 0);
  EXPECT_THROW(parse_fit("zoom"), Error);
}

}  // namespace
}  // namespace scalpel::data
