#pragma once
// Classification training as a library (`scalpel train` and `scalpel demo` call it): the
// shared loop of loop.h with cross entropy (class weights, label smoothing) as the loss,
// accuracy per step and per validation, and macro F1 per validation. History columns:
//   epoch, train_loss, train_accuracy, val_loss, val_accuracy, val_macro_f1, lr, seconds, images_per_s
// `monitor`: val_loss | val_accuracy | val_macro_f1. Freezing, head_lr and the two phases
// of loop.h apply.
#include <cstdint>
#include <iosfwd>
#include <vector>

#include "apps/train/loop.h"
#include "data/dataset.h"
#include "models/checkpoint.h"
#include "models/model.h"

namespace scalpel::train {

// Trains `model` (built, weights loaded, training mode) on `data` (run_training in loop.h).
// Error naming the flag for a bad setting, or when the data's classes are not the model's.
TrainResult train_classifier(models::Model& model, const data::Dataset& data, const models::CheckpointInfo& info,
                             const TrainConfig& config, std::ostream& log);

// Macro F1 over `num_classes` classes from predictions and labels (classes with no support
// and no predictions count 0, as sklearn's zero_division=0).
double macro_f1(const std::vector<int64_t>& labels, const std::vector<int64_t>& preds, int64_t num_classes);

}  // namespace scalpel::train
