// Segmentation training (apps/train/segmentation.h): mask values to class ids, predicted masks,
// and `scalpel train --model unet` end to end on generated disks (the loss falls, validation
// Dice rises, resume equals an uninterrupted run), with the errors for data of the wrong kind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "apps/train/segmentation.h"
#include "autograd/autograd.h"
#include "support/cli_runner.h"
#include "support/disk_masks.h"
#include "support/files.h"
#include "tensor/error.h"
#include "tensor/json.h"

namespace scalpel {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::slurp;

Tensor int_tensor(const std::vector<int64_t>& v, const Shape& shape) { return Tensor::from_data(v.data(), shape); }

TEST(SegmentationTargets, BinaryMasksOf0And255Or0And1BecomeClassIds) {
  // Sample 0 is a 0/255 mask (with a JPEG-like 3 and 200), sample 1 a 0/1 mask.
  const Tensor raw = int_tensor({0, 255, 3, 200, 0, 1, 1, 0}, {2, 2, 2});
  const Tensor ids = train::mask_targets(raw, 2, {"a.png", "b.png"});
  EXPECT_EQ(ids.values<int64_t>(), (std::vector<int64_t>{0, 1, 0, 1, 0, 1, 1, 0}));
  EXPECT_EQ(ids.shape(), (Shape{2, 2, 2}));
}

TEST(SegmentationTargets, MultiClassValuesAreClassIdsAndOutOfRangeNamesTheMask) {
  const Tensor raw = int_tensor({0, 1, 2, 2}, {1, 2, 2});
  EXPECT_EQ(train::mask_targets(raw, 3, {"m.png"}).values<int64_t>(), (std::vector<int64_t>{0, 1, 2, 2}));
  try {
    train::mask_targets(int_tensor({0, 1, 3, 0}, {1, 2, 2}), 3, {"dir/bad_mask.png"});
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dir/bad_mask.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("value 3"), std::string::npos) << e.what();
  }
}

TEST(SegmentationTargets, PredictedMaskThresholdsOneChannelAndTakesTheArgmaxOfSeveral) {
  const Tensor one = Tensor::from_vector({-0.5, 0.0, 0.25, 3.0}, {1, 1, 2, 2});
  EXPECT_EQ(train::predicted_mask(one).values<int64_t>(), (std::vector<int64_t>{0, 0, 1, 1}));
  // [1, 3, 1, 2]: pixel 0 scores (1, 5, 5) -> 1 (lowest on ties), pixel 1 scores (2, 0, 7) -> 2.
  const Tensor three = Tensor::from_vector({1, 2, 5, 0, 5, 7}, {1, 3, 1, 2});
  EXPECT_EQ(train::predicted_mask(three).values<int64_t>(), (std::vector<int64_t>{1, 2}));
}

// One sigmoid channel, and softmax over 2 and 3 channels: near 0 for confident right logits,
// above 1 for confident wrong ones, and a gradient for every logit.
TEST(SegmentationLoss, SeparatesRightFromWrongLogitsForEveryChannelCount) {
  for (int64_t channels : {1, 2, 3}) {
    const int64_t k = train::mask_classes(channels);
    const std::vector<int64_t> ids = {0, 1, k - 1, 0};
    const Tensor target = int_tensor(ids, {1, 2, 2});
    std::vector<double> right(static_cast<size_t>(channels * 4)), wrong(right.size());
    for (int64_t i = 0; i < 4; ++i) {
      if (channels == 1) {
        right[i] = ids[i] == 1 ? 8 : -8;
        wrong[i] = -right[i];
        continue;
      }
      right[ids[i] * 4 + i] = 8;
      wrong[((ids[i] + 1) % channels) * 4 + i] = 8;
    }
    Tensor logits = Tensor::from_vector(right, {1, channels, 2, 2});
    logits.set_requires_grad(true);
    const Tensor loss = train::segmentation_loss(logits, target);
    EXPECT_LT(loss.item(), 0.01) << channels << " channels";
    backward(loss);
    ASSERT_TRUE(logits.grad().defined());
    EXPECT_EQ(logits.grad().shape(), logits.shape());
    EXPECT_GT(train::segmentation_loss(Tensor::from_vector(wrong, {1, channels, 2, 2}), target).item(), 1.0)
        << channels << " channels";
  }
}

TEST(SegmentationTargets, ClassNamesFollowTheChannelCount) {
  EXPECT_EQ(train::mask_class_names(1), (std::vector<std::string>{"background", "foreground"}));
  EXPECT_EQ(train::mask_class_names(2), (std::vector<std::string>{"background", "foreground"}));
  EXPECT_EQ(train::mask_class_names(3), (std::vector<std::string>{"background", "class_1", "class_2"}));
}

