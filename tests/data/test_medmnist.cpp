// MedMNIST .npz files as a dataset layout (data/medmnist.h).
#include <gtest/gtest.h>

#include <filesystem>

#include "data/dataset.h"
#include "data/medmnist.h"
#include "data/split.h"
#include "data_test_util.h"
#include "support/errors.h"
#include "tensor/error.h"

namespace scalpel::data {
namespace {

std::string fixture(const std::string& name) { return std::string(SCALPEL_FIXTURES) + "/data/" + name; }

using test::error_of;

TEST(MedMnist, KeepsTheOfficialSplitsAndLabels) {
  Warnings warnings;
  const Dataset d = load_dataset(fixture("medmnist_gray.npz"), warnings);
  EXPECT_EQ(d.layout, "medmnist");
  EXPECT_EQ(detect_layout(fixture("medmnist_gray.npz")), "medmnist");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"0", "1", "2"}));
  ASSERT_EQ(d.samples.size(), 9u);
  EXPECT_EQ(d.split_part("train").samples.size(), 4u);
  EXPECT_EQ(d.split_part("val").samples.size(), 2u);
  EXPECT_EQ(d.split_part("test").samples.size(), 3u);
  std::vector<int64_t> test_labels;
  for (const Sample& s : d.split_part("test").samples) test_labels.push_back(s.label);
  EXPECT_EQ(test_labels, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(warnings.count(), 0u);
}

TEST(MedMnist, SampleNamesDecodeToTheirImages) {
  Warnings warnings;
  const Dataset d = load_dataset(fixture("medmnist_gray.npz"), warnings);
  const Dataset test = d.split_part("test");
  const Sample& s = test.samples[1];
  EXPECT_EQ(s.path, std::filesystem::absolute(fixture("medmnist_gray.npz")).lexically_normal().string() + ":test/1");
  const Image image = load_image(s.path);  // every pixel of image i of split s is 10 s + i
  EXPECT_EQ(image.width, 5);
  EXPECT_EQ(image.height, 6);
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels, std::vector<uint8_t>(30, 21));
  ImageInfo info;
  std::string reason;
  ASSERT_TRUE(probe_image(s.path, info, reason)) << reason;
  EXPECT_EQ(info.width, 5);
  EXPECT_FALSE(probe_image(d.root + ":test/3", info, reason));
  EXPECT_EQ(reason, "'" + d.root + ":test/3': the test split has 3 images");

  const Image rgb = load_image(load_dataset(fixture("medmnist_rgb.npz"), warnings).samples[2].path);
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.at(3, 1, 0), 2);  // pixel (y, x, c) of image i is i + c
  EXPECT_EQ(rgb.at(3, 1, 2), 4);
}

TEST(MedMnist, RefusesMultiLabelFiles) {
  Warnings warnings;
  EXPECT_EQ(error_of([&] { load_dataset(fixture("medmnist_multilabel.npz"), warnings); }),
            fixture("medmnist_multilabel.npz") +
                ": 'train_labels' has shape (4, 3): 3 labels per image is a multi-label task (as ChestMNIST), "
                "which scalpel does not train yet; use a single-label MedMNIST file");
  EXPECT_EQ(error_of([&] { load_dataset("/nonexistent/pneumoniamnist.npz", warnings); }),
            "dataset file '/nonexistent/pneumoniamnist.npz' does not exist");
}

TEST(MedMnist, ClassNamesFromTheFlag) {
  Warnings warnings;
  Dataset d = load_dataset(fixture("medmnist_gray.npz"), warnings);
  rename_classes(d, "mild,moderate,severe");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"mild", "moderate", "severe"}));
  EXPECT_EQ(error_of([&] { rename_classes(d, "a,b"); }),
            "--class-names: 2 names for the 3 classes of " + d.root + " (mild, moderate, severe)");
  EXPECT_EQ(error_of([&] { rename_classes(d, "a,,b"); }), "--class-names: empty class name in 'a,,b'");
  EXPECT_EQ(error_of([&] { rename_classes(d, "a,b,a"); }), "--class-names: 'a' appears twice");
}

TEST(MedMnist, SplitManifestRoundTrip) {
  testing::TempDir dir;
  Warnings warnings;
  const Dataset d = load_dataset(fixture("medmnist_gray.npz"), warnings);
  write_split_manifest(dir / "split.csv", d);
  const Dataset back = read_split_manifest(dir / "split.csv", warnings);
  EXPECT_EQ(warnings.count(), 0u) << warnings.report();
  ASSERT_EQ(back.samples.size(), d.samples.size());
  EXPECT_EQ(back.samples[5].path, d.samples[5].path);
  EXPECT_EQ(back.samples[5].split, "val");
}

TEST(MedMnist, OfficialPneumoniaMnistFile) {
  const std::string path = std::string(SCALPEL_SAMPLES) + "/medmnist/pneumoniamnist.npz";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (shared samples absent)";
  Warnings warnings;
  const Dataset d = load_dataset(path, warnings);
  EXPECT_EQ(d.classes, (std::vector<std::string>{"normal", "pneumonia"}));
  EXPECT_EQ(d.split_part("train").samples.size(), 4708u);
  EXPECT_EQ(d.split_part("val").samples.size(), 524u);
  EXPECT_EQ(d.split_part("test").samples.size(), 624u);
  const Image image = load_image(d.samples.front().path);
  EXPECT_EQ(image.width, 28);
  EXPECT_EQ(image.channels, 1);
}

}  // namespace
}  // namespace scalpel::data
