// Segmentation evaluation and its report folder (see evaluate_segmentation.h).
#include "apps/report/evaluate_segmentation.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>

#include "apps/report/html_report.h"
#include "apps/train/segmentation.h"
#include "autograd/autograd.h"
#include "data/image.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace scalpel::report {
namespace {

// One sample at the model's input size: the fitted image, its model input and its class ids.
struct Loaded {
  data::Image fitted;      // p.width x p.height x p.channels
  Tensor input;            // float32 [1, C, H, W]
  Tensor target;           // int64 [1, H, W]
};

Loaded load_sample(const data::Sample& s, const data::Preprocess& p, int64_t classes) {
  SCALPEL_CHECK(!s.mask_path.empty(), "eval: image '{}' has no mask (a mask that does not fit is left out with a "
                "warning when the dataset is read)", s.path);
  const data::Image image = data::load_image(s.path);
  const data::Image mask = data::load_image(s.mask_path);
  // The same tolerance as the loader: a mask may be stored smaller, not cropped differently.
  const double ratio = (static_cast<double>(image.width) / image.height) / (static_cast<double>(mask.width) / mask.height);
  SCALPEL_CHECK(std::abs(ratio - 1.0) < 0.01, "mask '{}' is {}x{} but its image '{}' is {}x{}", s.mask_path,
                mask.width, mask.height, s.path, image.width, image.height);
  Loaded l;
  l.fitted = data::fit_image(image, p);
  l.input = data::to_tensor(l.fitted, p.norm);
  const data::Image m = data::fit_mask(mask, image.width, image.height, p);
  const std::vector<int64_t> raw(m.pixels.begin(), m.pixels.end());
  l.target = train::mask_targets(Tensor::from_data(raw.data(), {1, m.height, m.width}), classes, {s.mask_path});
  return l;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// Class c > 0 drawn over the image in its colour at half opacity; background left as is.
data::Image overlay(const data::Image& image, const int64_t* classes) {
  static const uint8_t kColors[][3] = {{230, 25, 75}, {60, 180, 75}, {0, 130, 200}, {245, 130, 48},
                                       {145, 30, 180}, {70, 240, 240}, {240, 50, 230}, {210, 245, 60}};
  data::Image out = data::convert_channels(image, 3);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      const int64_t c = classes[static_cast<size_t>(y) * out.width + x];
      if (c == 0) continue;
      for (int k = 0; k < 3; ++k) {
        uint8_t& v = out.at(y, x, k);
        v = static_cast<uint8_t>((v + kColors[(c - 1) % 8][k] + 1) / 2);
      }
    }
  }
  return out;
}

// [image | true mask over it | predicted mask over it], 4 white pixels apart.
data::Image side_by_side(const std::vector<data::Image>& panels) {
  constexpr int kGap = 4;
  const int w = panels.front().width, h = panels.front().height;
  data::Image out(static_cast<int>(panels.size()) * (w + kGap) - kGap, h, 3, 255);
  for (size_t i = 0; i < panels.size(); ++i) {
    const data::Image rgb = data::convert_channels(panels[i], 3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int k = 0; k < 3; ++k) out.at(y, static_cast<int>(i) * (w + kGap) + x, k) = rgb.at(y, x, k);
  }
  return out;
}

std::vector<GalleryItem> worst_gallery(const SegmentationEvalResult& r, const SegmentationReportOptions& o) {
  std::vector<GalleryItem> items;
  if (o.model == nullptr || o.gallery_size <= 0) return items;
  std::vector<size_t> order(r.paths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r.dice[a] < r.dice[b]; });
  order.resize(std::min(order.size(), static_cast<size_t>(o.gallery_size)));
  const bool was_training = o.model->is_training();
  o.model->eval();
  NoGradGuard no_grad;
  const int64_t classes = static_cast<int64_t>(r.classes.size());
  for (size_t i : order) {
    data::Sample s;
    s.path = r.paths[i];
    s.mask_path = r.masks[i];
    const Loaded l = load_sample(s, o.preprocess, classes);
    const Tensor pred = train::predicted_mask((*o.model)(l.input.to(o.device)));
    const data::Image panel = side_by_side({l.fitted, overlay(l.fitted, l.target.data<int64_t>()),
                                            overlay(l.fitted, pred.contiguous().data<int64_t>())});
    const std::string name = std::filesystem::path(r.paths[i]).filename().string();
    items.push_back({fmt::format("{}: Dice {:.3f}, IoU {:.3f} (image, true mask, predicted mask)", name, r.dice[i],
                                 r.iou[i]),
                     data::encode_png(panel)});
  }
  o.model->train(was_training);
  return items;
}

std::string dice_histogram_svg(const std::vector<double>& dice) {
  constexpr int kBins = 10;
  std::vector<int> counts(kBins, 0);
  for (double d : dice) ++counts[std::clamp(static_cast<int>(d * kBins), 0, kBins - 1)];
  const int top = std::max(1, *std::max_element(counts.begin(), counts.end()));
  Plot plot(nice_axis(0, 1, kBins), nice_axis(0, top, 5, true), "Dice per image", "images");
  plot.plot_width = 340;
  std::string s = plot.open();
  for (int b = 0; b < kBins; ++b) {
    const double x0 = static_cast<double>(b) / kBins;
    s += fmt::format(
        "<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='#1f77b4'>"
        "<title>Dice {:.1f}-{:.1f}: {} images</title></rect>",
        plot.x(x0) + 1, plot.y(counts[b]), plot.x(1.0 / kBins) - plot.x(0) - 2, plot.y(0) - plot.y(counts[b]), x0,
        x0 + 1.0 / kBins, counts[b]);
  }
  return s + "</svg>";
}

