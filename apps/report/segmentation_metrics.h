#pragma once
// Segmentation metrics from per-pixel class ids, as scikit-learn computes them on the
// flattened pixels (tests/eval/test_segmentation_eval.cpp checks hand-computed cases):
//   dice_c          2 TP / (2 TP + FP + FN)  = f1_score(t, p, labels=[c], zero_division=1)
//   iou_c           TP / (TP + FP + FN)       = jaccard_score(t, p, labels=[c], zero_division=1)
//   pixel_accuracy  correct pixels / pixels   = accuracy_score(t, p)
// A class absent from both the truth and the prediction scores 1: there was nothing to find
// and nothing was wrongly found (an empty mask predicted empty is a perfect answer).
// Class 0 is the background: mean Dice and mean IoU average the foreground classes 1..C-1.
// Dataset-level values sum the pixel counts of all images first (micro); per-image values
// are computed image by image, and their mean is reported beside them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/json.h"

namespace scalpel::report {

// Pixel counts [true class][predicted class] of one image or of many.
class PixelConfusion {
 public:
  explicit PixelConfusion(int64_t classes);  // classes >= 2
  // Counts n pixels; truth[i] and pred[i] in [0, classes), Error naming the value otherwise.
  void add(const int64_t* truth, const int64_t* pred, size_t n);
  void add(const PixelConfusion& other);  // same class count

  int64_t classes() const { return classes_; }
  int64_t count(int64_t truth, int64_t pred) const { return counts_[truth * classes_ + pred]; }
  int64_t pixels() const;
  int64_t support(int64_t c) const;  // pixels whose true class is c

  double dice(int64_t c) const;
  double iou(int64_t c) const;
  double mean_dice() const;  // over the foreground classes 1..C-1
  double mean_iou() const;
  double pixel_accuracy() const;  // 0 when there are no pixels

 private:
  int64_t classes_;
  std::vector<int64_t> counts_;  // row-major [truth][pred]
};

struct SegmentationMetrics {
  std::vector<std::string> classes;  // class 0 = background
  int64_t images = 0, pixels = 0;
  double pixel_accuracy = 0, mean_dice = 0, mean_iou = 0;  // dataset level, foreground mean
  double mean_image_dice = 0, mean_image_iou = 0;          // mean of the per-image foreground means
  std::vector<double> dice, iou;                           // dataset level, per class
  std::vector<int64_t> support;                            // true pixels per class
  std::vector<std::vector<int64_t>> confusion;             // [true][pred] pixels
};

// Metrics of a set of images from their confusions (one per image, all with
// `classes.size()` classes). Error when there are none or the class counts differ.
SegmentationMetrics segmentation_metrics(const std::vector<PixelConfusion>& per_image,
                                         const std::vector<std::string>& classes);

// metrics.json content: task ("segmentation"), classes, images, pixels, pixel_accuracy,
// mean_dice, mean_iou, mean_image_dice, mean_image_iou, per_class {name: {dice, iou,
// support}}, confusion_matrix (rows = true class).
Json segmentation_metrics_to_json(const SegmentationMetrics& m);

}  // namespace scalpel::report
