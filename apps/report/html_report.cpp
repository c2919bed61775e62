// The self-contained HTML report with inline SVG charts (see html_report.h).
#include "apps/report/html_report.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace scalpel::report {
namespace {

constexpr double kNameCap = 260;  // px: longer class names are shortened (full name in a tooltip)

std::string num(double v) { return std::isnan(v) ? std::string("n/a") : fmt::format("{:.4f}", v); }

double widest(const std::vector<std::string>& texts, double cap) {
  double w = 0;
  for (const std::string& t : texts) w = std::max(w, text_width(t));
  return std::min(w, cap);
}

// White to blue as `fraction` goes from 0 to 1.
std::string shade(double fraction) {
  return fmt::format("rgb({},{},255)", static_cast<int>(255 * (1 - fraction)),
                     static_cast<int>(255 * (1 - 0.8 * fraction)));
}

// One confusion-matrix heatmap, rows the true class and columns the predicted one: counts shaded
// by the largest count, or (`normalized`) each row divided by its total, recall on the diagonal.
std::string confusion_svg(const Metrics& m, bool normalized) {
  const size_t k = m.classes.size();
  const double names = widest(m.classes, kNameCap);
  const std::string title = normalized ? "fraction of each true class (rows sum to 1)" : "counts";
  const double left = 4 + 14 + 6 + names + 6, top = 26;
  // At most 580 px wide, so that both matrices sit side by side in a 1280 px window.
  const double cell = std::clamp((580.0 - 12 - left) / static_cast<double>(k), 20.0, 64.0);
  const double matrix = cell * static_cast<double>(k);
  // Column names hang down-left at 45 degrees from their column: sqrt(1/2) of their width.
  const double column_names = names * 0.7072 + 16;
  const double width = std::max(left + matrix + 12, text_width(title) + 12);
  const double height = top + matrix + column_names + 20;
  int64_t largest = 1;
  for (const auto& row : m.confusion)
    for (int64_t v : row) largest = std::max(largest, v);

  std::string s = fmt::format("<svg class='chart confusion' width='{:.0f}' height='{:.0f}' font-size='{}' "
                              "font-family='sans-serif'>",
                              std::ceil(width), std::ceil(height), kChartFont);
  const double title_half = text_width(title) / 2;  // centred over the matrix, inside the box
  s += svg_label(std::clamp(left + matrix / 2, title_half + 4, width - title_half - 4), 14, title, width - 8,
                 "class='chart-title' text-anchor='middle'");
  for (size_t t = 0; t < k; ++t) {
    int64_t row = 0;
    for (int64_t v : m.confusion[t]) row += v;
    s += svg_label(left - 6, top + cell * (static_cast<double>(t) + 0.5) + 4, m.classes[t], kNameCap,
                   "text-anchor='end'");
    for (size_t p = 0; p < k; ++p) {
      const int64_t count = m.confusion[t][p];
      const double row_fraction = row > 0 ? static_cast<double>(count) / static_cast<double>(row) : 0;
      const double fraction = normalized ? row_fraction : static_cast<double>(count) / static_cast<double>(largest);
      const double x = left + cell * static_cast<double>(p), y = top + cell * static_cast<double>(t);
      s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='{}' stroke='#fff'>"
                       "<title>true {}, predicted {}: {} of {} ({:.1f}%)</title></rect>",
                       x, y, cell, cell, shade(fraction), html_escape(m.classes[t]), html_escape(m.classes[p]), count,
                       row, 100 * row_fraction);
      const std::string value = normalized ? (row > 0 ? fmt::format("{:.2f}", row_fraction) : "-")
                                           : fmt::format("{}", count);
      if (text_width(value) + 4 <= cell)
        s += fmt::format("<text x='{:.1f}' y='{:.1f}' text-anchor='middle' fill='{}'>{}</text>", x + cell / 2,
                         y + cell / 2 + 4, fraction > 0.5 ? "#fff" : "#000", value);
    }
  }
  for (size_t p = 0; p < k; ++p) {
    const double x = left + cell * (static_cast<double>(p) + 0.5) + 3, y = top + matrix + 10;
    s += svg_label(x, y, m.classes[p], kNameCap,
                   fmt::format("text-anchor='end' transform='rotate(-45 {:.1f} {:.1f})'", x, y));
  }
  s += svg_label(left + matrix / 2, height - 6, "predicted class", left + matrix,
                 "class='axis-title' text-anchor='middle'");
  const double cy = top + matrix / 2;
  s += fmt::format("<text class='axis-title' x='15' y='{0:.1f}' text-anchor='middle' "
                   "transform='rotate(-90 15 {0:.1f})'>true class</text>",
                   cy);
  return s + "</svg>";
}

