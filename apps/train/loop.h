#pragma once
// The training loop every task shares (`scalpel train`, `scalpel demo`). A task
// (TrainingTask below: classification in trainer.h, segmentation in segmentation.h) says what a
// batch's target is, what the loss is and what it scores; the loop does the rest.
//
// One run: the train split through data::DataLoader, the task's loss, an optimizer with weight
// decay, an LR schedule stepped per optimizer step, optional gradient-norm clipping, validation
// each epoch (the loss and the task's metrics), and in `out_dir`:
//   last.safetensors   the model + training state after the latest epoch (models/checkpoint.h)
//   best.safetensors   the model of the epoch with the best monitored metric
//   history.csv/.json  one row per epoch
//   split.csv          the split manifest (when the trainer assigned the splits)
// Checkpoints are written atomically. A non-finite loss throws Error naming the step and
// leaves both checkpoints as they were.
//
// Two-phase transfer learning (head_epochs > 0, tasks with TrainingTask::transfer_learning):
// epochs [0, head_epochs) train only the head at `lr`; the remaining ones train what
// `unfreeze_last` allows (everything when 0) at `finetune_lr` (the head at `head_lr` when
// given), with the schedule restarting. The head's optimizer state carries over into the
// second phase; the newly trained parameters' starts fresh (PyTorch's add_param_group).
// Early stopping only acts in the second phase.
//
// Exact resume: the loader's order and augmentation depend only on (seed, epoch), and the
// default generator's state (dropout) is saved per epoch, so `resume` from last.safetensors
// reproduces an uninterrupted run's weights and per-step losses bit for bit, across the phase
// boundary too.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "layers/communicator.h"
#include "models/checkpoint.h"
#include "models/model.h"

namespace scalpel::train {

// One value of an epoch, named as its history column: {"val_dice", 0.83}.
struct Metric {
  std::string name;
  double value = 0;
};

struct EpochStats {
  int64_t epoch = 0;  // 1-based
  // train_loss and the task's train_ metrics, then (with validation) val_loss and its val_
  // metrics, in history-column order.
  std::vector<Metric> metrics;
  double lr = 0, seconds = 0, images_per_s = 0;

