// Segmentation training: mask targets, the loss, and the task the shared loop (loop.h) runs
// for train_segmenter.
#include "apps/train/segmentation.h"

#include <algorithm>
#include <memory>
#include <ostream>
#include <string_view>

#include <fmt/format.h>

#include "apps/report/segmentation_metrics.h"
#include "layers/loss.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace scalpel::train {

int64_t mask_classes(int64_t channels) { return channels == 1 ? 2 : channels; }

std::vector<std::string> mask_class_names(int64_t channels) {
  if (mask_classes(channels) == 2) return {"background", "foreground"};
  std::vector<std::string> names{"background"};
  for (int64_t c = 1; c < channels; ++c) names.push_back(fmt::format("class_{}", c));
  return names;
}

Tensor mask_targets(const Tensor& raw, int64_t classes, const std::vector<std::string>& mask_paths) {
  const Tensor masks = raw.to(Device::cpu()).contiguous();
  const int64_t n = masks.size(0), pixels = masks.numel() / std::max<int64_t>(n, 1);
  std::vector<int64_t> ids = masks.values<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t* m = ids.data() + i * pixels;
    int64_t max_value = 0;
    for (int64_t k = 0; k < pixels; ++k) max_value = std::max(max_value, m[k]);
    if (classes == 2) {
      if (max_value > 1)
        for (int64_t k = 0; k < pixels; ++k) m[k] = m[k] >= 128 ? 1 : 0;
    } else {
      SCALPEL_CHECK(max_value < classes, "mask '{}' holds the value {}, but the model segments {} classes (0..{})",
                    mask_paths.at(static_cast<size_t>(i)), max_value, classes, classes - 1);
    }
  }
  return Tensor::from_data(ids.data(), masks.shape());
}

Tensor segmentation_loss(const Tensor& logits, const Tensor& target) {
  if (logits.size(1) == 1) {
    const Tensor t = target.to(logits.dtype()).unsqueeze(1);
    return nn::binary_dice_loss(logits, t) + nn::binary_cross_entropy_with_logits(logits, t);
  }
  return nn::dice_loss(logits, target) + nn::cross_entropy(logits, target);
}

Tensor predicted_mask(const Tensor& logits) {
  const Tensor x = logits.detach().to(Device::cpu());
  if (x.size(1) == 1) {
    const std::vector<float> v = x.to(DType::F32).contiguous().values<float>();
    std::vector<int64_t> ids(v.size());
    for (size_t i = 0; i < v.size(); ++i) ids[i] = v[i] > 0 ? 1 : 0;
    return Tensor::from_data(ids.data(), {x.size(0), x.size(2), x.size(3)});
  }
  return ops::argmax(x, 1);
}

void check_task_fits_data(const models::ModelInfo& model, const data::Dataset& data) {
  if (model.task == "segmentation") {
    SCALPEL_CHECK(data.has_masks(),
                  "--model {} segments images, but --data {} ({} layout) has no masks (layouts with masks: "
                  "root/images + root/masks, or root/<class>/images + root/<class>/masks)",
                  model.name, data.root, data.layout);
    return;
  }
  SCALPEL_CHECK(!(data.has_masks() && data.classes.empty()),
                "--model {} is a classifier, but --data {} holds images with segmentation masks and no classes "
                "(train a segmentation model such as --model unet on it)",
                model.name, data.root);
  data::check_classification(data);
}

namespace {

// Predicted masks against the target masks, pixel by pixel.
class PixelScorer final : public Scorer {
 public:
  explicit PixelScorer(int64_t classes) : confusion_(classes) {}

  void add(const Tensor& logits, const Tensor& target) override {
    const Tensor pred = predicted_mask(logits);
    confusion_.add(target.data<int64_t>(), pred.data<int64_t>(), static_cast<size_t>(target.numel()));
  }

  double value(std::string_view name) const override {
    if (name == "dice") return confusion_.mean_dice();
    if (name == "iou") return confusion_.mean_iou();
    SCALPEL_CHECK(name == "pixel_accuracy", "no segmentation metric '{}'", name);
    return confusion_.pixel_accuracy();
  }

 private:
  report::PixelConfusion confusion_;
};

class SegmentationTask final : public TrainingTask {
 public:
  explicit SegmentationTask(int64_t classes) : classes_(classes) {}

  std::vector<TaskMetric> metrics() const override {
    return {{.name = "dice", .label = "dice", .in_training = true},
            {.name = "iou", .label = "iou"},
            {.name = "pixel_accuracy", .label = ""}};
  }
  void configure_loader(data::LoaderConfig& c) const override {
    c.load_masks = true;
    c.binary_masks = false;  // mask_targets maps the raw values
  }
  Tensor target(const data::DataLoader& loader, const data::Batch& b) const override {
    std::vector<std::string> mask_paths;
    for (size_t i : b.indices) mask_paths.push_back(loader.dataset().samples[i].mask_path);
    return mask_targets(b.masks, classes_, mask_paths);
  }
  Tensor loss(const Tensor& logits, const Tensor& target) const override { return segmentation_loss(logits, target); }
  std::unique_ptr<Scorer> scorer() const override { return std::make_unique<PixelScorer>(classes_); }
  std::string checkpoint_marker() const override { return "segmentation"; }

 private:
  int64_t classes_;
};

void check_config(const TrainConfig& config) {
  check_loop_config(config);
  const std::string& monitor = config.monitor;
  SCALPEL_CHECK(monitor == "val_dice" || monitor == "val_iou" || monitor == "val_loss",
                "--monitor: unknown metric '{}' for segmentation (val_dice, val_iou, val_loss)", monitor);
  SCALPEL_CHECK(config.class_weights.empty(), "--class-weights is not supported for segmentation");
  SCALPEL_CHECK(config.label_smoothing == 0, "--label-smoothing is not supported for segmentation");
  SCALPEL_CHECK(config.head_lr <= 0, "--head-lr is not supported for segmentation");
  SCALPEL_CHECK(!config.freeze_backbone && config.unfreeze_last == 0 && config.head_epochs == 0,
                "--freeze-backbone, --unfreeze-last and --head-epochs are not supported for segmentation");
  // The class-balancing samplers weigh images by class label; mask datasets have none.
  SCALPEL_CHECK(config.sampler == "shuffle" || config.sampler == "sequential",
                "--sampler {} is not supported for segmentation (shuffle, sequential)", config.sampler);
}

}  // namespace

TrainResult train_segmenter(models::Model& model, const data::Dataset& dataset, const models::CheckpointInfo& info,
                            const TrainConfig& config, std::ostream& log) {
  TrainConfig with_monitor = config;
  if (with_monitor.monitor.empty()) with_monitor.monitor = "val_dice";
  check_config(with_monitor);
  return run_training(model, dataset, info, with_monitor, SegmentationTask(mask_classes(model.options().classes)),
                      log);
}

}  // namespace scalpel::train