std::string render_segmentation_html(const SegmentationEvalResult& r, const std::string& title,
                                     const History& history, const std::vector<GalleryItem>& gallery) {
  const SegmentationMetrics& m = r.metrics;
  std::string s = page_head(title);
  s += fmt::format("<h1>{}</h1><p>model <b>{}</b>, {} images, {} pixels, {} classes; Dice and IoU are means over "
                   "the foreground classes</p>\n",
                   html_escape(title), html_escape(r.model_name), m.images, m.pixels, m.classes.size());
  s += "<table><tr><th>metric</th><th>value</th></tr>";
  const std::pair<const char*, double> summary[] = {{"Dice (all pixels)", m.mean_dice},
                                                    {"IoU (all pixels)", m.mean_iou},
                                                    {"mean Dice per image", m.mean_image_dice},
                                                    {"mean IoU per image", m.mean_image_iou},
                                                    {"pixel accuracy", m.pixel_accuracy}};
  for (const auto& [name, v] : summary) s += fmt::format("<tr><td>{}</td><td>{:.4f}</td></tr>", name, v);
  s += "</table>\n<h2>Per class</h2><table><tr><th>class</th><th>Dice</th><th>IoU</th><th>pixels</th></tr>";
  for (size_t c = 0; c < m.classes.size(); ++c)
    s += fmt::format("<tr><td>{}</td><td>{:.4f}</td><td>{:.4f}</td><td>{}</td></tr>", html_escape(m.classes[c]),
                     m.dice[c], m.iou[c], m.support[c]);
  s += "</table>\n<h2>Dice per image</h2>\n" + dice_histogram_svg(r.dice);
  if (!history.series.empty()) s += "\n<h2>Training curves</h2>\n" + training_curves_html(history);
  if (!gallery.empty())
    s += "\n<h2>Lowest Dice: image, true mask, predicted mask</h2>\n<p>Click an image to enlarge it.</p>\n" +
         gallery_html(gallery, 180);
  return s + "\n</body></html>\n";
}

}  // namespace

SegmentationEvalResult evaluate_segmentation(models::Model& model, const data::Dataset& dataset,
                                             const data::Preprocess& p, const SegmentationEvalOptions& options) {
  SCALPEL_CHECK(!dataset.samples.empty(), "eval: no samples in {}", dataset.root);
  SCALPEL_CHECK(options.batch > 0, "eval: batch must be positive, got {}", options.batch);
  SegmentationEvalResult r;
  r.model_name = model.name();
  r.classes = train::mask_class_names(model.options().classes);
  const int64_t classes = static_cast<int64_t>(r.classes.size());
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  std::vector<PixelConfusion> per_image;
  const size_t n = dataset.samples.size();
  for (size_t start = 0; start < n; start += static_cast<size_t>(options.batch)) {
    const size_t end = std::min(n, start + static_cast<size_t>(options.batch));
    std::vector<Tensor> inputs, targets;
    for (size_t i = start; i < end; ++i) {
      Loaded l = load_sample(dataset.samples[i], p, classes);
      inputs.push_back(std::move(l.input));
      targets.push_back(std::move(l.target));
    }
    const Tensor pred = train::predicted_mask(model(ops::concat(inputs, 0).to(options.device))).contiguous();
    const size_t pixels = static_cast<size_t>(p.width) * static_cast<size_t>(p.height);
    for (size_t i = start; i < end; ++i) {
      PixelConfusion c(classes);
      c.add(targets[i - start].data<int64_t>(), pred.data<int64_t>() + (i - start) * pixels, pixels);
      r.paths.push_back(dataset.samples[i].path);
      r.masks.push_back(dataset.samples[i].mask_path);
      r.dice.push_back(c.mean_dice());
      r.iou.push_back(c.mean_iou());
      per_image.push_back(std::move(c));
    }
  }
  model.train(was_training);
  r.metrics = segmentation_metrics(per_image, r.classes);
  return r;
}

std::string segmentation_predictions_csv(const SegmentationEvalResult& r) {
  std::string out = "path,mask,dice,iou\n";
  for (size_t i = 0; i < r.paths.size(); ++i)
    out += fmt::format("{},{},{:.6g},{:.6g}\n", csv_field(r.paths[i]), csv_field(r.masks[i]), r.dice[i], r.iou[i]);
  return out;
}

void write_segmentation_report(const SegmentationEvalResult& result, const std::string& out_dir,
                               const SegmentationReportOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  SCALPEL_CHECK(!ec && std::filesystem::is_directory(out_dir), "--report: cannot create directory {}: {}", out_dir,
                ec.message());
  const History history = options.history_path.empty() ? History{} : load_history(options.history_path);
  const std::vector<GalleryItem> gallery = worst_gallery(result, options);
  const std::filesystem::path dir(out_dir);
  // Rendered first, published together (see write_eval_report).
  write_files_atomic(
      {{(dir / "metrics.json").string(), segmentation_metrics_to_json(result.metrics).dump(2) + "\n"},
       {(dir / "predictions.csv").string(), segmentation_predictions_csv(result)},
       {(dir / "report.html").string(), render_segmentation_html(result, options.title, history, gallery)}});
}

}  // namespace scalpel::report
