// Evaluation over a dataset and the report folder (see evaluate.h).
#include "apps/report/evaluate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "apps/gradcam.h"
#include "apps/report/html_report.h"
#include "autograd/autograd.h"
#include "data/image.h"
#include "layers/functional.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace scalpel::report {

Tta parse_tta(const std::string& name) {
  if (name == "none") return Tta::none;
  if (name == "flip") return Tta::flip;
  if (name == "flip4") return Tta::flip4;
  if (name == "crops") return Tta::crops;
  fail("--tta: unknown test-time augmentation '{}' (none, flip, flip4, crops)", name);
}

std::string tta_name(Tta tta) {
  switch (tta) {
    case Tta::none: return "none";
    case Tta::flip: return "flip";
    case Tta::flip4: return "flip4";
    case Tta::crops: return "crops";
  }
  return "none";
}

namespace {

// x [N, C, H, W] float32 on the CPU, mirrored left-right and/or upside down.
Tensor mirrored(const Tensor& x, bool horizontal, bool vertical) {
  const Tensor src = x.contiguous();
  Tensor out = Tensor::empty(src.shape(), DType::F32);
  const int64_t h = src.shape()[2], w = src.shape()[3], planes = src.numel() / (h * w);
  const float* in = src.data<float>();
  float* o = out.data<float>();
  for (int64_t plane = 0; plane < planes; ++plane) {
    for (int64_t y = 0; y < h; ++y) {
      const float* row = in + (plane * h + (vertical ? h - 1 - y : y)) * w;
      float* dst = o + (plane * h + y) * w;
      for (int64_t i = 0; i < w; ++i) dst[i] = row[horizontal ? w - 1 - i : i];
    }
  }
  return out;
}

// The samples [start, end) of `dataset` that decode, preprocessed with `p`, as one
// [N, C, H, W] batch (undefined when none does); their indices go to `kept`, the others to
// `skipped` as "path: reason".
Tensor load_batch(const data::Dataset& dataset, size_t start, size_t end, const data::Preprocess& p,
                  std::vector<size_t>& kept, std::vector<std::string>& skipped) {
  std::vector<Tensor> inputs;
  for (size_t i = start; i < end; ++i) {
    try {
      inputs.push_back(data::preprocess_file(dataset.samples[i].path, p));
      kept.push_back(i);
    } catch (const Error& e) {
      skipped.push_back(e.what());
    }
  }
  return inputs.empty() ? Tensor() : ops::concat(inputs, 0);
}

// The views `tta` averages over for the readable samples of [start, end) (see load_batch),
// each [N, C, H, W] on the CPU; none when no sample is readable.
std::vector<Tensor> tta_views(const data::Dataset& dataset, size_t start, size_t end, const data::Preprocess& p,
                              Tta tta, std::vector<size_t>& kept, std::vector<std::string>& skipped) {
  if (tta == Tta::crops) {
    data::Preprocess larger = p;
    larger.height = static_cast<int>(std::lround(p.height * 8.0 / 7.0));
    larger.width = static_cast<int>(std::lround(p.width * 8.0 / 7.0));
    const Tensor big = load_batch(dataset, start, end, larger, kept, skipped);
    if (!big.defined()) return {};
    const int64_t dy = larger.height - p.height, dx = larger.width - p.width;
    const auto crop = [&](int64_t top, int64_t left) {
      return big.slice(2, top, top + p.height).slice(3, left, left + p.width).contiguous();
    };
    return {crop(0, 0), crop(0, dx), crop(dy, 0), crop(dy, dx), crop(dy / 2, dx / 2)};
  }
  const Tensor x = load_batch(dataset, start, end, p, kept, skipped);
  if (!x.defined()) return {};
  std::vector<Tensor> views = {x};
  if (tta == Tta::flip || tta == Tta::flip4) views.push_back(mirrored(x, true, false));
  if (tta == Tta::flip4) {
    views.push_back(mirrored(x, false, true));
    views.push_back(mirrored(x, true, true));
  }
  return views;
}

// Replaces the probabilities of every sample that has a group by its group's mean; probs[k]
// belongs to dataset sample kept[k].
void average_over_groups(const data::Dataset& dataset, const std::vector<size_t>& kept,
                         std::vector<std::vector<double>>& probs) {
  std::map<std::string, std::vector<size_t>> members;
  for (size_t k = 0; k < kept.size(); ++k)
    if (!dataset.samples[kept[k]].group.empty()) members[dataset.samples[kept[k]].group].push_back(k);
  for (const auto& [group, indices] : members) {
    std::vector<double> mean(probs[indices.front()].size(), 0.0);
    for (size_t i : indices)
      for (size_t c = 0; c < mean.size(); ++c) mean[c] += probs[i][c] / static_cast<double>(indices.size());
    for (size_t i : indices) probs[i] = mean;
  }
}

}  // namespace