std::string roc_svg(const EvalResult& r) {
  Plot plot(nice_axis(0, 1), nice_axis(0, 1), "false positive rate", "true positive rate");
  plot.plot_width = plot.plot_height = 300;
  for (size_t c = 0; c < r.classes.size(); ++c) {
    const double auc = r.metrics.per_class[c].auc;
    const std::string shown = fit_text(r.classes[c], kNameCap);
    plot.legend.push_back({fmt::format("{} (AUC {})", shown, std::isnan(auc) ? "n/a" : fmt::format("{:.3f}", auc)),
                           series_color(c), shown == r.classes[c] ? "" : r.classes[c]});
  }
  std::string s = plot.open();
  s += fmt::format("<line x1='{:.1f}' y1='{:.1f}' x2='{:.1f}' y2='{:.1f}' stroke='#bbb' stroke-dasharray='4'/>",
                   plot.x(0), plot.y(0), plot.x(1), plot.y(1));
  for (size_t c = 0; c < r.classes.size(); ++c) {
    std::vector<bool> positive(r.labels.size());
    std::vector<double> scores(r.labels.size());
    for (size_t i = 0; i < r.labels.size(); ++i) {
      positive[i] = r.labels[i] == static_cast<int64_t>(c);
      scores[i] = r.probs[i][c];
    }
    const RocCurve curve = roc_curve(positive, scores);
    std::vector<std::pair<double, double>> points;
    for (size_t i = 0; i < curve.fpr.size(); ++i) points.emplace_back(curve.fpr[i], curve.tpr[i]);
    s += svg_series(plot, points, series_color(c), false);
  }
  return s + "</svg>";
}

// Horizontal bars, one band per class (names read horizontally, however long).
std::string bars_svg(const Metrics& m) {
  Plot plot(nice_axis(0, 1), Axis{}, "score", "");
  plot.y_categories = m.classes;
  plot.plot_height = std::max(90.0, 36.0 * static_cast<double>(m.classes.size()));
  const char* names[] = {"precision", "recall", "F1"};
  for (int b = 0; b < 3; ++b) plot.legend.push_back({names[b], series_color(b)});
  std::string s = plot.open();
  for (size_t c = 0; c < m.per_class.size(); ++c) {
    const ClassMetrics& cm = m.per_class[c];
    const double values[] = {cm.precision, cm.recall, cm.f1};
    for (int b = 0; b < 3; ++b) {
      if (!std::isfinite(values[b])) continue;
      const double y0 = plot.y(static_cast<double>(c) + 0.14 + 0.24 * b),
                   y1 = plot.y(static_cast<double>(c) + 0.36 + 0.24 * b);
      s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='{}'><title>{} {}: {}</title>"
                       "</rect>",
                       plot.x(0), y0, plot.x(values[b]) - plot.x(0), y1 - y0, series_color(b), html_escape(cm.name),
                       names[b], num(values[b]));
    }
  }
  return s + "</svg>";
}

