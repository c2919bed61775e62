// The self-contained HTML report with inline SVG charts (see html_report.h).
#include "apps/report/html_report.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace scalpel::report {
namespace {

const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
const char* color(size_t i) { return kPalette[i % 10]; }

std::string num(double v) { return std::isnan(v) ? std::string("n/a") : fmt::format("{:.4f}", v); }

// A plot frame 0..1 x 0..1 mapped to a W x H area with margins; returns the <svg> opening and axes.
struct Frame {
  double w = 360, h = 260, left = 44, right = 12, top = 12, bottom = 32;
  double x(double v) const { return left + v * (w - left - right); }
  double y(double v) const { return h - bottom - v * (h - top - bottom); }
  std::string open(const std::string& xlabel, const std::string& ylabel, double ymax = 1) const {
    std::string s = fmt::format("<svg width='{}' height='{}' font-size='10'>", w, h);
    s += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='none' stroke='#999'/>", x(0), y(1),
                     x(1) - x(0), y(0) - y(1));
    for (int i = 0; i <= 4; ++i)
      s += fmt::format("<text x='{}' y='{}' text-anchor='end'>{:.3g}</text>", left - 4, y(i / 4.0) + 3,
                       ymax * i / 4.0);
    s += fmt::format("<text x='{}' y='{}' text-anchor='middle'>{}</text>", (x(0) + x(1)) / 2, h - 6,
                     html_escape(xlabel));
    s += fmt::format("<text x='10' y='{}' transform='rotate(-90 10 {})' text-anchor='middle'>{}</text>",
                     (y(0) + y(1)) / 2, (y(0) + y(1)) / 2, html_escape(ylabel));
    return s;
  }
};

std::string confusion_svg(const Metrics& m) {
  const size_t k = m.classes.size();
  const double cell = std::clamp(360.0 / k, 14.0, 60.0), left = 110, top = 20;
  std::string s = fmt::format("<svg width='{}' height='{}' font-size='10'>",
                              left + cell * k + 10, top + cell * k + 60);
  for (size_t t = 0; t < k; ++t) {
    int64_t row = 0;
    for (int64_t v : m.confusion[t]) row += v;
    s += fmt::format("<text x='{}' y='{}' text-anchor='end'>{}</text>", left - 4, top + cell * (t + 0.5) + 3,
                     html_escape(m.classes[t]));
    for (size_t p = 0; p < k; ++p) {
      const double frac = row > 0 ? static_cast<double>(m.confusion[t][p]) / row : 0;  // row-normalized shade
      s += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='rgb({},{},255)' stroke='#fff'>"
                       "<title>true {} / pred {}: {}</title></rect>",
                       left + cell * p, top + cell * t, cell, cell, static_cast<int>(255 * (1 - frac)),
                       static_cast<int>(255 * (1 - 0.8 * frac)), html_escape(m.classes[t]), html_escape(m.classes[p]),
                       m.confusion[t][p]);
      if (cell >= 18)
        s += fmt::format("<text x='{}' y='{}' text-anchor='middle' fill='{}'>{}</text>", left + cell * (p + 0.5),
                         top + cell * (t + 0.5) + 3, frac > 0.5 ? "#fff" : "#000", m.confusion[t][p]);
    }
  }
  for (size_t p = 0; p < k; ++p)
    s += fmt::format("<text x='{0}' y='{1}' transform='rotate(45 {0} {1})'>{2}</text>", left + cell * (p + 0.3),
                     top + cell * k + 10, html_escape(m.classes[p]));
  s += fmt::format("<text x='{}' y='12' text-anchor='middle'>predicted &#8594; (rows: true class)</text>",
                   left + cell * k / 2);
  return s + "</svg>";
}

std::string roc_svg(const EvalResult& r) {
  Frame f;
  f.w = 420;
  f.right = 130;
  std::string s = f.open("false positive rate", "true positive rate");
  s += fmt::format("<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='#ccc' stroke-dasharray='4'/>", f.x(0), f.y(0),
                   f.x(1), f.y(1));
  for (size_t c = 0; c < r.classes.size(); ++c) {
    std::vector<bool> pos(r.labels.size());
    std::vector<double> scores(r.labels.size());
    for (size_t i = 0; i < r.labels.size(); ++i) {
      pos[i] = r.labels[i] == static_cast<int64_t>(c);
      scores[i] = r.probs[i][c];
    }
    const RocCurve curve = roc_curve(pos, scores);
    std::string points;
    for (size_t i = 0; i < curve.fpr.size(); ++i) points += fmt::format("{:.1f},{:.1f} ", f.x(curve.fpr[i]), f.y(curve.tpr[i]));
    s += fmt::format("<polyline points='{}' fill='none' stroke='{}' stroke-width='1.5'/>", points, color(c));
    s += fmt::format("<text x='{}' y='{}' fill='{}'>{} (AUC {})</text>", f.x(1) + 6, f.y(1) + 10 + 13 * c, color(c),
                     html_escape(r.classes[c]), num(r.metrics.per_class[c].auc));
  }
  return s + "</svg>";
}

