// The training loop both tasks share (apps/train/loop.h): each task's history columns in
// history.csv/.json, in EpochStats and in the epoch's line, with and without validation; a task
// defined here runs through the same loop; --resume refuses another task's checkpoint.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "apps/demo/synthetic.h"
#include "apps/train/segmentation.h"
#include "apps/train/trainer.h"
#include "models/registry.h"
#include "support/disk_masks.h"
#include "support/files.h"
#include "support/synthetic_folders.h"
#include "tensor/error.h"
#include "tensor/json.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace scalpel::train {
namespace {

namespace fs = std::filesystem;

using scalpel::test::slurp;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> keys_of(const Json& object) {
  std::vector<std::string> out;
  for (const auto& member : object.as_object()) out.push_back(member.first);
  return out;
}

std::vector<std::string> names_of(const EpochStats& e) {
  std::vector<std::string> out;
  for (const Metric& m : e.metrics) out.push_back(m.name);
  return out;
}

class TrainLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("scalpel-loop-{}-{}",
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                                    getpid());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Every other sample in "val" when `with_val`, else all in "train".
  static void assign_splits(data::Dataset& d, bool with_val) {
    for (size_t i = 0; i < d.samples.size(); ++i) d.samples[i].split = with_val && i % 2 == 1 ? "val" : "train";
  }

  // 2 classes x 4 synthetic lesions, 32x32.
  data::Dataset classes_dataset(bool with_val) {
    test::write_synthetic_folder(root_ / "classes", 4);
    data::Warnings warnings;
    data::Dataset d = data::load_dataset((root_ / "classes").string(), warnings);
    assign_splits(d, with_val);
    return d;
  }

  // 8 generated disks with binary masks, 32x32.
  data::Dataset masks_dataset(bool with_val) {
    test::write_disk_dataset(root_ / "masks", 8, 32, 7);
    data::Warnings warnings;
    data::Dataset d = data::load_dataset((root_ / "masks").string(), warnings);
    assign_splits(d, with_val);
    return d;
  }

  TrainConfig config(const std::string& out) const {
    TrainConfig c;
    c.out_dir = (root_ / out).string();
    c.epochs = 1;
    c.batch_size = 4;
    c.optimizer = "sgd";
    c.lr = 0.01;
    c.preprocess.width = c.preprocess.height = 32;
    c.preprocess.fit = data::Fit::stretch;
    c.preprocess.norm = data::normalization_preset("imagenet");
    c.workers = 0;
    return c;
  }

  fs::path root_;
};

// Small models: mobilenet_v1 x0.25 with 2 classes, unet of base width 4 with 1 mask channel.
std::shared_ptr<models::Model> seeded_model(const std::string& name, const models::ModelOptions& options) {
  manual_seed(3);
  return models::create_model(name, options);
}
std::shared_ptr<models::Model> classifier() { return seeded_model("mobilenet_v1", {.classes = 2, .width = 0.25}); }
std::shared_ptr<models::Model> unet() { return seeded_model("unet", {.classes = 1, .base_width = 4}); }

models::CheckpointInfo info_of(const models::Model& model, const std::vector<std::string>& classes) {
  return {model.name(), model.options(), classes, Json()};
}

