// Pixel-confusion segmentation metrics (see segmentation_metrics.h).
#include "apps/report/segmentation_metrics.h"

#include "tensor/error.h"

namespace scalpel::report {

PixelConfusion::PixelConfusion(int64_t classes)
    : classes_(classes), counts_(static_cast<size_t>(classes * classes), 0) {
  SCALPEL_CHECK(classes >= 2, "segmentation metrics need at least 2 classes (background and one more), got {}",
                classes);
}

void PixelConfusion::add(const int64_t* truth, const int64_t* pred, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    SCALPEL_CHECK(truth[i] >= 0 && truth[i] < classes_ && pred[i] >= 0 && pred[i] < classes_,
                  "segmentation metrics: pixel {} has true class {} and predicted class {}; classes are 0..{}", i,
                  truth[i], pred[i], classes_ - 1);
    ++counts_[truth[i] * classes_ + pred[i]];
  }
}

void PixelConfusion::add(const PixelConfusion& other) {
  SCALPEL_CHECK(other.classes_ == classes_, "segmentation metrics: adding {} classes to {}", other.classes_, classes_);
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

int64_t PixelConfusion::pixels() const {
  int64_t n = 0;
  for (int64_t v : counts_) n += v;
  return n;
}

int64_t PixelConfusion::support(int64_t c) const {
  int64_t n = 0;
  for (int64_t p = 0; p < classes_; ++p) n += count(c, p);
  return n;
}

namespace {

struct Outcome {
  double tp = 0, fp = 0, fn = 0;
};

Outcome outcome(const PixelConfusion& m, int64_t c) {
  Outcome o;
  o.tp = static_cast<double>(m.count(c, c));
  for (int64_t k = 0; k < m.classes(); ++k) {
    if (k == c) continue;
    o.fp += static_cast<double>(m.count(k, c));  // predicted c, truly k
    o.fn += static_cast<double>(m.count(c, k));  // truly c, predicted k
  }
  return o;
}

}  // namespace

double PixelConfusion::dice(int64_t c) const {
  const Outcome o = outcome(*this, c);
  const double denom = 2 * o.tp + o.fp + o.fn;
  return denom > 0 ? 2 * o.tp / denom : 1.0;
}

double PixelConfusion::iou(int64_t c) const {
  const Outcome o = outcome(*this, c);
  const double denom = o.tp + o.fp + o.fn;
  return denom > 0 ? o.tp / denom : 1.0;
}

double PixelConfusion::mean_dice() const {
  double sum = 0;
  for (int64_t c = 1; c < classes_; ++c) sum += dice(c);
  return sum / static_cast<double>(classes_ - 1);
}

double PixelConfusion::mean_iou() const {
  double sum = 0;
  for (int64_t c = 1; c < classes_; ++c) sum += iou(c);
  return sum / static_cast<double>(classes_ - 1);
}

double PixelConfusion::pixel_accuracy() const {
  const int64_t n = pixels();
  if (n == 0) return 0;
  int64_t correct = 0;
  for (int64_t c = 0; c < classes_; ++c) correct += count(c, c);
  return static_cast<double>(correct) / static_cast<double>(n);
}

SegmentationMetrics segmentation_metrics(const std::vector<PixelConfusion>& per_image,
                                         const std::vector<std::string>& classes) {
  SCALPEL_CHECK(!per_image.empty(), "segmentation metrics: no images");
  const int64_t k = static_cast<int64_t>(classes.size());
  PixelConfusion total(k);
  SegmentationMetrics m;
  m.classes = classes;
  m.images = static_cast<int64_t>(per_image.size());
  for (const PixelConfusion& image : per_image) {
    total.add(image);
    m.mean_image_dice += image.mean_dice();
    m.mean_image_iou += image.mean_iou();
  }
  m.mean_image_dice /= static_cast<double>(m.images);
  m.mean_image_iou /= static_cast<double>(m.images);
  m.pixels = total.pixels();
  m.pixel_accuracy = total.pixel_accuracy();
  m.mean_dice = total.mean_dice();
  m.mean_iou = total.mean_iou();
  m.confusion.assign(k, std::vector<int64_t>(k));
  for (int64_t c = 0; c < k; ++c) {
    m.dice.push_back(total.dice(c));
    m.iou.push_back(total.iou(c));
    m.support.push_back(total.support(c));
    for (int64_t p = 0; p < k; ++p) m.confusion[c][p] = total.count(c, p);
  }
  return m;
}

Json segmentation_metrics_to_json(const SegmentationMetrics& m) {
  Json j = Json::object();
  j["task"] = "segmentation";
  Json classes = Json::array();
  for (const std::string& c : m.classes) classes.push_back(c);
  j["classes"] = classes;
  j["images"] = m.images;
  j["pixels"] = m.pixels;
  j["pixel_accuracy"] = m.pixel_accuracy;
  j["mean_dice"] = m.mean_dice;
  j["mean_iou"] = m.mean_iou;
  j["mean_image_dice"] = m.mean_image_dice;
  j["mean_image_iou"] = m.mean_image_iou;
  Json per_class = Json::object();
  for (size_t c = 0; c < m.classes.size(); ++c) {
    Json row = Json::object();
    row["dice"] = m.dice[c];
    row["iou"] = m.iou[c];
    row["support"] = m.support[c];
    per_class[m.classes[c]] = row;
  }
  j["per_class"] = per_class;
  Json confusion = Json::array();
  for (const auto& row : m.confusion) {
    Json r = Json::array();
    for (int64_t v : row) r.push_back(v);
    confusion.push_back(r);
  }
  j["confusion_matrix"] = confusion;
  return j;
}

}  // namespace scalpel::report