std::string bars_svg(const Metrics& m) {
  Frame f;
  f.w = std::max(360.0, 60.0 + 48.0 * m.classes.size());
  f.bottom = 60;
  std::string s = f.open("", "score");
  const char* names[] = {"precision", "recall", "f1"};
  const double group = 1.0 / m.classes.size(), bar = group / 4;
  for (size_t c = 0; c < m.per_class.size(); ++c) {
    const ClassMetrics& cm = m.per_class[c];
    const double values[] = {cm.precision, cm.recall, cm.f1};
    for (int b = 0; b < 3; ++b) {
      const double x0 = group * c + bar * (b + 0.5);
      s += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='{}'><title>{} {}: {}</title></rect>",
                       f.x(x0), f.y(values[b]), f.x(bar) - f.x(0), f.y(0) - f.y(values[b]), color(b),
                       html_escape(cm.name), names[b], num(values[b]));
    }
    s += fmt::format("<text x='{0}' y='{1}' transform='rotate(30 {0} {1})'>{2}</text>", f.x(group * c + bar),
                     f.y(0) + 12, html_escape(cm.name));
  }
  for (int b = 0; b < 3; ++b)
    s += fmt::format("<text x='{}' y='{}' fill='{}'>{}</text>", f.x(0) + 70 * b + 4, f.h - 4, color(b), names[b]);
  return s + "</svg>";
}

std::string confidence_svg(const EvalResult& r) {
  constexpr int kBins = 10;
  std::vector<double> right(kBins, 0), wrong(kBins, 0);
  for (size_t i = 0; i < r.labels.size(); ++i) {
    const double p = r.probs[i][r.preds[i]];
    const int bin = std::min(kBins - 1, static_cast<int>(p * kBins));
    (r.preds[i] == r.labels[i] ? right : wrong)[bin] += 1;
  }
  const double top = std::max(1.0, std::max(*std::max_element(right.begin(), right.end()),
                                            *std::max_element(wrong.begin(), wrong.end())));
  Frame f;
  std::string s = f.open("confidence (probability of the predicted class)", "images", top);
  for (int b = 0; b < kBins; ++b) {
    const double x0 = static_cast<double>(b) / kBins, bw = 0.5 / kBins;
    s += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='#2ca02c'><title>correct: {}</title></rect>",
                     f.x(x0), f.y(right[b] / top), f.x(bw) - f.x(0), f.y(0) - f.y(right[b] / top), right[b]);
    s += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='#d62728'><title>wrong: {}</title></rect>",
                     f.x(x0 + bw), f.y(wrong[b] / top), f.x(bw) - f.x(0), f.y(0) - f.y(wrong[b] / top), wrong[b]);
  }
  s += fmt::format("<text x='{}' y='{}' fill='#2ca02c'>correct</text><text x='{}' y='{}' fill='#d62728'>wrong</text>",
                   f.x(0) + 4, f.y(1) + 12, f.x(0) + 54, f.y(1) + 12);
  return s + "</svg>";
}

}  // namespace

std::string history_svg(const std::string& name, const std::vector<double>& v) {
  double lo = 0, hi = 1e-12;
  for (double x : v) hi = std::max(hi, x), lo = std::min(lo, x);
  Frame f;
  f.w = 300;
  f.h = 200;
  std::string s = f.open("epoch", name, hi);
  std::string points;
  for (size_t i = 0; i < v.size(); ++i)
    points += fmt::format("{:.1f},{:.1f} ", f.x(v.size() > 1 ? static_cast<double>(i) / (v.size() - 1) : 0.5),
                          f.y((v[i] - lo) / (hi - lo)));
  return s + fmt::format("<polyline points='{}' fill='none' stroke='#1f77b4' stroke-width='1.5'/></svg>", points);
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

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
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
  std::string s = "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + html_escape(title) +
                  "</title>\n<style>body{font-family:sans-serif;margin:24px;color:#222}"
                  "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                  "th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:8px}"
                  "img{max-width:224px;image-rendering:pixelated}</style></head><body>\n";
  s += fmt::format("<h1>{}</h1><p>model <b>{}</b>, {} images, {} classes</p>\n", html_escape(title),
                   html_escape(r.model_name), m.samples, m.classes.size());
  s += "<table><tr><th>metric</th><th>value</th></tr>";
  const std::pair<const char*, double> summary[] = {{"accuracy", m.accuracy},
                                                    {"balanced accuracy", m.balanced_accuracy},
                                                    {"macro F1", m.macro_f1},
                                                    {"weighted F1", m.weighted_f1},
                                                    {"macro AUC (one-vs-rest)", m.macro_auc}};
  for (const auto& [name, v] : summary) s += fmt::format("<tr><td>{}</td><td>{}</td></tr>", name, num(v));
  for (const auto& [k, v] : m.top_k) s += fmt::format("<tr><td>top-{} accuracy</td><td>{}</td></tr>", k, num(v));
  s += "</table>\n<h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>specificity</th>"
       "<th>F1</th><th>AUC</th><th>support</th></tr>";
  for (const ClassMetrics& c : m.per_class)
    s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                     html_escape(c.name), num(c.precision), num(c.recall), num(c.specificity), num(c.f1), num(c.auc),
                     c.support);
  s += "</table>\n<h2>Confusion matrix</h2>\n" + confusion_svg(m);
  s += "\n<h2>ROC curves (one-vs-rest)</h2>\n" + roc_svg(r);
  s += "\n<h2>Precision, recall, F1 per class</h2>\n" + bars_svg(m);
  s += "\n<h2>Confidence: correct vs wrong</h2>\n" + confidence_svg(r);
  if (!history.series.empty()) {
    s += "\n<h2>Training curves</h2>\n";
    for (const auto& [name, values] : history.series) s += history_svg(name, values);
  }
  if (!gallery.empty()) {
    s += "\n<h2>Grad-CAM of the most confident errors</h2>\n";
    for (const GalleryItem& g : gallery)
      s += "<figure><img alt='Grad-CAM' src='data:image/png;base64," + base64(g.png) + "'><figcaption>" +
           html_escape(g.caption) + "</figcaption></figure>\n";
  }
  return s + "\n</body></html>\n";
}

}  // namespace scalpel::report