EvalResult evaluate(models::Model& model, const data::Dataset& dataset, const data::Preprocess& p,
                    const EvalOptions& options) {
  SCALPEL_CHECK(!dataset.samples.empty(), "eval: no samples in {}", dataset.root);
  SCALPEL_CHECK(options.batch > 0, "eval: batch must be positive, got {}", options.batch);
  const int64_t classes = static_cast<int64_t>(dataset.classes.size());
  SCALPEL_CHECK(model.options().classes == classes,
                "eval: {} has {} classes but the data in {} has {} ({})", model.name(), model.options().classes,
                dataset.root, classes, fmt::join(dataset.classes, ", "));
  EvalResult r;
  r.model_name = model.name();
  r.classes = dataset.classes;
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  const size_t n = dataset.samples.size();
  std::vector<size_t> kept;  // the dataset index of each result row
  for (size_t start = 0; start < n; start += static_cast<size_t>(options.batch)) {
    const size_t end = std::min(n, start + static_cast<size_t>(options.batch));
    const size_t first = kept.size();
    const std::vector<Tensor> views = tta_views(dataset, start, end, p, options.tta, kept, r.skipped);
    const size_t rows = kept.size() - first;
    std::vector<double> mean(rows * static_cast<size_t>(classes), 0.0);
    for (const Tensor& view : views) {
      const Tensor probs = nn::softmax(model(view.to(options.device)), 1).to(Device::cpu()).to(DType::F64).contiguous();
      const std::vector<double> v = probs.to_vector();
      for (size_t k = 0; k < mean.size(); ++k) mean[k] += v[k] / static_cast<double>(views.size());
    }
    for (size_t k = 0; k < rows; ++k) {
      const size_t i = kept[first + k];
      const auto row = mean.begin() + static_cast<std::ptrdiff_t>(k * classes);
      r.probs.emplace_back(row, row + classes);
      r.paths.push_back(dataset.samples[i].path);
      r.labels.push_back(dataset.samples[i].label);
    }
    if (options.on_batch) options.on_batch(static_cast<int64_t>(end), static_cast<int64_t>(n));
  }
  model.train(was_training);
  SCALPEL_CHECK(!r.probs.empty(), "eval: no image in {} could be read ({} skipped)", dataset.root, r.skipped.size());
  if (options.group_tta) average_over_groups(dataset, kept, r.probs);
  for (const auto& row : r.probs) r.preds.push_back(argmax(row));
  r.metrics = compute_metrics(r.labels, r.probs, r.classes, options.top_k);
  return r;
}

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// Gallery of the most confident errors: highest predicted probability first.
std::vector<GalleryItem> error_gallery(const EvalResult& r, const ReportOptions& o) {
  std::vector<GalleryItem> items;
  if (o.model == nullptr || o.gallery_size <= 0) return items;
  std::vector<size_t> wrong;
  for (size_t i = 0; i < r.labels.size(); ++i)
    if (r.preds[i] != r.labels[i]) wrong.push_back(i);
  std::stable_sort(wrong.begin(), wrong.end(),
                   [&](size_t a, size_t b) { return r.probs[a][r.preds[a]] > r.probs[b][r.preds[b]]; });
  wrong.resize(std::min(wrong.size(), static_cast<size_t>(o.gallery_size)));
  for (size_t i : wrong) {
    const data::Image image = data::load_image(r.paths[i]);
    const GradCamResult cam = gradcam(*o.model, data::preprocess(image, o.preprocess).to(o.device), r.preds[i]);
    const std::string name = std::filesystem::path(r.paths[i]).filename().string();
    items.push_back({fmt::format("{}: true {}, predicted {} (p = {:.3f})", name, r.classes[r.labels[i]],
                                 r.classes[r.preds[i]], r.probs[i][r.preds[i]]),
                     data::encode_png(gradcam_overlay(data::fit_image(image, o.preprocess), cam))});
  }
  return items;
}

}  // namespace

std::string predictions_csv(const EvalResult& r) {
  std::string out = "path,label,pred";
  for (const std::string& c : r.classes) out += "," + csv_field("p_" + c);
  out += "\n";
  for (size_t i = 0; i < r.paths.size(); ++i) {
    out += csv_field(r.paths[i]) + "," + csv_field(r.classes[r.labels[i]]) + "," + csv_field(r.classes[r.preds[i]]);
    for (double p : r.probs[i]) out += fmt::format(",{:.6g}", p);
    out += "\n";
  }
  return out;
}

std::string find_history(const std::string& weights_path) {
  if (weights_path.empty()) return "";
  const std::filesystem::path dir = std::filesystem::path(weights_path).parent_path();
  for (const char* name : {"history.json", "history.csv"}) {
    const std::filesystem::path p = dir.empty() ? std::filesystem::path(name) : dir / name;
    if (std::filesystem::is_regular_file(p)) return p.string();
  }
  return "";
}

void write_eval_report(const EvalResult& result, const std::string& out_dir, const ReportOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  SCALPEL_CHECK(!ec && std::filesystem::is_directory(out_dir), "--report: cannot create directory {}: {}", out_dir,
                ec.message());
  const History history = options.history_path.empty() ? History{} : load_history(options.history_path);
  const std::vector<GalleryItem> gallery = error_gallery(result, options);
  const std::filesystem::path dir(out_dir);
  Json metrics = metrics_to_json(result.metrics);
  if (!options.data.split.empty()) {
    Json data = Json::object();
    data["path"] = options.data.path;
    data["split"] = options.data.split;
    data["split_source"] = options.data.split_source;
    data["size"] = options.data.size;
    data["fingerprint"] = options.data.fingerprint;
    metrics["data"] = data;
  }
  Json skipped = Json::array();
  for (const std::string& s : result.skipped) skipped.push_back(s);
  metrics["skipped"] = skipped;  // unreadable images left out of every metric
  // All three are rendered before any is written, then published together: never a metrics.json
  // without its report.html.
  write_files_atomic({{(dir / "metrics.json").string(), metrics.dump(2) + "\n"},
                      {(dir / "predictions.csv").string(), predictions_csv(result)},
                      {(dir / "report.html").string(), render_html_report(result, options.title, history, gallery)}});
}

}  // namespace scalpel::report
