#pragma once
// Evaluation of a segmentation model (U-Net) on images with masks, and its report folder:
//
//   SegmentationEvalResult r = report::evaluate_segmentation(model, dataset, preprocess, {.device = dev});
//   report::write_segmentation_report(r, "out/report", {.model = &model, .preprocess = preprocess});
//
// writes out/report/metrics.json (segmentation_metrics.h), predictions.csv (header
// path,mask,dice,iou: one row per image, its foreground-mean Dice and IoU) and report.html
// (summary and per-class tables, a histogram of the per-image Dice, training curves when the
// run's history is given, and a gallery of the worst images: the image, the true mask and the
// predicted mask over it, as inline PNGs).
// Masks are compared at the model's input size: each mask goes through the image's geometry
// (data::fit_mask, nearest) and its values become class ids as in training
// (train::mask_targets).
#include <cstdint>
#include <string>
#include <vector>

#include "apps/report/segmentation_metrics.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "models/model.h"
#include "tensor/device.h"

namespace scalpel::report {

struct SegmentationEvalOptions {
  int64_t batch = 16;
  Device device;  // where the model runs (it must already live there)
};

struct SegmentationEvalResult {
  std::string model_name;
  std::vector<std::string> classes;        // mask classes, class 0 = background
  std::vector<std::string> paths, masks;   // per image, dataset order
  std::vector<double> dice, iou;           // per image, mean over the foreground classes
  SegmentationMetrics metrics;
};

// Runs `model` in evaluation mode (restores its previous mode), no autograd, over every sample
// of `dataset`. Error when the dataset is empty, when a sample has no mask, for an unreadable
// image or mask, or a mask whose aspect ratio differs from its image's (naming the files).
SegmentationEvalResult evaluate_segmentation(models::Model& model, const data::Dataset& dataset,
                                             const data::Preprocess& p, const SegmentationEvalOptions& options = {});

struct SegmentationReportOptions {
  std::string title = "scalpel segmentation evaluation";
  // Gallery of the images with the lowest Dice: needs the model (on `device`) and the
  // preprocessing used for evaluation; none when model is null or gallery_size is 0.
  models::Model* model = nullptr;
  data::Preprocess preprocess;
  Device device;
  int gallery_size = 6;
  // Training history to plot (history.json / history.csv written by training); empty: none.
  std::string history_path;
};

// Writes out_dir/metrics.json, predictions.csv and report.html, each through a temporary file
// and a rename; creates out_dir.
void write_segmentation_report(const SegmentationEvalResult& result, const std::string& out_dir,
                               const SegmentationReportOptions& options = {});

// predictions.csv text (RFC 4180 quoting of paths that need it).
std::string segmentation_predictions_csv(const SegmentationEvalResult& result);

}  // namespace scalpel::report
