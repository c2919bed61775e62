#pragma once
// Segmentation training (`scalpel train --model unet` on a dataset with masks): the shared loop
// of loop.h -- optimizer, LR schedule per step, gradient clipping, checkpoints best/last,
// history.csv/.json, --log-json, exact --resume, early stopping, the progress bar, an Error
// naming the step on a non-finite loss -- with a segmentation loss and metrics:
//
//   output channels C   mask classes   loss
//   1 (the default)     2              soft Dice (sigmoid) + BCE with logits
//   2                   2              soft Dice (softmax, mean over classes) + cross entropy
//   K >= 3              K              as for 2
//
// Mask pixels become class ids (mask_targets): in a binary task a mask holding only 0 and 1
// is read as is, any other as foreground where the value is >= 128 (0/255 masks, and JPEG
// masks with compression noise); with K >= 3 classes the pixel values are the class ids.
// Dice per step; validation each epoch: loss, Dice and IoU (dataset level, mean over the
// foreground classes, apps/report/segmentation_metrics.h) and pixel accuracy. History columns:
//   epoch, train_loss, train_dice, val_loss, val_dice, val_iou, val_pixel_accuracy, lr, seconds, images_per_s
// `monitor` is val_dice (default), val_iou or val_loss.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "apps/train/loop.h"
#include "data/dataset.h"
#include "models/checkpoint.h"
#include "models/model.h"
#include "models/registry.h"

namespace scalpel::train {

// Trains `model` (mask logits [N, C, H, W], training mode) on the samples of `data` with split
// "train" and validates on "val" (none: no validation, the monitor falls back to train_loss).
// Every sample needs a mask. TrainConfig's classification-only settings (class weights, label
// smoothing, head LR, freezing and two phases, the weighted and oversampling samplers) must be
// left at their defaults (Error naming the flag). An empty `config.monitor` means val_dice.
TrainResult train_segmenter(models::Model& model, const data::Dataset& data, const models::CheckpointInfo& info,
                            const TrainConfig& config, std::ostream& log);

// Mask classes of a model with `channels` output channels: 2 for 1 channel, else `channels`.
int64_t mask_classes(int64_t channels);
// Names of those classes, class 0 first: "background", "foreground" for binary tasks;
// "background", "class_1", ..., "class_{K-1}" otherwise.
std::vector<std::string> mask_class_names(int64_t channels);

// Raw mask values int64 [N, H, W] (as the loader gives them with binary_masks = false) ->
// class ids in [0, classes) by the rule at the top of this file. `mask_paths[i]` names sample
// i in the Error for a value >= classes.
Tensor mask_targets(const Tensor& raw, int64_t classes, const std::vector<std::string>& mask_paths);

// The loss above for logits [N, C, H, W] and class ids int64 [N, H, W] on the logits' device.
Tensor segmentation_loss(const Tensor& logits, const Tensor& target);

// Predicted class ids int64 [N, H, W] on the CPU: logit > 0 for one channel, else the argmax
// over the channels (the lowest index on ties).
Tensor predicted_mask(const Tensor& logits);

// Error unless the model's task fits the data: a segmentation model needs masks; a classifier
// needs classes (a dataset of masks without classes is named as such), see
// data::check_classification.
void check_task_fits_data(const models::ModelInfo& model, const data::Dataset& data);

}  // namespace scalpel::train