// 16 disks 32x32 (image_mask_pairs), split 75/25 into 12 training and 4 validation images.
class SegmentationTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            fmt::format("scalpel-seg-{}-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name(), getpid());
    fs::remove_all(root_);
    test::write_disk_dataset(root_ / "data", 16, 32, 7);
    // The CLI runs single-threaded: at this size OpenMP threads only wait on each other, and on
    // a busy machine that waiting multiplied the run time by six.
    if (const char* threads = std::getenv("OMP_NUM_THREADS")) saved_threads_ = threads;
    setenv("OMP_NUM_THREADS", "1", 1);
  }
  void TearDown() override {
    if (saved_threads_) {
      setenv("OMP_NUM_THREADS", saved_threads_->c_str(), 1);
    } else {
      unsetenv("OMP_NUM_THREADS");
    }
    fs::remove_all(root_);
  }

  std::vector<std::string> args(const std::string& out, int epochs) const {
    return {"train",    "--model",      "unet",     "--base-width", "8",     "--data", (root_ / "data").string(),
            "--out",    (root_ / out).string(), "--size", "32",     "32",      "--batch", "4",
            "--epochs", std::to_string(epochs), "--lr",  "0.01",   "--split", "75/25", "--seed",
            "1",        "--workers",    "1",        "--no-augment"};
  }
  fs::path root_;
  std::optional<std::string> saved_threads_;
};

TEST_F(SegmentationTrain, LossFallsAndValidationDiceRises) {
  auto a = args("run", 16);
  a.insert(a.end(), {"--log-json", (root_ / "steps.jsonl").string()});
  const auto r = run_cli(a);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json history = Json::parse(slurp(root_ / "run" / "history.json"));
  const auto& epochs = history.as_array();
  ASSERT_EQ(epochs.size(), 16u);
  const double first_loss = epochs.front().at("train_loss").as_number();
  const double last_loss = epochs.back().at("train_loss").as_number();
  double best_dice = 0;
  for (const Json& e : epochs) best_dice = std::max(best_dice, e.at("val_dice").as_number());
  EXPECT_LT(last_loss, 0.5 * first_loss) << r.out;
  EXPECT_GT(best_dice, 0.8) << r.out;
  EXPECT_TRUE(fs::exists(root_ / "run" / "best.safetensors"));
  EXPECT_TRUE(fs::exists(root_ / "run" / "last.safetensors"));
  EXPECT_NE(slurp(root_ / "run" / "history.csv").find("val_dice,val_iou"), std::string::npos);
  std::istringstream steps(slurp(root_ / "steps.jsonl"));
  int lines = 0;
  for (std::string line; std::getline(steps, line); ++lines) {
    EXPECT_EQ(Json::parse(line).at("step").as_int(), lines);
  }
  EXPECT_EQ(lines, 16 * 3);  // 12 training images / batch 4
  EXPECT_NE(r.out.find("(val_dice "), std::string::npos) << r.out;  // the default monitor

  // The best checkpoint carries the model, mask classes and preprocessing: eval needs no flags.
  const fs::path report = root_ / "report";
  const auto e = run_cli({"eval", "--weights", (root_ / "run" / "best.safetensors").string(), "--data",
                          (root_ / "data").string(), "--report", report.string()});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const Json metrics = Json::parse(slurp(report / "metrics.json"));
  EXPECT_EQ(metrics.at("classes").dump(), R"(["background","foreground"])");
  EXPECT_GT(metrics.at("mean_dice").as_number(), 0.8);
  EXPECT_NE(slurp(report / "report.html").find("Training curves"), std::string::npos);
}

TEST_F(SegmentationTrain, ResumeEqualsAnUninterruptedRun) {
  ASSERT_EQ(run_cli(args("full", 2)).exit_code, 0);
  ASSERT_EQ(run_cli(args("split", 1)).exit_code, 0);
  auto resumed = args("split", 2);
  resumed.push_back("--resume");
  const auto r = run_cli(resumed);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json full = Json::parse(slurp(root_ / "full" / "history.json"));
  const Json split = Json::parse(slurp(root_ / "split" / "history.json"));
  ASSERT_EQ(split.as_array().size(), 2u);
  for (const char* key : {"train_loss", "val_loss", "val_dice"}) {
    EXPECT_EQ(full.as_array()[1].at(key).as_number(), split.as_array()[1].at(key).as_number()) << key;
  }
}

TEST_F(SegmentationTrain, WrongKindOfDataIsNamed) {
  // A classifier on masks without classes.
  auto a = args("cls", 1);
  a[2] = "resnet18";
  a.erase(a.begin() + 3, a.begin() + 5);  // --base-width 8
  auto r = run_cli(a);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.first_err_line().find("is a classifier, but --data"), std::string::npos) << r.err;
  // U-Net on an image folder without masks.
  fs::create_directories(root_ / "folder" / "a");
  fs::create_directories(root_ / "folder" / "b");
  fs::copy_file(root_ / "data" / "images" / "0.png", root_ / "folder" / "a" / "0.png");
  fs::copy_file(root_ / "data" / "images" / "1.png", root_ / "folder" / "b" / "1.png");
  a = args("seg", 1);
  a[6] = (root_ / "folder").string();
  r = run_cli(a);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.first_err_line().find("has no masks"), std::string::npos) << r.err;
  // A classification-only setting.
  a = args("seg", 1);
  a.insert(a.end(), {"--class-weights", "balanced"});
  r = run_cli(a);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.first_err_line().find("--class-weights"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace scalpel
