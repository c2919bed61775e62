// Evaluation over a dataset and the report folder (see evaluate.h).
#include "apps/report/evaluate.h"

#include <algorithm>
#include <filesystem>
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
  for (size_t start = 0; start < n; start += static_cast<size_t>(options.batch)) {
    const size_t end = std::min(n, start + static_cast<size_t>(options.batch));
    std::vector<Tensor> inputs;
    for (size_t i = start; i < end; ++i) inputs.push_back(data::preprocess_file(dataset.samples[i].path, p));
    const Tensor x = ops::concat(inputs, 0).to(options.device);
    const Tensor probs = nn::softmax(model(x), 1).to(Device::cpu()).to(DType::F64).contiguous();
    const std::vector<double> v = probs.to_vector();
    for (size_t i = start; i < end; ++i) {
      const auto row = v.begin() + static_cast<std::ptrdiff_t>((i - start) * classes);
      r.probs.emplace_back(row, row + classes);
      r.paths.push_back(dataset.samples[i].path);
      r.labels.push_back(dataset.samples[i].label);
      r.preds.push_back(argmax(r.probs.back()));
    }
  }
  model.train(was_training);
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
  write_file_atomic((dir / "metrics.json").string(), metrics_to_json(result.metrics).dump(2) + "\n");
  write_file_atomic((dir / "predictions.csv").string(), predictions_csv(result));
  write_file_atomic((dir / "report.html").string(), render_html_report(result, options.title, history, gallery));
}

}  // namespace scalpel::report