std::string confidence_svg(const EvalResult& r) {
  constexpr int kBins = 10;
  std::vector<double> right(kBins, 0), wrong(kBins, 0);
  for (size_t i = 0; i < r.labels.size(); ++i) {
    const double p = r.probs[i][r.preds[i]];
    const int bin = std::clamp(static_cast<int>(p * kBins), 0, kBins - 1);
    (r.preds[i] == r.labels[i] ? right : wrong)[bin] += 1;
  }
  const double top =
      std::max(*std::max_element(right.begin(), right.end()), *std::max_element(wrong.begin(), wrong.end()));
  Plot plot(nice_axis(0, 1, kBins), nice_axis(0, std::max(1.0, top), 5, true), "probability of the predicted class",
            "images");
  plot.plot_width = 340;
  plot.legend = {{"correct", "#2ca02c"}, {"wrong", "#d62728"}};
  std::string s = plot.open();
  const std::vector<double>* counts[] = {&right, &wrong};
  const char* what[] = {"correct", "wrong"};
  for (int b = 0; b < kBins; ++b) {
    const double x0 = static_cast<double>(b) / kBins;
    for (int side = 0; side < 2; ++side) {
      const double v = (*counts[side])[b], x = x0 + (0.05 + 0.45 * side) / kBins;
      s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='{}'><title>{}, p in "
                       "[{:.1f}, {:.1f}): {}</title></rect>",
                       plot.x(x), plot.y(v), plot.x(0.45 / kBins) - plot.x(0), plot.y(0) - plot.y(v),
                       plot.legend[side].color, what[side], x0, x0 + 1.0 / kBins, v);
    }
  }
  return s + "</svg>";
}

// Epoch timings are a summary, not a curve to read trends from.
bool is_timing(const std::string& name) { return name == "seconds" || name == "images_per_s"; }

}  // namespace

