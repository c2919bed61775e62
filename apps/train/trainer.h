#pragma once
// The classification training loop as a library (`scalpel train` and `scalpel demo` call it).
//
// One run: the train split through data::DataLoader, cross entropy (class weights, label
// smoothing), an optimizer with weight decay, an LR schedule stepped per optimizer step,
// optional gradient-norm clipping, validation each epoch (loss, accuracy, macro F1), and in
// `out_dir`:
//   last.safetensors   the model + training state after the latest epoch (models/checkpoint.h)
//   best.safetensors   the model of the epoch with the best monitored metric
//   history.csv/.json  one row per epoch
//   split.csv          the split manifest (when the trainer assigned the splits)
// Checkpoints are written atomically. A non-finite loss throws Error naming the step and
// leaves both checkpoints as they were.
//
// Two-phase transfer learning (head_epochs > 0): epochs [0, head_epochs) train only the head
// at `lr`; the remaining ones train what `unfreeze_last` allows (everything when 0) at
// `finetune_lr` (the head at `head_lr` when given), with the schedule restarting. The head's
// optimizer state carries over into the second phase; the newly trained parameters' starts
// fresh (PyTorch's add_param_group). Early stopping only acts in the second phase.
//
// Exact resume: the loader's order and augmentation depend only on (seed, epoch), and the
// default generator's state (dropout) is saved per epoch, so `resume` from last.safetensors
// reproduces an uninterrupted run's weights and per-step losses bit for bit, across the phase
// boundary too.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "models/checkpoint.h"
#include "models/model.h"

namespace scalpel::train {

struct EpochStats {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0;
  bool has_val = false;
  double val_loss = 0, val_accuracy = 0, val_macro_f1 = 0;
  double lr = 0, seconds = 0, images_per_s = 0;
};

struct TrainConfig {
  std::string out_dir;          // required
  std::string log_json;         // one JSON line per optimizer step; "" = none
  int64_t epochs = 10;
  int batch_size = 32;
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
  std::string monitor = "val_loss";  // val_loss | val_accuracy | val_macro_f1 (train_loss without val)
  bool quiet = false;
  bool progress_bar = false;      // redraw a progress bar per step (apps/progress.h); for a terminal
  // Called after each epoch, once its checkpoints are written (a driver's own logging or
  // plotting; an exception thrown here ends the run as an interruption would).
  std::function<void(const EpochStats&)> on_epoch;
};

struct TrainResult {
  std::vector<EpochStats> history;  // every epoch, including those of a resumed run
  int64_t best_epoch = 0;
  double best_metric = 0;
  int64_t steps = 0;
  bool stopped_early = false;
  std::string best_path, last_path;
};

// Trains `model` (built, weights loaded, training mode) on `data`: samples with split "train"
// train and "val" validate (no "val" samples: no validation, `monitor` falls back to
// train_loss). `info` is stored in the checkpoints. Progress lines go to `log`.
TrainResult train_classifier(models::Model& model, const data::Dataset& data, const models::CheckpointInfo& info,
                             const TrainConfig& config, std::ostream& log);

// The train split's loader settings for `config` (preprocessing, augmentation, sampler, batch,
// seed, workers). Error naming --sampler or --augment for a bad name.
data::LoaderConfig train_loader_config(const TrainConfig& config);

// Loads a checkpoint's state dict (models::Checkpoint::model) into `model`, strictly.
void load_checkpoint_state(models::Model& model, const NamedTensors& state);

// Macro F1 over `num_classes` classes from predictions and labels (classes with no support
// and no predictions count 0, as sklearn's zero_division=0).
double macro_f1(const std::vector<int64_t>& labels, const std::vector<int64_t>& preds, int64_t num_classes);

}  // namespace scalpel::train
