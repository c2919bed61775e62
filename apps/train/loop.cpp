// The training loop both tasks share (see loop.h).
#include "apps/train/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <set>

#include <fmt/format.h>

#include "apps/progress.h"
#include "apps/train/distributed.h"
#include "autograd/autograd.h"
#include "autograd/functions.h"
#include "data/augment.h"
#include "layers/optim.h"
#include "layers/schedule.h"
#include "models/fuse.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::train {
namespace {

namespace fs = std::filesystem;

// ---- phases: which parameters train, and at which learning rates ----

// A parameter of any classifier head (inception_v3 has two: fc and AuxLogits.fc).
bool is_head_param(const std::string& name, const models::Model& model) {
  for (const std::string& head : model.head_names())
    if (name.size() > head.size() && name.compare(0, head.size(), head) == 0 && name[head.size()] == '.') return true;
  return false;
}

struct Phase {
  int index = 0;                 // 0: the whole single-phase run, or the head phase; 1: fine-tuning
  bool freeze_backbone = false;
  int64_t unfreeze_last = 0;
  double lr = 0, head_lr = 0;    // head_lr 0 = lr
  int64_t epochs = 0;            // the phase's length, which its schedule spans
};

double finetune_lr(const TrainConfig& c) { return c.finetune_lr > 0 ? c.finetune_lr : c.lr / 10; }

Phase phase_of_epoch(const TrainConfig& c, int64_t epoch) {
  if (c.head_epochs == 0) return {0, c.freeze_backbone, c.unfreeze_last, c.lr, c.head_lr, c.epochs};
  if (epoch < c.head_epochs) return {0, true, 0, c.lr, 0, c.head_epochs};
  return {1, c.unfreeze_last > 0, c.unfreeze_last, finetune_lr(c), c.head_lr, c.epochs - c.head_epochs};
}

// Sets requires_grad: the head always trains; with freeze_backbone (or unfreeze_last > 0) the
// backbone is frozen but for its last `unfreeze_last` layers, a layer being the module owning a
// parameter (its name up to the last dot); otherwise everything trains.
void apply_freezing(models::Model& model, bool freeze_backbone, int64_t unfreeze_last) {
  const auto params = model.named_parameters();
  if (!freeze_backbone && unfreeze_last == 0) {
    for (auto p : params) p.tensor.set_requires_grad(true);
    return;
  }
  std::vector<std::string> layers;  // backbone layers in definition order
  for (const auto& p : params) {
    if (is_head_param(p.name, model)) continue;
    const std::string layer = p.name.substr(0, p.name.rfind('.'));
    if (layers.empty() || layers.back() != layer) layers.push_back(layer);
  }
  const size_t keep = static_cast<size_t>(std::min<int64_t>(unfreeze_last, static_cast<int64_t>(layers.size())));
  const std::set<std::string> trainable(layers.end() - static_cast<std::ptrdiff_t>(keep), layers.end());
  for (auto p : params) {
    if (is_head_param(p.name, model)) continue;
    p.tensor.set_requires_grad(trainable.count(p.name.substr(0, p.name.rfind('.'))) > 0);
  }
}

std::vector<nn::ParamGroup> make_groups(const models::Model& model, const Phase& phase, double weight_decay) {
  if (phase.head_lr <= 0) return nn::trainable_groups(model, phase.lr, weight_decay);
  nn::ParamGroup backbone{.params = {}, .lr = phase.lr, .weight_decay = weight_decay};
  nn::ParamGroup head{.params = {}, .lr = phase.head_lr, .weight_decay = weight_decay};
  for (const auto& p : model.named_parameters()) {
    if (!p.tensor.requires_grad()) continue;
    (is_head_param(p.name, model) ? head : backbone).params.push_back(p.tensor);
  }
  std::vector<nn::ParamGroup> groups;
  if (!backbone.params.empty()) groups.push_back(std::move(backbone));
  groups.push_back(std::move(head));
  return groups;
}

std::unique_ptr<nn::Optimizer> make_optimizer(const std::string& name, std::vector<nn::ParamGroup> groups,
                                              double momentum) {
  if (name == "sgd") return std::make_unique<nn::SGD>(std::move(groups), nn::SGDOptions{.momentum = momentum});
  if (name == "adam") return std::make_unique<nn::Adam>(std::move(groups));
  if (name == "adamw") {
    return std::make_unique<nn::Adam>(std::move(groups), nn::AdamOptions{.decoupled_weight_decay = true});
  }
  if (name == "rmsprop") return std::make_unique<nn::RMSprop>(std::move(groups));
  fail("--optimizer: unknown optimizer '{}' (sgd, adam, adamw, rmsprop)", name);
}

// Freezes what `phase` leaves frozen and returns an optimizer over the rest.
std::unique_ptr<nn::Optimizer> start_phase(models::Model& model, const TrainConfig& config, const Phase& phase) {
  apply_freezing(model, phase.freeze_backbone, phase.unfreeze_last);
  return make_optimizer(config.optimizer, make_groups(model, phase, config.weight_decay), config.momentum);
}

std::vector<const void*> flat_params(const nn::Optimizer& optimizer) {
  std::vector<const void*> out;
  for (const auto& g : optimizer.groups())
    for (const auto& p : g.params) out.push_back(p.storage().get());
  return out;
}

// `from`'s per-parameter state (moments, step counts) for the parameters `to` updates too,
// renumbered to `to`'s parameter indices (state_dict counts parameters across groups);
// `to`'s other parameters start fresh, and its lrs stay its own.
std::vector<nn::NamedTensor> carried_state(const nn::Optimizer& from, const nn::Optimizer& to) {
  const auto from_params = flat_params(from), to_params = flat_params(to);
  std::vector<nn::NamedTensor> out;
  for (const auto& entry : from.state_dict()) {
    const size_t dot = entry.name.find('.');
    if (entry.name == "steps" || entry.name.starts_with("group")) continue;
    const size_t index = std::stoul(entry.name.substr(0, dot));
    const auto at = std::find(to_params.begin(), to_params.end(), from_params.at(index));
    if (at == to_params.end()) continue;
    out.push_back({fmt::format("{}{}", at - to_params.begin(), entry.name.substr(dot)), entry.tensor});
  }
  return out;
}

// ---- the epoch record: history columns, history files ----

// The metric columns of a task's epochs: the training ones always, the validation ones with
// validation.
struct Columns {
  std::vector<std::string> train, val;
};

Columns columns_of(const TrainingTask& task) {
  Columns c{{"train_loss"}, {"val_loss"}};
  for (const TaskMetric& m : task.metrics()) {
    if (m.in_training) c.train.push_back("train_" + m.name);
    c.val.push_back("val_" + m.name);
  }
  return c;
}

Json epoch_to_json(const EpochStats& e) {
  Json j = Json::object();
  j["epoch"] = e.epoch;
  for (const Metric& m : e.metrics) j[m.name] = m.value;
  j["lr"] = e.lr;
  j["seconds"] = e.seconds;
  j["images_per_s"] = e.images_per_s;
  return j;
}

EpochStats epoch_from_json(const Json& j, const Columns& columns) {
  EpochStats e;
  e.epoch = j.at("epoch").as_int();
  for (const std::string& name : columns.train) e.metrics.push_back({name, j.at(name).as_number()});
  if (j.contains("val_loss")) {
    for (const std::string& name : columns.val) e.metrics.push_back({name, j.at(name).as_number()});
  }
  e.lr = j.at("lr").as_number();
  e.seconds = j.at("seconds").as_number();
  e.images_per_s = j.at("images_per_s").as_number();
  return e;
}

// history.json (one object per epoch, validation keys only with validation) and history.csv
// (every column, validation cells empty without validation).
void write_history(const std::string& out_dir, const std::vector<EpochStats>& history, const Columns& columns) {
  Json all = Json::array();
  std::string csv = fmt::format("epoch,{},{},lr,seconds,images_per_s\n", fmt::join(columns.train, ","),
                                fmt::join(columns.val, ","));
  for (const EpochStats& e : history) {
    all.push_back(epoch_to_json(e));
    csv += fmt::format("{}", e.epoch);
    for (const std::string& name : columns.train) csv += fmt::format(",{:.9g}", e.metric(name));
    for (const std::string& name : columns.val) csv += e.has_val() ? fmt::format(",{:.9g}", e.metric(name)) : ",";
    csv += fmt::format(",{:.9g},{:.3f},{:.1f}\n", e.lr, e.seconds, e.images_per_s);
  }
  write_file_atomic(out_dir + "/history.json", all.dump(2) + "\n");
  write_file_atomic(out_dir + "/history.csv", csv);
}

// ---- one epoch ----

// val_loss and the task's val_ metrics over `loader` (all 0 when it yields no batch).
std::vector<Metric> validate(models::Model& model, data::DataLoader& loader, const TrainingTask& task,
                             Device device) {
  NoGradGuard no_grad;
  model.eval();
  const auto scorer = task.scorer();
  double loss_sum = 0;
  int64_t seen = 0;
  loader.start_epoch(0);
  for (data::Batch b; loader.next(b);) {
    const Tensor target = task.target(loader, b);
    const Tensor logits = model.forward(b.images.to(device));
    loss_sum += task.loss(logits, target.to(device)).item() * static_cast<double>(b.size());
    seen += b.size();
    scorer->add(logits, target);
  }
  model.train();
  std::vector<Metric> out{{"val_loss", seen > 0 ? loss_sum / static_cast<double>(seen) : 0}};
  for (const TaskMetric& m : task.metrics()) out.push_back({"val_" + m.name, seen > 0 ? scorer->value(m.name) : 0});
  return out;
}

// True when every parameter of `model` is finite (a step can turn the weights non-finite
// before the loss shows it; such weights are never saved).
bool all_finite(const models::Model& model) {
  for (const auto& p : model.parameters()) {
    const std::vector<float> v = p.to(Device::cpu()).values<float>();
    for (float x : v) {
      if (!std::isfinite(x)) return false;
    }
  }
  return true;
}

// The epoch's line: "epoch 3/10  loss 0.4123  acc 0.8750  val_loss ...  lr 0.001  120 img/s  2.1s  *best".
std::string epoch_line(const EpochStats& e, const TrainingTask& task, int64_t epochs, bool improved) {
  std::string line = fmt::format("epoch {}/{}  loss {:.4f}", e.epoch, epochs, e.metric("train_loss"));
  for (const TaskMetric& m : task.metrics()) {
    if (m.in_training && !m.label.empty()) line += fmt::format("  {} {:.4f}", m.label, e.metric("train_" + m.name));
  }
  if (e.has_val()) {
    line += fmt::format("  val_loss {:.4f}", e.metric("val_loss"));
    for (const TaskMetric& m : task.metrics()) {
      if (!m.label.empty()) line += fmt::format("  val_{} {:.4f}", m.label, e.metric("val_" + m.name));
    }
  }
  return line + fmt::format("  lr {:.3g}  {:.0f} img/s  {:.1f}s{}\n", e.lr, e.images_per_s, e.seconds,
                            improved ? "  *best" : "");
}

}  // namespace