  bool has_val() const;
  // The value of the metric `name`; Error when this epoch has none of that name.
  double metric(std::string_view name) const;
};

struct TrainConfig {
  std::string out_dir;          // required
  std::string log_json;         // one JSON line per optimizer step; "" = none
  int64_t epochs = 10;
  int batch_size = 32;
  bool drop_last = false;         // drop each epoch's incomplete last batch (a batch of 1 always is)
  std::string optimizer = "adam";  // sgd | adam | adamw | rmsprop
  double lr = 1e-3, momentum = 0.9, weight_decay = 0;
  double head_lr = 0;             // > 0: the head's parameters get their own group and lr
                                  // (while the backbone trains too)
  std::string schedule = "constant";  // nn::parse_schedule spec
  double clip_grad_norm = 0;      // 0 = off
  double label_smoothing = 0;
  std::string class_weights;      // "" | "balanced" | "A=3,B=1" | "3,1"
  std::string sampler = "shuffle";  // data::parse_sampling name; weighted = inverse class frequency
  std::string augment = "none";   // data::parse_augment spec for the train split
  data::Preprocess preprocess;
  uint64_t seed = 0;
  int workers = 2;
  bool freeze_backbone = false;   // train only the head ...
  int64_t unfreeze_last = 0;      // ... plus the backbone's last N parameterized layers
  int64_t head_epochs = 0;        // > 0: two phases (above); needs epochs > head_epochs
  double finetune_lr = 0;         // lr of the second phase; 0 = lr / 10
  bool resume = false;            // continue from out_dir/last.safetensors
  int64_t patience = 0;           // early stopping after this many epochs without improvement (0 = off)
  // The val_ column that picks the best epoch and drives early stopping (train_loss without
  // validation); which ones a task accepts: trainer.h, segmentation.h.
  std::string monitor = "val_loss";
  bool quiet = false;
  bool progress_bar = false;      // redraw a progress bar per step (apps/progress.h); for a terminal
  // Data-parallel training (apps/train/distributed.h; null = one process). batch_size is then
  // per rank: N ranks with batch B take the steps of one process with batch N * B (per-step
  // losses and weights equal up to rounding with sync_bn). Only rank 0 validates (its metrics
  // are broadcast), writes checkpoints, histories, --log-json and progress lines; the train_
  // task metrics (not train_loss) are rank 0's shard's. An unreadable image is an error.
  nn::Communicator* communicator = nullptr;
  bool sync_bn = false;              // batch-norm statistics over every rank's batch
  int64_t bucket_bytes = 25 << 20;   // gradient allreduce bucket size
  bool overlap_allreduce = true;     // start a bucket's allreduce during backward, once its gradients are final
  // Called after each epoch (on rank 0 only), once its checkpoints are written (a driver's own logging or
  // plotting; an exception thrown here ends the run as an interruption would).
  std::function<void(const EpochStats&)> on_epoch;
};

struct TrainResult {
  std::vector<EpochStats> history;  // every epoch, including those of a resumed run
  int64_t best_epoch = 0;
  double best_metric = 0;
  std::string monitor;  // what best_metric is: config.monitor, or train_loss without validation
  int64_t steps = 0;
  bool stopped_early = false;
  std::string best_path, last_path;
};

// A metric a task scores besides the loss.
struct TaskMetric {
  std::string name;   // the history columns are train_<name> and val_<name>
  std::string label;  // in progress lines: "acc" prints "acc 0.91" and "val_acc 0.93"; "" = not printed
  bool in_training = false;  // scored over the training steps too (train_<name>), not only in validation
};

// Accumulates a task's predictions over one pass (an epoch's steps, or one validation).
class Scorer {
 public:
  virtual ~Scorer() = default;
  // Adds a batch: the model's `logits` and the `target` TrainingTask::target gave (CPU).
  virtual void add(const Tensor& logits, const Tensor& target) = 0;
  // The task's metric `name` over what was added so far.
  virtual double value(std::string_view name) const = 0;
};

// What a task adds to the loop.
class TrainingTask {
 public:
  virtual ~TrainingTask() = default;
  // The metrics besides the loss, in history-column order.
  virtual std::vector<TaskMetric> metrics() const = 0;
  // Adjusts the loader settings of both splits (after train_loader_config), e.g. to load masks.
  virtual void configure_loader(data::LoaderConfig&) const {}
  // The target of batch `b` from `loader`, on the CPU.
  virtual Tensor target(const data::DataLoader& loader, const data::Batch& b) const = 0;
  // The scalar loss of `logits` for `target` (on the logits' device).
  virtual Tensor loss(const Tensor& logits, const Tensor& target) const = 0;
  virtual std::unique_ptr<Scorer> scorer() const = 0;
  // Whether freezing, head_lr and the two phases apply (the model has a head to train alone);
  // only then does a checkpoint save the phase state.
  virtual bool transfer_learning() const { return false; }
  // A key set (to true) in the training state of this task's checkpoints and required by
  // --resume, so that another task's run is not continued; "" = none.
  virtual std::string checkpoint_marker() const { return ""; }
};

// Errors for the settings the loop needs whatever the task (--out, --epochs, --batch, --lr);
// a task checks these first, then its own, then calls run_training.
void check_loop_config(const TrainConfig& config);

// Trains `model` (built, weights loaded, training mode) on `data` for `task`: samples with split
// "train" train and "val" validate (no "val" samples: no validation, the monitor falls back to
// train_loss). `config` is checked (above) and its monitor is one of the task's val_ columns.
// `info` is stored in the checkpoints. Progress lines go to `log`.
TrainResult run_training(models::Model& model, const data::Dataset& data, const models::CheckpointInfo& info,
                         const TrainConfig& config, const TrainingTask& task, std::ostream& log);

// The train split's loader settings for `config` (preprocessing, augmentation, sampler, batch,
// seed, workers). Error naming --sampler or --augment for a bad name.
data::LoaderConfig train_loader_config(const TrainConfig& config);

// Loads a checkpoint's state dict (models::Checkpoint::model) into `model`, strictly.
void load_checkpoint_state(models::Model& model, const NamedTensors& state);

}  // namespace scalpel::train