std::string training_curves_html(const History& history) {
  // One panel per metric; train_X and val_X share the panel X.
  struct Panel {
    std::string metric;
    std::vector<std::pair<std::string, const std::vector<double>*>> series;  // (legend, values)
  };
  std::vector<Panel> panels;
  const std::vector<double>* seconds = nullptr;
  const std::vector<double>* images_per_s = nullptr;
  for (const auto& [name, values] : history.series) {
    if (name == "seconds") seconds = &values;
    if (name == "images_per_s") images_per_s = &values;
    if (is_timing(name)) continue;
    std::string metric = name, legend = name;
    if (name.starts_with("train_")) metric = name.substr(6), legend = "train";
    if (name.starts_with("val_")) metric = name.substr(4), legend = "validation";
    if (metric == "lr") metric = "learning rate";
    auto panel = std::find_if(panels.begin(), panels.end(), [&](const Panel& p) { return p.metric == metric; });
    if (panel == panels.end()) panel = panels.insert(panels.end(), Panel{metric, {}});
    panel->series.push_back({legend, &values});
  }
  std::string s = "<div class='row'>";
  for (const Panel& panel : panels) {
    double lo = INFINITY, hi = -INFINITY;
    size_t epochs = 1;
    for (const auto& [legend, values] : panel.series) {
      epochs = std::max(epochs, values->size());
      for (double v : *values)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
    if (lo > hi) continue;  // nothing finite to plot
    Plot plot(nice_axis(1, static_cast<double>(epochs), 6, true), nice_axis(lo, hi), "epoch", panel.metric);
    plot.title = panel.metric;
    plot.plot_width = 230;
    plot.plot_height = 170;
    const bool train_or_validation = std::any_of(panel.series.begin(), panel.series.end(), [](const auto& series) {
      return series.first == "train" || series.first == "validation";
    });
    if (train_or_validation)
      for (size_t i = 0; i < panel.series.size(); ++i) plot.legend.push_back({panel.series[i].first, series_color(i)});
    std::string svg = plot.open();
    for (size_t i = 0; i < panel.series.size(); ++i) {
      std::vector<std::pair<double, double>> points;
      for (size_t e = 0; e < panel.series[i].second->size(); ++e)
        points.emplace_back(static_cast<double>(e + 1), (*panel.series[i].second)[e]);
      svg += svg_series(plot, points, series_color(i), points.size() <= 60);
    }
    s += svg + "</svg>";
  }
  s += "</div>\n";
  if (seconds != nullptr && !seconds->empty()) {
    double total = 0;
    for (double v : *seconds) total += v;
    s += fmt::format("<p class='timing'>Training time: {} epochs, {:.1f} s in all ({:.1f} s per epoch", seconds->size(),
                     total, total / static_cast<double>(seconds->size()));
    if (images_per_s != nullptr && !images_per_s->empty()) {
      double sum = 0;
      for (double v : *images_per_s) sum += v;
      s += fmt::format(", {:.0f} images/s", sum / static_cast<double>(images_per_s->size()));
    }
    s += ").</p>\n";
  }
  return s;
}

std::string page_head(const std::string& title) {
  return "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
         "<title>" + html_escape(title) + "</title>\n<style>"
         "body{font-family:sans-serif;margin:24px;color:#222}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "th:first-child,td:first-child{text-align:left}"
         ".row{display:flex;flex-wrap:wrap;gap:16px 32px;align-items:flex-start}svg{display:block}"
         ".gallery{display:flex;flex-wrap:wrap;gap:16px}.gallery figure{margin:0}"
         ".gallery figcaption{font-size:13px;overflow-wrap:anywhere;margin-top:4px}"
         ".zoom{display:block;cursor:zoom-in}.zoom input{position:absolute;opacity:0;pointer-events:none}"
         ".zoom img{display:block;image-rendering:pixelated}"
         ".zoom input:focus-visible+img{outline:2px solid #1f77b4}"
         ".zoom input:checked+img{position:fixed;left:0;top:0;width:100vw;height:100vh;object-fit:contain;"
         "box-sizing:border-box;padding:2vh 2vw;background:rgba(0,0,0,.9);z-index:10;cursor:zoom-out}"
         "</style></head><body>\n";
}

namespace {

// Width and height from a PNG's IHDR chunk; 0 x 0 when `png` is not one.
std::pair<uint32_t, uint32_t> png_size(const std::vector<uint8_t>& png) {
  if (png.size() < 24 || png[12] != 'I' || png[13] != 'H' || png[14] != 'D' || png[15] != 'R') return {0, 0};
  auto be32 = [&](size_t at) {
    return (uint32_t{png[at]} << 24) | (uint32_t{png[at + 1]} << 16) | (uint32_t{png[at + 2]} << 8) | png[at + 3];
  };
  return {be32(16), be32(20)};
}

}  // namespace

std::string gallery_html(const std::vector<GalleryItem>& items, int thumbnail_height) {
  std::string s = "<div class='gallery'>\n";
  for (const GalleryItem& g : items) {
    const auto [w, h] = png_size(g.png);
    const double width = w > 0 && h > 0 ? static_cast<double>(thumbnail_height) * w / h : thumbnail_height;
    // The label keeps the thumbnail's height while the image is enlarged, so nothing moves beneath.
    s += fmt::format(
        "<figure style='width:{0:.0f}px'><label class='zoom' style='height:{1}px' title='click to enlarge'>"
        "<input type='checkbox' aria-label='enlarge'><img width='{0:.0f}' height='{1}' alt='{2}' "
        "src='data:image/png;base64,{3}'></label><figcaption>{2}</figcaption></figure>\n",
        width, thumbnail_height, html_escape(g.caption), base64(g.png));
  }
  return s + "</div>\n";
}

std::string base64(const std::vector<uint8_t>& bytes) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t b = (bytes[i] << 16) | (i + 1 < bytes.size() ? bytes[i + 1] << 8 : 0) |
                       (i + 2 < bytes.size() ? bytes[i + 2] : 0);
    out += t[(b >> 18) & 63];
    out += t[(b >> 12) & 63];
    out += i + 1 < bytes.size() ? t[(b >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? t[b & 63] : '=';
  }
  return out;
}

History load_history(const std::string& path) {
  const std::string text = read_file(path);
  History h;
  auto add = [&](const std::string& key, double v) {
    if (key == "epoch" || key == "step") return;
    for (auto& [name, values] : h.series)
      if (name == key) return values.push_back(v);
    h.series.push_back({key, {v}});
  };
  if (path.ends_with(".json")) {
    const Json j = Json::parse(text, path);
    if (j.is_array()) {
      for (const Json& row : j.as_array())
        for (const auto& [key, value] : row.as_object())
          if (value.is_number()) add(key, value.as_number());
    } else {
      for (const auto& [key, values] : j.as_object())
        if (values.is_array())
          for (const Json& v : values.as_array())
            if (v.is_number()) add(key, v.as_number());
    }
    return h;
  }
  std::istringstream lines(text);
  std::string line;
  std::vector<std::string> header;
  auto split = [](const std::string& l) {
    std::vector<std::string> out;
    std::stringstream s(l);
    std::string cell;
    while (std::getline(s, cell, ',')) out.push_back(cell);
    return out;
  };
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (header.empty()) {
      header = split(line);
      continue;
    }
    const std::vector<std::string> cells = split(line);
    for (size_t i = 0; i < cells.size() && i < header.size(); ++i) {
      char* end = nullptr;
      const double v = std::strtod(cells[i].c_str(), &end);
      if (end != cells[i].c_str() && *end == '\0') add(header[i], v);
    }
  }
  return h;
}