bool EpochStats::has_val() const {
  return std::any_of(metrics.begin(), metrics.end(), [](const Metric& m) { return m.name == "val_loss"; });
}

double EpochStats::metric(std::string_view name) const {
  for (const Metric& m : metrics) {
    if (m.name == name) return m.value;
  }
  fail("epoch {} has no metric '{}'", epoch, name);
}

void check_loop_config(const TrainConfig& config) {
  SCALPEL_CHECK(!config.out_dir.empty(), "--out is required");
  SCALPEL_CHECK(config.epochs > 0, "--epochs must be positive, got {}", config.epochs);
  SCALPEL_CHECK(config.batch_size > 0, "--batch must be positive, got {}", config.batch_size);
  SCALPEL_CHECK(config.lr > 0 && std::isfinite(config.lr), "--lr must be a positive number, got {}", config.lr);
}

data::LoaderConfig train_loader_config(const TrainConfig& config) {
  data::LoaderConfig c;
  c.preprocess = config.preprocess;
  c.augment = data::parse_augment(config.augment);
  try {
    c.sampling = data::parse_sampling(config.sampler);
  } catch (const Error& e) {
    fail("--sampler: {}", e.what());
  }
  c.batch_size = config.batch_size;
  c.drop_last = config.drop_last;
  c.seed = config.seed;
  c.workers = config.workers;
  return c;
}

