// The segmentation training loop (see segmentation.h).
#include "apps/train/segmentation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>

#include <fmt/format.h>

#include "apps/progress.h"
#include "apps/report/segmentation_metrics.h"
#include "apps/train/common.h"
#include "autograd/autograd.h"
#include "data/loader.h"
#include "layers/loss.h"
#include "layers/schedule.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/ops.h"
#include "tensor/random.h"

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

namespace fs = std::filesystem;

struct Validation {
  double loss = 0, dice = 0, iou = 0, pixel_accuracy = 0;
};

std::vector<std::string> mask_paths_of(const data::DataLoader& loader, const data::Batch& b) {
  std::vector<std::string> paths;
  for (size_t i : b.indices) paths.push_back(loader.dataset().samples[i].mask_path);
  return paths;
}

Validation validate(models::Model& model, data::DataLoader& loader, int64_t classes, Device device) {
  NoGradGuard no_grad;
  model.eval();
  report::PixelConfusion confusion(classes);
  double loss_sum = 0;
  int64_t seen = 0;
  loader.start_epoch(0);
  for (data::Batch b; loader.next(b);) {
    const Tensor target = mask_targets(b.masks, classes, mask_paths_of(loader, b));
    const Tensor logits = model.forward(b.images.to(device));
    loss_sum += segmentation_loss(logits, target.to(device)).item() * static_cast<double>(b.size());
    seen += b.size();
    const Tensor pred = predicted_mask(logits);
    confusion.add(target.data<int64_t>(), pred.data<int64_t>(), static_cast<size_t>(target.numel()));
  }
  model.train();
  Validation v;
  if (seen == 0) return v;
  v.loss = loss_sum / static_cast<double>(seen);
  v.dice = confusion.mean_dice();
  v.iou = confusion.mean_iou();
  v.pixel_accuracy = confusion.pixel_accuracy();
  return v;
}

double monitored(const SegmentationEpoch& e, const std::string& monitor) {
  if (!e.has_val) return e.train_loss;
  if (monitor == "val_loss") return e.val_loss;
  if (monitor == "val_iou") return e.val_iou;
  return e.val_dice;
}

Json epoch_to_json(const SegmentationEpoch& e) {
  Json j = Json::object();
  j["epoch"] = e.epoch;
  j["train_loss"] = e.train_loss;
  j["train_dice"] = e.train_dice;
  if (e.has_val) {
    j["val_loss"] = e.val_loss;
    j["val_dice"] = e.val_dice;
    j["val_iou"] = e.val_iou;
    j["val_pixel_accuracy"] = e.val_pixel_accuracy;
  }
  j["lr"] = e.lr;
  j["seconds"] = e.seconds;
  j["images_per_s"] = e.images_per_s;
  return j;
}

SegmentationEpoch epoch_from_json(const Json& j) {
  SegmentationEpoch e;
  e.epoch = j.at("epoch").as_int();
  e.train_loss = j.at("train_loss").as_number();
  e.train_dice = j.at("train_dice").as_number();
  e.has_val = j.contains("val_loss");
  if (e.has_val) {
    e.val_loss = j.at("val_loss").as_number();
    e.val_dice = j.at("val_dice").as_number();
    e.val_iou = j.at("val_iou").as_number();
    e.val_pixel_accuracy = j.at("val_pixel_accuracy").as_number();
  }
  e.lr = j.at("lr").as_number();
  e.seconds = j.at("seconds").as_number();
  e.images_per_s = j.at("images_per_s").as_number();
  return e;
}

void write_history(const std::string& out_dir, const std::vector<SegmentationEpoch>& history) {
  Json all = Json::array();
  std::string csv = "epoch,train_loss,train_dice,val_loss,val_dice,val_iou,val_pixel_accuracy,lr,seconds,images_per_s\n";
  auto val = [](const SegmentationEpoch& e, double v) { return e.has_val ? fmt::format("{:.9g}", v) : std::string(); };
  for (const auto& e : history) {
    all.push_back(epoch_to_json(e));
    csv += fmt::format("{},{:.9g},{:.9g},{},{},{},{},{:.9g},{:.3f},{:.1f}\n", e.epoch, e.train_loss, e.train_dice,
                       val(e, e.val_loss), val(e, e.val_dice), val(e, e.val_iou), val(e, e.val_pixel_accuracy), e.lr,
                       e.seconds, e.images_per_s);
  }
  write_file_atomic(out_dir + "/history.json", all.dump(2) + "\n");
  write_file_atomic(out_dir + "/history.csv", csv);
}