TEST_F(TrainLoop, ClassificationColumns) {
  const std::string header =
      "epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_macro_f1,lr,seconds,images_per_s";
  for (bool with_val : {false, true}) {
    const data::Dataset d = classes_dataset(with_val);
    auto model = classifier();
    const std::string out = with_val ? "val" : "no_val";
    std::ostringstream log;
    const TrainResult r = train_classifier(*model, d, info_of(*model, d.classes), config(out), log);
    ASSERT_EQ(r.history.size(), 1u);
    const EpochStats& e = r.history[0];
    const auto csv = lines_of(slurp(root_ / out / "history.csv"));
    ASSERT_EQ(csv.size(), 2u);
    EXPECT_EQ(csv[0], header);
    const Json row = Json::parse(slurp(root_ / out / "history.json")).at(0);
    if (with_val) {
      EXPECT_EQ(names_of(e), (std::vector<std::string>{"train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                                       "val_macro_f1"}));
      EXPECT_EQ(keys_of(row), (std::vector<std::string>{"epoch", "train_loss", "train_accuracy", "val_loss",
                                                        "val_accuracy", "val_macro_f1", "lr", "seconds",
                                                        "images_per_s"}));
      EXPECT_EQ(r.monitor, "val_loss");
      EXPECT_DOUBLE_EQ(r.best_metric, e.metric("val_loss"));
      EXPECT_NE(log.str().find("  acc "), std::string::npos) << log.str();
      EXPECT_NE(log.str().find("  val_acc "), std::string::npos) << log.str();
      EXPECT_NE(log.str().find("  val_f1 "), std::string::npos) << log.str();
    } else {
      EXPECT_FALSE(e.has_val());
      EXPECT_EQ(names_of(e), (std::vector<std::string>{"train_loss", "train_accuracy"}));
      EXPECT_EQ(keys_of(row), (std::vector<std::string>{"epoch", "train_loss", "train_accuracy", "lr", "seconds",
                                                        "images_per_s"}));
      EXPECT_TRUE(csv[1].starts_with(fmt::format("1,{:.9g},{:.9g},,,,", e.metric("train_loss"),
                                                 e.metric("train_accuracy"))))
          << csv[1];
      EXPECT_EQ(r.monitor, "train_loss");
      EXPECT_THROW(e.metric("val_loss"), Error);
    }
    fs::remove_all(root_ / "classes");
  }
}

TEST_F(TrainLoop, SegmentationColumns) {
  data::Dataset d = masks_dataset(true);
  auto model = unet();
  TrainConfig c = config("run");
  c.monitor = "";  // val_dice
  std::ostringstream log;
  const TrainResult r = train_segmenter(*model, d, info_of(*model, mask_class_names(1)), c, log);
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_EQ(names_of(r.history[0]),
            (std::vector<std::string>{"train_loss", "train_dice", "val_loss", "val_dice", "val_iou",
                                      "val_pixel_accuracy"}));
  EXPECT_EQ(lines_of(slurp(root_ / "run" / "history.csv")).at(0),
            "epoch,train_loss,train_dice,val_loss,val_dice,val_iou,val_pixel_accuracy,lr,seconds,images_per_s");
  EXPECT_EQ(keys_of(Json::parse(slurp(root_ / "run" / "history.json")).at(0)),
            (std::vector<std::string>{"epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou",
                                      "val_pixel_accuracy", "lr", "seconds", "images_per_s"}));
  EXPECT_EQ(r.monitor, "val_dice");
  const std::string line = lines_of(log.str()).at(0);
  EXPECT_TRUE(line.starts_with("epoch 1/1  loss ")) << line;
  for (const char* label : {"  dice ", "  val_loss ", "  val_dice ", "  val_iou "})
    EXPECT_NE(line.find(label), std::string::npos) << label << " in " << line;
  EXPECT_EQ(line.find("pixel"), std::string::npos) << line;
}

// Segmentation's targets and loss, but no metrics and no checkpoint marker.
class UnmarkedMaskTask final : public TrainingTask {
 public:
  class NoScores final : public Scorer {
   public:
    void add(const Tensor&, const Tensor&) override {}
    double value(std::string_view name) const override { fail("no metric '{}'", name); }
  };

  std::vector<TaskMetric> metrics() const override { return {}; }
  void configure_loader(data::LoaderConfig& c) const override {
    c.load_masks = true;
    c.binary_masks = false;
  }
  Tensor target(const data::DataLoader& loader, const data::Batch& b) const override {
    std::vector<std::string> paths;
    for (size_t i : b.indices) paths.push_back(loader.dataset().samples[i].mask_path);
    return mask_targets(b.masks, 2, paths);
  }
  Tensor loss(const Tensor& logits, const Tensor& target) const override { return segmentation_loss(logits, target); }
  std::unique_ptr<Scorer> scorer() const override { return std::make_unique<NoScores>(); }
};

// Same seed, 1 or 2 threads: the same weights and running statistics, bit for bit (every
// reduction of a training step sums in an order that does not depend on the thread count).
// Batches of 4 put resnet18's convs above the thresholds of the threaded paths; mobilenet_v2
// adds depthwise convs.
TEST_F(TrainLoop, SameWeightsForAnyThreadCount) {
  const data::Dataset d = classes_dataset(false);
  for (const char* name : {"resnet18", "mobilenet_v2"}) {
    std::vector<std::vector<nn::NamedTensor>> states;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const auto model = seeded_model(name, {.classes = 2});
      TrainConfig c = config(fmt::format("{}-{}", name, threads));
      c.optimizer = "adam";
      c.epochs = 2;
      c.quiet = true;
      std::ostringstream log;
      train_classifier(*model, d, info_of(*model, d.classes), c, log);
      auto state = model->named_parameters();
      for (auto& b : model->named_buffers()) state.push_back(b);
      states.push_back(state);
    }
    set_num_threads(0);
    ASSERT_EQ(states[0].size(), states[1].size());
    int differing = 0;
    for (size_t i = 0; i < states[0].size(); ++i) {
      const Tensor& a = states[0][i].tensor;
      const Tensor& b = states[1][i].tensor;
      const bool same = a.dtype() == b.dtype() && a.numel() == b.numel() &&
                        std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(),
                                    a.nbytes()) == 0;
      if (!same && ++differing <= 5) ADD_FAILURE() << name << ": " << states[0][i].name << " differs";
    }
    EXPECT_EQ(differing, 0) << name;
  }
}

TEST_F(TrainLoop, AnyTaskRunsAndResumeRefusesAnotherTasksCheckpoint) {
  const data::Dataset d = masks_dataset(false);
  auto model = unet();
  const models::CheckpointInfo info = info_of(*model, mask_class_names(1));
  TrainConfig c = config("run");
  c.quiet = true;
  const TrainResult r = run_training(*model, d, info, c, UnmarkedMaskTask(), std::cout);
  EXPECT_EQ(names_of(r.history.at(0)), (std::vector<std::string>{"train_loss"}));
  EXPECT_EQ(lines_of(slurp(root_ / "run" / "history.csv")).at(0), "epoch,train_loss,val_loss,lr,seconds,images_per_s");

  c.epochs = 2;
  c.resume = true;
  c.monitor = "val_dice";
  try {
    train_segmenter(*model, d, info, c, std::cout);
    ADD_FAILURE() << "resumed another task's run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a segmentation run"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace scalpel::train
