// Classification training: the task the shared loop (loop.h) runs for train_classifier.
#include "apps/train/trainer.h"

#include <cmath>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

#include "layers/loss.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace scalpel::train {
namespace {

// Predicted classes (the logits' argmax) against labels.
class ClassScorer final : public Scorer {
 public:
  explicit ClassScorer(int64_t classes) : classes_(classes) {}

  void add(const Tensor& logits, const Tensor& target) override {
    const auto p = ops::argmax(logits, 1).to(Device::cpu()).values<int64_t>();
    const auto l = target.values<int64_t>();
    for (size_t i = 0; i < l.size(); ++i) correct_ += p[i] == l[i];
    preds_.insert(preds_.end(), p.begin(), p.end());
    labels_.insert(labels_.end(), l.begin(), l.end());
  }

  double value(std::string_view name) const override {
    if (labels_.empty()) return 0;
    if (name == "accuracy") return static_cast<double>(correct_) / static_cast<double>(labels_.size());
    SCALPEL_CHECK(name == "macro_f1", "no classification metric '{}'", name);
    return macro_f1(labels_, preds_, classes_);
  }

 private:
  int64_t classes_;
  int64_t correct_ = 0;  // kept apart from the labels: accuracy is read after every step
  std::vector<int64_t> labels_, preds_;
};

class ClassificationTask final : public TrainingTask {
 public:
  ClassificationTask(nn::CrossEntropyOptions loss_options, int64_t classes)
      : loss_options_(std::move(loss_options)), classes_(classes) {}

  std::vector<TaskMetric> metrics() const override {
    return {{.name = "accuracy", .label = "acc", .in_training = true}, {.name = "macro_f1", .label = "f1"}};
  }
  Tensor target(const data::DataLoader&, const data::Batch& b) const override { return b.labels; }
  Tensor loss(const Tensor& logits, const Tensor& target) const override {
    return nn::cross_entropy(logits, target, loss_options_);
  }
  std::unique_ptr<Scorer> scorer() const override { return std::make_unique<ClassScorer>(classes_); }
  bool transfer_learning() const override { return true; }

 private:
  nn::CrossEntropyOptions loss_options_;
  int64_t classes_;
};

}  // namespace

double macro_f1(const std::vector<int64_t>& labels, const std::vector<int64_t>& preds, int64_t num_classes) {
  std::vector<double> tp(num_classes), fp(num_classes), fn(num_classes);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == preds[i]) {
      tp[labels[i]] += 1;
    } else {
      fp[preds[i]] += 1;
      fn[labels[i]] += 1;
    }
  }
  double sum = 0;
  for (int64_t c = 0; c < num_classes; ++c) {
    const double denom = 2 * tp[c] + fp[c] + fn[c];
    sum += denom > 0 ? 2 * tp[c] / denom : 0;
  }
  return num_classes > 0 ? sum / static_cast<double>(num_classes) : 0;
}

TrainResult train_classifier(models::Model& model, const data::Dataset& dataset, const models::CheckpointInfo& info,
                             const TrainConfig& config, std::ostream& log) {
  check_loop_config(config);
  SCALPEL_CHECK(config.head_epochs >= 0 && (config.head_epochs == 0 || config.head_epochs < config.epochs),
                "--head-epochs {} must be below --epochs {} (the rest fine-tunes)", config.head_epochs, config.epochs);
  SCALPEL_CHECK(config.head_epochs == 0 || !config.freeze_backbone,
                "--head-epochs and --freeze-backbone: the second phase would train the head again; use "
                "--unfreeze-last N to fine-tune only the last N layers");
  SCALPEL_CHECK(config.finetune_lr >= 0 && std::isfinite(config.finetune_lr),
                "--finetune-lr must be a positive number (0 = --lr / 10), got {}", config.finetune_lr);
  SCALPEL_CHECK(config.monitor == "val_loss" || config.monitor == "val_accuracy" || config.monitor == "val_macro_f1",
                "--monitor: unknown metric '{}' (val_loss, val_accuracy, val_macro_f1)", config.monitor);
  const int64_t num_classes = static_cast<int64_t>(dataset.classes.size());
  SCALPEL_CHECK(num_classes == model.options().classes,
                "the data in {} has {} classes but the model has --classes {}", dataset.root, num_classes,
                model.options().classes);
  nn::CrossEntropyOptions loss_options;
  loss_options.label_smoothing = config.label_smoothing;
  if (!config.class_weights.empty()) {
    const auto counts = dataset.split_part("train").class_counts();
    const auto w = nn::parse_class_weights(config.class_weights, dataset.classes, counts);
    loss_options.weight = Tensor::from_vector(w, {num_classes}).to(model.parameters().front().device());
    std::vector<std::string> shown;
    for (int64_t c = 0; c < num_classes; ++c) shown.push_back(fmt::format("{} {:.4g}", dataset.classes[c], w[c]));
    log << fmt::format("class weights ({}): {}\n", config.class_weights, fmt::join(shown, ", "));
  }
  return run_training(model, dataset, info, config, ClassificationTask(std::move(loss_options), num_classes), log);
}

}  // namespace scalpel::train