void check_config(const TrainConfig& config, const std::string& monitor) {
  SCALPEL_CHECK(!config.out_dir.empty(), "--out is required");
  SCALPEL_CHECK(config.epochs > 0, "--epochs must be positive, got {}", config.epochs);
  SCALPEL_CHECK(config.batch_size > 0, "--batch must be positive, got {}", config.batch_size);
  SCALPEL_CHECK(config.lr > 0 && std::isfinite(config.lr), "--lr must be a positive number, got {}", config.lr);
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

SegmentationResult train_segmenter(models::Model& model, const data::Dataset& dataset,
                                   const models::CheckpointInfo& info, const TrainConfig& config, std::ostream& log) {
  const std::string monitor = config.monitor.empty() ? "val_dice" : config.monitor;
  check_config(config, monitor);
  const int64_t classes = mask_classes(model.options().classes);
  fs::create_directories(config.out_dir);
  const Device device = model.parameters().front().device();

  data::Warnings warnings;
  const data::Dataset train_set = dataset.split_part("train");
  const data::Dataset val_set = dataset.split_part("val");
  SCALPEL_CHECK(!train_set.samples.empty(), "{}: no training samples", dataset.root);
  data::LoaderConfig train_cfg = train_loader_config(config);
  train_cfg.load_masks = true;
  train_cfg.binary_masks = false;  // mask_targets maps the raw values
  data::DataLoader train_loader(train_set, train_cfg, warnings);
  data::LoaderConfig val_cfg = train_cfg;
  val_cfg.augment = data::parse_augment("none");
  val_cfg.sampling = data::Sampling::sequential;
  std::unique_ptr<data::DataLoader> val_loader;
  if (!val_set.samples.empty()) val_loader = std::make_unique<data::DataLoader>(val_set, val_cfg, warnings);
  const bool has_val = val_loader != nullptr;

  auto optimizer =
      make_optimizer(config.optimizer, nn::trainable_groups(model, config.lr, config.weight_decay), config.momentum);
  const int64_t steps_per_epoch = train_loader.batches_per_epoch();
  const auto schedule = nn::parse_schedule(config.schedule, steps_per_epoch * config.epochs);

  SegmentationResult result;
  result.monitor = has_val ? monitor : "train_loss";
  result.last_path = config.out_dir + "/last.safetensors";
  result.best_path = config.out_dir + "/best.safetensors";
  const bool lower_better = !has_val || monitor == "val_loss";
  int64_t step = 0, start_epoch = 0, epochs_without_improvement = 0;
  bool have_best = false;
  if (config.resume) {
    SCALPEL_CHECK(fs::exists(result.last_path), "--resume: no checkpoint {}", result.last_path);
    const auto ckpt = models::read_checkpoint(result.last_path);
    SCALPEL_CHECK(ckpt && ckpt->training, "--resume: {} holds no training state", result.last_path);
    load_checkpoint_state(model, ckpt->model);
    const models::TrainingState& ts = *ckpt->training;
    SCALPEL_CHECK(ts.optimizer == optimizer->name(), "--resume: {} was trained with --optimizer {}, not {}",
                  result.last_path, ts.optimizer, optimizer->name());
    SCALPEL_CHECK(ts.extra.contains("segmentation"), "--resume: {} is not a segmentation run", result.last_path);
    optimizer->load_state_dict(ts.optimizer_state);
    default_generator().set_state(ts.rng);
    step = ts.step;
    start_epoch = ts.epoch;
    for (const auto& e : ts.extra.at("history").as_array()) result.history.push_back(epoch_from_json(e));
    have_best = ts.extra.at("have_best").as_bool();
    result.best_metric = ts.extra.at("best_metric").as_number();
    result.best_epoch = ts.extra.at("best_epoch").as_int();
    epochs_without_improvement = ts.extra.at("epochs_without_improvement").as_int();
    log << fmt::format("resuming from {} after epoch {} (step {})\n", result.last_path, start_epoch, step);
  }
  std::ofstream step_log;
  if (!config.log_json.empty()) {
    step_log.open(config.log_json, config.resume ? std::ios::app : std::ios::trunc);
    SCALPEL_CHECK(step_log.good(), "--log-json: cannot write {}", config.log_json);
  }

  for (int64_t epoch = start_epoch; epoch < config.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t seen = 0, batches = 0;
    report::PixelConfusion train_confusion(classes);
    cli::ProgressBar bar(log, config.progress_bar && !config.quiet, fmt::format("epoch {}/{}", epoch + 1, config.epochs),
                         steps_per_epoch);
    train_loader.start_epoch(epoch);
    for (data::Batch b; train_loader.next(b); ++step) {
      schedule->apply(*optimizer, step);
      const Tensor target = mask_targets(b.masks, classes, mask_paths_of(train_loader, b));
      const Tensor logits = model.forward(b.images.to(device));
      const Tensor loss = segmentation_loss(logits, target.to(device));
      const double loss_value = loss.item();
      if (!std::isfinite(loss_value)) {
        fail("training diverged: loss is {} at step {} (epoch {}); the last good checkpoint is kept in {}",
             loss_value, step, epoch + 1, config.out_dir);
      }
      if (step_log.is_open()) {
        step_log << fmt::format("{{\"step\":{},\"epoch\":{},\"loss\":{:.9g},\"lr\":{:.9g}}}\n", step, epoch + 1,
                                loss_value, optimizer->groups().front().lr);
        step_log.flush();
      }
      optimizer->zero_grad();
      backward(loss);
      if (config.clip_grad_norm > 0) nn::clip_grad_norm(model.parameters(), config.clip_grad_norm);
      optimizer->step();
      const Tensor pred = predicted_mask(logits);
      train_confusion.add(target.data<int64_t>(), pred.data<int64_t>(), static_cast<size_t>(target.numel()));
      loss_sum += loss_value * static_cast<double>(b.size());
      seen += b.size();
      bar.update(++batches, seen, fmt::format("loss {:.3f} dice {:.2f}", loss_sum / static_cast<double>(seen),
                                              train_confusion.mean_dice()));
    }
    SegmentationEpoch e;
    e.epoch = epoch + 1;
    e.train_loss = seen > 0 ? loss_sum / static_cast<double>(seen) : 0;
    e.train_dice = train_confusion.mean_dice();
    e.lr = optimizer->groups().front().lr;
    if (has_val) {
      const Validation v = validate(model, *val_loader, classes, device);
      e.has_val = true;
      e.val_loss = v.loss;
      e.val_dice = v.dice;
      e.val_iou = v.iou;
      e.val_pixel_accuracy = v.pixel_accuracy;
    }
    SCALPEL_CHECK(all_finite(model) && std::isfinite(e.val_loss),
                  "training diverged: non-finite weights after step {} (epoch {}); the last good checkpoint is kept in {}",
                  step - 1, epoch + 1, config.out_dir);
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    e.seconds = dt.count();
    e.images_per_s = e.seconds > 0 ? static_cast<double>(seen) / e.seconds : 0;
    result.history.push_back(e);

    const double metric = monitored(e, monitor);
    const bool improved = !have_best || (lower_better ? metric < result.best_metric : metric > result.best_metric);
    if (improved) {
      have_best = true;
      result.best_metric = metric;
      result.best_epoch = e.epoch;
      epochs_without_improvement = 0;
      models::save_checkpoint(result.best_path, model, info);
    } else {
      ++epochs_without_improvement;
    }
    models::TrainingState ts;
    ts.step = step;
    ts.epoch = epoch + 1;
    ts.optimizer = optimizer->name();
    ts.optimizer_state = optimizer->state_dict();
    ts.scheduler = config.schedule;
    ts.rng = default_generator().get_state();
    Json history = Json::array();
    for (const auto& h : result.history) history.push_back(epoch_to_json(h));
    ts.extra["segmentation"] = true;
    ts.extra["history"] = history;
    ts.extra["have_best"] = have_best;
    ts.extra["best_metric"] = result.best_metric;
    ts.extra["best_epoch"] = result.best_epoch;
    ts.extra["epochs_without_improvement"] = epochs_without_improvement;
    models::save_checkpoint(result.last_path, model, info, &ts);
    write_history(config.out_dir, result.history);

    bar.finish();  // the epoch's line takes the bar's place
    if (!config.quiet) {
      std::string line =
          fmt::format("epoch {}/{}  loss {:.4f}  dice {:.4f}", e.epoch, config.epochs, e.train_loss, e.train_dice);
      if (e.has_val) {
        line += fmt::format("  val_loss {:.4f}  val_dice {:.4f}  val_iou {:.4f}", e.val_loss, e.val_dice, e.val_iou);
      }
      line += fmt::format("  lr {:.3g}  {:.0f} img/s  {:.1f}s{}\n", e.lr, e.images_per_s, e.seconds,
                          improved ? "  *best" : "");
      log << line << std::flush;
    }
    if (config.patience > 0 && epochs_without_improvement >= config.patience) {
      result.stopped_early = true;
      log << fmt::format("early stopping: no improvement of {} for {} epochs\n", result.monitor, config.patience);
      break;
    }
  }
  result.steps = step;
  const std::string report = warnings.report();
  if (!report.empty()) log << report;
  return result;
}

}  // namespace scalpel::train