std::string render_html_report(const EvalResult& r, const std::string& title, const History& history,
                               const std::vector<GalleryItem>& gallery) {
  const Metrics& m = r.metrics;
  std::string s = page_head(title);
  s += fmt::format("<h1>{}</h1><p>model <b>{}</b>, {} images, {} classes</p>\n", html_escape(title),
                   html_escape(r.model_name), m.samples, m.classes.size());
  s += "<div class='row'><table><tr><th>metric</th><th>value</th></tr>";
  const std::pair<const char*, double> summary[] = {{"accuracy", m.accuracy},
                                                    {"balanced accuracy", m.balanced_accuracy},
                                                    {"macro F1", m.macro_f1},
                                                    {"weighted F1", m.weighted_f1},
                                                    {"macro AUC (one-vs-rest)", m.macro_auc}};
  for (const auto& [name, v] : summary) s += fmt::format("<tr><td>{}</td><td>{}</td></tr>", name, num(v));
  for (const auto& [k, v] : m.top_k) s += fmt::format("<tr><td>top-{} accuracy</td><td>{}</td></tr>", k, num(v));
  s += "</table>\n<table><tr><th>class</th><th>precision</th><th>recall</th><th>specificity</th>"
       "<th>F1</th><th>AUC</th><th>support</th></tr>";
  for (const ClassMetrics& c : m.per_class)
    s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                     html_escape(c.name), num(c.precision), num(c.recall), num(c.specificity), num(c.f1), num(c.auc),
                     c.support);
  s += "</table></div>\n<h2>Confusion matrix</h2>\n<div class='row'>" + confusion_svg(m, false) +
       confusion_svg(m, true) + "</div>\n";
  s += "<div class='row'><div><h2>ROC curves (one-vs-rest)</h2>\n" + roc_svg(r) + "</div>\n";
  s += "<div><h2>Precision, recall, F1 per class</h2>\n" + bars_svg(m) + "</div></div>\n";
  s += "<h2>Confidence: correct vs wrong</h2>\n" + confidence_svg(r);
  if (!history.series.empty()) s += "\n<h2>Training curves</h2>\n" + training_curves_html(history);
  if (!gallery.empty())
    s += "\n<h2>Grad-CAM of the most confident errors</h2>\n<p>Click an image to enlarge it.</p>\n" +
         gallery_html(gallery, 224);
  return s + "\n</body></html>\n";
}

}  // namespace scalpel::report
