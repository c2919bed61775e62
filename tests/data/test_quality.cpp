#include <gtest/gtest.h>

#include "data/augment.h"
#include "data/quality.h"
#include "data/stats.h"
#include "data/transforms.h"
#include "data_test_util.h"
#include "tensor/error.h"

namespace scalpel::data {
namespace {
using testing::blob_image;
using testing::pattern_image;

TEST(Quality, HashesOfNearDuplicatesAreClose) {
  const Image a = blob_image(96, 80, 3, 10);
  const Image resized = resize(a, 64, 53);
  const Image other = blob_image(96, 80, 3, 11);
  EXPECT_LE(hamming_distance(dhash(a), dhash(resized)), 6);
  EXPECT_LE(hamming_distance(phash(a), phash(resized)), 6);
  EXPECT_GT(hamming_distance(phash(a), phash(other)), 10);
  EXPECT_GT(hamming_distance(dhash(a), dhash(other)), 10);
  EXPECT_EQ(hamming_distance(0b1011, 0b0110), 3);
  EXPECT_EQ(phash(a) & 1u, 0u);  // the DC bit is never set
}

TEST(Quality, DhashBitsByHand) {
  // A horizontal ramp increases left to right: every "left < right" bit is set.
  Image ramp(9, 8, 1);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 9; ++x) ramp.at(y, x) = static_cast<uint8_t>(x * 20);
  EXPECT_EQ(dhash(ramp), ~uint64_t{0});
  EXPECT_EQ(dhash(hflip(ramp)), 0u);
}

TEST(Quality, SsimIdentityAndOrdering) {
  const Image a = convert_channels(pattern_image(40, 40, 1, 3), 1);
  EXPECT_NEAR(ssim(a, a), 1.0, 1e-9);
  Image noisy = a;
  for (size_t i = 0; i < noisy.pixels.size(); i += 3) noisy.pixels[i] = static_cast<uint8_t>(255 - noisy.pixels[i]);
  const double s = ssim(a, noisy);
  EXPECT_LT(s, 0.9);
  EXPECT_GT(s, -1.0);
  EXPECT_THROW(ssim(a, Image(10, 10, 1)), Error);
}

TEST(Quality, BlurScoreByHand) {
  // Checkerboard of 0/255: the interior Laplacian is +-1020 alternating, mean 0.
  Image board(6, 6, 1);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) board.at(y, x) = (x + y) % 2 ? 255 : 0;
  EXPECT_NEAR(blur_score(board), 1020.0 * 1020.0, 1e-6);
  EXPECT_EQ(blur_score(Image(6, 6, 1, 77)), 0.0);
  ImageF sharp = to_float(pattern_image(64, 64, 1, 5));
  ImageF blurred = sharp;
  gaussian_blur(blurred, 2.0);
  EXPECT_LT(blur_score(to_uint8(blurred)), blur_score(to_uint8(sharp)) / 4);
  std::vector<ImageSummary> sums = {summarize_image(to_uint8(sharp)), summarize_image(to_uint8(blurred)),
                                    summarize_image(to_uint8(blurred))};
  EXPECT_EQ(sums[0].blur, blur_score(to_uint8(sharp)));
  const double threshold = (sums[0].blur + sums[1].blur) / 2;
  EXPECT_EQ(blurry_samples(sums, {true, true, false}, threshold), (std::vector<size_t>{1}));
}

TEST(Quality, DuplicatesWithinAndAcrossSplitsAndStats) {
  testing::TempDir dir;
  Dataset d;
  d.root = dir.str();
  d.layout = "test";
  d.classes = {"a", "b"};
  auto add = [&](const std::string& name, const Image& im, int64_t label, const std::string& split) {
    Sample s;
    s.path = dir / name;
    testing::write_image(s.path, im);
    s.label = label;
    s.split = split;
    d.samples.push_back(s);
  };
  const Image base = blob_image(80, 80, 3, 1);
  add("a0.png", base, 0, "train");
  add("a1.png", blob_image(80, 80, 3, 2), 0, "train");
  add("a0_copy.jpg", base, 0, "train");                 // within-split duplicate (JPEG re-encode)
  add("b0.png", blob_image(80, 80, 3, 3), 1, "train");
  add("b0_small.png", resize(base, 60, 60), 1, "test");  // leak: resized copy in test
  add("b1.png", blob_image(80, 80, 3, 4), 1, "test");
  testing::write_text(dir / "corrupt.jpg", "\xFF\xD8\xFF garbage");
  Sample bad;
  bad.path = dir / "corrupt.jpg";
  bad.label = 1;
  bad.split = "test";
  d.samples.push_back(bad);

  Warnings w;
  std::vector<bool> ok;
  const auto sums = summarize_dataset(d, w, ok);
  EXPECT_FALSE(ok[6]);
  EXPECT_EQ(w.count(), 1u);
  const auto pairs = find_duplicates(d, sums, ok);
  ASSERT_EQ(pairs.size(), 3u);  // {0,2}, {0,4}, {2,4}
  int leaks = 0;
  for (const auto& p : pairs) {
    EXPECT_TRUE((p.a == 0 || p.a == 2) && (p.b == 2 || p.b == 4)) << p.a << "," << p.b;
    leaks += p.cross_split;
  }
  EXPECT_EQ(leaks, 2);
  // One cluster {0, 2, 4}: keep the first train member (0), drop 2 and 4.
  EXPECT_EQ(duplicates_to_drop(d, pairs), (std::vector<size_t>{2, 4}));

  Warnings w2;
  StatsOptions opt;
  const DataStats st = compute_stats(d, opt, w2);
  EXPECT_EQ(st.samples, 7);
  EXPECT_EQ(st.unreadable, 1);
  EXPECT_EQ(st.classes[0].count, 3);
  EXPECT_EQ(st.classes[1].count_per_split.at("test"), 3);
  EXPECT_EQ(st.cross_split_duplicates, 2);
  EXPECT_EQ((st.sizes.at({80, 80})), 5);
  const std::string text = format_stats(st);
  EXPECT_NE(text.find("[leak]"), std::string::npos);
  EXPECT_NE(text.find("80x80: 5"), std::string::npos);
  EXPECT_NE(text.find("3 pairs (2 across splits)"), std::string::npos);
}

}  // namespace
}  // namespace scalpel::data