void load_checkpoint_state(models::Model& model, const NamedTensors& state) {
  std::vector<nn::NamedTensor> named;
  named.reserve(state.size());
  for (const auto& [name, tensor] : state) named.push_back({name, tensor});
  model.load_state_dict(named);
}

TrainResult run_training(models::Model& model, const data::Dataset& dataset, const models::CheckpointInfo& info,
                         const TrainConfig& config, const TrainingTask& task, std::ostream& rank_log) {
  fs::create_directories(config.out_dir);
  const Device device = model.parameters().front().device();
  nn::Communicator* const comm = config.communicator;
  const bool distributed = comm != nullptr && comm->size() > 1;
  const bool writer = comm == nullptr || comm->rank() == 0;  // writes files and progress lines
  std::ostream silent(nullptr);
  std::ostream& log = writer ? rank_log : silent;
  // The device batch-norm kernels have no synchronized path (layers/communicator.h): refuse
  // rather than train with per-rank statistics unasked.
  SCALPEL_CHECK(!distributed || !config.sync_bn || device.is_cpu(),
                "--sync-bn runs on the CPU only for now, got --device {}: leave it out (per-rank batch-norm "
                "statistics, as PyTorch DDP) or train on the CPU",
                device.str());
  std::optional<nn::SyncBatchNorm> sync_bn;
  if (distributed && config.sync_bn) sync_bn.emplace(comm);

  // Distributed: an unreadable image is an error (naming it) rather than left out, since a rank
  // whose whole part of a batch were left out would skip a step the other ranks take.
  data::Warnings warnings(/*strict=*/distributed);
  const data::Dataset train_set = dataset.split_part("train");
  const data::Dataset val_set = dataset.split_part("val");
  SCALPEL_CHECK(!train_set.samples.empty(), "{}: no training samples", dataset.root);
  data::LoaderConfig train_cfg = train_loader_config(config);
  task.configure_loader(train_cfg);
  // BatchNorm + ReLU pairs fused on the CPU, the same bits (models/fuse.h).
  models::fuse_for_training(model, {1, model.in_channels(), train_cfg.preprocess.height, train_cfg.preprocess.width});
  if (distributed) {
    train_cfg.shard_rank = comm->rank();
    train_cfg.shard_count = comm->size();
  }
  data::DataLoader train_loader(train_set, train_cfg, warnings);
  data::LoaderConfig val_cfg = train_cfg;
  val_cfg.augment = data::parse_augment("none");
  val_cfg.sampling = data::Sampling::sequential;
  val_cfg.shard_rank = 0;  // rank 0 validates on the whole split
  val_cfg.shard_count = 1;
  std::unique_ptr<data::DataLoader> val_loader;
  if (!val_set.samples.empty()) val_loader = std::make_unique<data::DataLoader>(val_set, val_cfg, warnings);
  const bool has_val = val_loader != nullptr;

  const int64_t steps_per_epoch = train_loader.batches_per_epoch();
  const Columns columns = columns_of(task);
  const std::vector<TaskMetric> task_metrics = task.metrics();

  TrainResult result;
  result.monitor = has_val ? config.monitor : "train_loss";
  result.last_path = config.out_dir + "/last.safetensors";
  result.best_path = config.out_dir + "/best.safetensors";
  const bool lower_better = result.monitor.ends_with("_loss");  // losses fall; the tasks' scores rise
  // phase_start_step: the first optimizer step of the current phase (where its schedule starts).
  int64_t step = 0, start_epoch = 0, epochs_without_improvement = 0, phase_start_step = 0;
  bool have_best = false;
  std::optional<models::Checkpoint> ckpt;
  if (config.resume) {
    SCALPEL_CHECK(fs::exists(result.last_path), "--resume: no checkpoint {}", result.last_path);
    ckpt = models::read_checkpoint(result.last_path);
    SCALPEL_CHECK(ckpt && ckpt->training, "--resume: {} holds no training state", result.last_path);
    start_epoch = ckpt->training->epoch;
  }
  // The phase of the last epoch done (its optimizer is the one the checkpoint saved).
  Phase phase = phase_of_epoch(config, std::max<int64_t>(start_epoch - 1, 0));
  auto optimizer = start_phase(model, config, phase);
  auto schedule = nn::parse_schedule(config.schedule, steps_per_epoch * phase.epochs);
  if (ckpt) {
    load_checkpoint_state(model, ckpt->model);
    const models::TrainingState& ts = *ckpt->training;
    SCALPEL_CHECK(ts.optimizer == optimizer->name(), "--resume: {} was trained with --optimizer {}, not {}",
                  result.last_path, ts.optimizer, optimizer->name());
    const int64_t saved_head_epochs = ts.extra.contains("head_epochs") ? ts.extra.at("head_epochs").as_int() : 0;
    SCALPEL_CHECK(saved_head_epochs == config.head_epochs, "--resume: {} was trained with --head-epochs {}, not {}",
                  result.last_path, saved_head_epochs, config.head_epochs);
    const std::string marker = task.checkpoint_marker();
    SCALPEL_CHECK(marker.empty() || ts.extra.contains(marker), "--resume: {} is not a {} run", result.last_path,
                  marker);
    optimizer->load_state_dict(ts.optimizer_state);
    default_generator().set_state(ts.rng);
    step = ts.step;
    if (ts.extra.contains("phase_start_step")) phase_start_step = ts.extra.at("phase_start_step").as_int();
    for (const auto& e : ts.extra.at("history").as_array()) result.history.push_back(epoch_from_json(e, columns));
    have_best = ts.extra.at("have_best").as_bool();
    result.best_metric = ts.extra.at("best_metric").as_number();
    result.best_epoch = ts.extra.at("best_epoch").as_int();
    epochs_without_improvement = ts.extra.at("epochs_without_improvement").as_int();
    log << fmt::format("resuming from {} after epoch {} (step {})\n", result.last_path, start_epoch, step);
  }
  std::ofstream step_log;
  if (!config.log_json.empty() && writer) {
    step_log.open(config.log_json, config.resume ? std::ios::app : std::ios::trunc);
    SCALPEL_CHECK(step_log.good(), "--log-json: cannot write {}", config.log_json);
  }

  // Unreadable files are reported as the loader meets them (a summary follows at the end).
  size_t warnings_printed = 0;
  const auto print_new_warnings = [&] {
    if (warnings.count() == warnings_printed) return;
    const std::vector<std::string> messages = warnings.messages();
    for (size_t i = warnings_printed; i < messages.size(); ++i) log << "warning: " << messages[i] << "\n";
    warnings_printed = messages.size();
    log << std::flush;
  };
  bool dropped_single = false;  // a one-image batch was left out (said once per run)

  for (int64_t epoch = start_epoch; epoch < config.epochs; ++epoch) {
    if (const Phase next = phase_of_epoch(config, epoch); next.index != phase.index) {
      phase = next;
      auto fine_tuning = start_phase(model, config, phase);
      fine_tuning->load_state_dict(carried_state(*optimizer, *fine_tuning));
      optimizer = std::move(fine_tuning);
      schedule = nn::parse_schedule(config.schedule, steps_per_epoch * phase.epochs);
      phase_start_step = step;
      epochs_without_improvement = 0;
      log << fmt::format("epoch {}: head phase done; fine-tuning {} at lr {:.3g}\n", epoch + 1,
                         phase.unfreeze_last > 0 ? fmt::format("the last {} layers and the head", phase.unfreeze_last)
                                                 : std::string("every layer"),
                         phase.lr);
    }
    const auto t0 = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t seen = 0, batches = 0;
    const auto scorer = task.scorer();
    cli::ProgressBar bar(log, config.progress_bar && !config.quiet, fmt::format("epoch {}/{}", epoch + 1, config.epochs),
                         steps_per_epoch);
    train_loader.start_epoch(epoch);
    for (data::Batch b; train_loader.next(b);) {
      print_new_warnings();
      // Batch norm cannot train on one sample (the last batch of N = k * batch + 1 samples, or
      // one that lost the rest to unreadable files): such a batch is left out, as drop_last would.
      if (b.size() == 1 && config.batch_size > 1) {
        if (!dropped_single) {
          log << fmt::format("note: epoch {}: a batch of 1 image left out (batch norm needs 2 or more); "
                             "--drop-last drops every incomplete last batch\n", epoch + 1);
        }
        dropped_single = true;
        continue;
      }
      schedule->apply(*optimizer, step - phase_start_step);
      const Tensor target = task.target(train_loader, b);
      const Tensor logits = model.forward(b.images.to(device));
      const Tensor loss = task.loss(logits, target.to(device));
      double loss_value = loss.item();
      // The global batch's mean loss; each rank's gradient is weighted by its share of the
      // global batch, so that the sum over the ranks is the global batch's gradient.
      double batch_size = static_cast<double>(b.size()), rank_share = 1;
      if (distributed) {
        double sums[2] = {loss_value * batch_size, batch_size};
        comm->allreduce_sum(sums, 2);
        loss_value = sums[0] / sums[1];
        rank_share = batch_size / sums[1];
        batch_size = sums[1];
      }
      if (!std::isfinite(loss_value)) {
        fail("training diverged: loss is {} at step {} (epoch {}); the last good checkpoint is kept in {}",
             loss_value, step, epoch + 1, config.out_dir);
      }
      if (step_log.is_open()) {
        step_log << fmt::format("{{\"step\":{},\"epoch\":{},\"loss\":{:.9g},\"lr\":{:.9g}}}\n", step, epoch + 1,
                                loss_value, optimizer->groups().front().lr);
        step_log.flush();
        SCALPEL_CHECK(step_log.good(), "--log-json: cannot write {}: {}", config.log_json, std::strerror(errno));
      }
      optimizer->zero_grad();
      if (distributed) {
        std::vector<Tensor> trained;
        for (const auto& g : optimizer->groups()) trained.insert(trained.end(), g.params.begin(), g.params.end());
        GradientBuckets buckets(trained, *comm, config.bucket_bytes);
        if (config.overlap_allreduce) {  // each bucket is sent as soon as its gradients are final
          backward_with_grad_ready(mul(loss, rank_share), [&](const Tensor& param) { buckets.ready(param); });
        } else {
          backward(mul(loss, rank_share));
        }
        buckets.finish();
      } else {
        backward(loss);
      }
      if (config.clip_grad_norm > 0) nn::clip_grad_norm(model.parameters(), config.clip_grad_norm);
      optimizer->step();
      scorer->add(logits.detach(), target);
      loss_sum += loss_value * batch_size;
      seen += static_cast<int64_t>(batch_size);
      std::string status = fmt::format("loss {:.3f}", loss_sum / static_cast<double>(seen));
      for (const TaskMetric& m : task_metrics) {
        if (m.in_training && !m.label.empty()) status += fmt::format(" {} {:.2f}", m.label, scorer->value(m.name));
      }
      bar.update(++batches, seen, status);
      ++step;
    }
    EpochStats e;
    e.epoch = epoch + 1;
    e.metrics.push_back({"train_loss", seen > 0 ? loss_sum / static_cast<double>(seen) : 0});
    for (const TaskMetric& m : task_metrics) {
      if (m.in_training) e.metrics.push_back({"train_" + m.name, scorer->value(m.name)});
    }
    e.lr = optimizer->groups().front().lr;
    if (has_val) {
      std::vector<Metric> val;
      if (writer) {
        val = validate(model, *val_loader, task, device);
      } else {
        for (const std::string& name : columns.val) val.push_back({name, 0});
      }
      if (distributed) {  // every rank takes rank 0's best-epoch and early-stopping decisions
        std::vector<double> values;
        for (const Metric& m : val) values.push_back(m.value);
        comm->broadcast(values.data(), static_cast<int64_t>(values.size()), 0);
        for (size_t i = 0; i < val.size(); ++i) val[i].value = values[i];
      }
      for (Metric& m : val) e.metrics.push_back(std::move(m));
      print_new_warnings();  // the validation split's
    }
    // A step can turn the weights non-finite without a non-finite loss yet; never save those.
    SCALPEL_CHECK(all_finite(model) && (!has_val || std::isfinite(e.metric("val_loss"))),
                  "training diverged: non-finite weights after step {} (epoch {}); the last good checkpoint is kept in {}",
                  step - 1, epoch + 1, config.out_dir);
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    e.seconds = dt.count();
    e.images_per_s = e.seconds > 0 ? static_cast<double>(seen) / e.seconds : 0;
    result.history.push_back(e);

    const double metric = e.metric(result.monitor);
    const bool improved = !have_best || (lower_better ? metric < result.best_metric : metric > result.best_metric);
    if (improved) {
      have_best = true;
      result.best_metric = metric;
      result.best_epoch = e.epoch;
      epochs_without_improvement = 0;
      if (writer) models::save_checkpoint(result.best_path, model, info);
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
    if (const std::string marker = task.checkpoint_marker(); !marker.empty()) ts.extra[marker] = true;
    ts.extra["history"] = history;
    ts.extra["have_best"] = have_best;
    ts.extra["best_metric"] = result.best_metric;
    ts.extra["best_epoch"] = result.best_epoch;
    ts.extra["epochs_without_improvement"] = epochs_without_improvement;
    if (task.transfer_learning()) {
      ts.extra["head_epochs"] = config.head_epochs;
      ts.extra["phase_start_step"] = phase_start_step;
    }
    if (writer) {
      models::save_checkpoint(result.last_path, model, info, &ts);
      write_history(config.out_dir, result.history, columns);
    }

    bar.finish();  // the epoch's line takes the bar's place
    if (!config.quiet) log << epoch_line(e, task, config.epochs, improved) << std::flush;
    if (config.on_epoch && writer) config.on_epoch(e);
    // A plateau of the head phase must not skip the fine-tuning.
    const bool last_phase = config.head_epochs == 0 || phase.index == 1;
    if (last_phase && config.patience > 0 && epochs_without_improvement >= config.patience) {
      result.stopped_early = true;
      log << fmt::format("early stopping: no improvement of {} for {} epochs\n", result.monitor, config.patience);
      break;
    }
  }
  result.steps = step;
  print_new_warnings();  // any the last batches met
  if (warnings.count() > 0) {
    log << fmt::format("{} warning{} about input files (above)\n", warnings.count(), warnings.count() == 1 ? "" : "s");
  }
  return result;
}

}  // namespace scalpel::train
