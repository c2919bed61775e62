#pragma once
// Evaluation of a classifier on a dataset and the report folder it leaves:
//
//   EvalResult r = report::evaluate(model, dataset, preprocess, {.device = dev});
//   report::write_eval_report(r, "out/report", {.model = &model, .preprocess = preprocess});
//
// writes out/report/metrics.json, predictions.csv and report.html (see ../shared/interface.md
// and html_report.h). Used by `scalpel eval` and at the end of `scalpel demo`.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "apps/report/metrics.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "models/model.h"
#include "tensor/device.h"

namespace scalpel::report {

// Test-time augmentation: an image's probabilities are the mean of the softmax over its views.
//   none   the image as preprocessed
//   flip   the image and its horizontal mirror
//   flip4  the image, its horizontal, vertical and double (180-degree) mirrors
//   crops  the four corners and the centre of a resize 8/7 larger (ImageNet's 256/224 ratio)
enum class Tta { none, flip, flip4, crops };
Tta parse_tta(const std::string& name);  // Error naming --tta for an unknown name
std::string tta_name(Tta tta);

struct EvalOptions {
  int64_t batch = 16;
  Device device;                         // where the model runs (it must already live there)
  std::vector<int64_t> top_k = {2, 3, 5};  // top-k accuracies (k >= classes are left out)
  Tta tta = Tta::none;
  // After TTA: every sample of a Sample::group (images of one lesion or patient) gets the mean
  // probabilities of the group; samples without a group keep their own.
  bool group_tta = false;
  // Called after each batch with (samples done, samples in all), e.g. for a progress bar.
  std::function<void(int64_t, int64_t)> on_batch;
};

struct EvalResult {
  std::string model_name;
  std::vector<std::string> classes;
  std::vector<std::string> paths;            // per sample, dataset order
  std::vector<int64_t> labels, preds;        // per sample
  std::vector<std::vector<double>> probs;    // per sample, softmax over classes
  std::vector<std::string> skipped;          // unreadable images left out, "path: reason"
  Metrics metrics;
};

// Runs `model` in evaluation mode (restores its previous mode), no autograd, over every sample
// of `dataset` (decoded and preprocessed with `p`), softmax of the logits (averaged over the
// views of options.tta, then over groups with options.group_tta). Error when the model's
// class count differs from the dataset's, when the dataset is empty or when no image can be
// read; an unreadable image is left out and listed in EvalResult::skipped (as training and
// `data stats` skip it).
EvalResult evaluate(models::Model& model, const data::Dataset& dataset, const data::Preprocess& p,
                    const EvalOptions& options = {});

// What was evaluated, for metrics.json ("data") and the report.
struct EvalDataInfo {
  std::string path;          // --data as given
  std::string split;         // test | val | train | all
  std::string split_source;  // where the split comes from (layout, split.csv path); "" = none known
  int64_t size = 0;          // samples evaluated
  std::string fingerprint;   // data::content_fingerprint of those samples
};

struct ReportOptions {
  std::string title = "scalpel evaluation";
  EvalDataInfo data;  // written into metrics.json when data.split is set
  // Grad-CAM gallery of the most confident errors: needs the model (on `device`) and the
  // preprocessing used for evaluation; no gallery when model is null or gallery_size is 0.
  models::Model* model = nullptr;
  data::Preprocess preprocess;
  Device device;
  int gallery_size = 6;
  // Training history to plot (history.json / history.csv written by training); empty: none.
  std::string history_path;
};

// Writes out_dir/metrics.json (with "data": {path, split, split_source, size, fingerprint} when
// options.data.split is set), out_dir/predictions.csv (header path,label,pred,p_<class>...,
// class names for label and pred) and out_dir/report.html, each through a temporary file and
// a rename; creates out_dir.
void write_eval_report(const EvalResult& result, const std::string& out_dir, const ReportOptions& options = {});

// predictions.csv text (RFC 4180 quoting of paths and names that need it).
std::string predictions_csv(const EvalResult& result);

// history.json or history.csv beside a weights file, or "" when there is none.
std::string find_history(const std::string& weights_path);

}  // namespace scalpel::report
