#pragma once
// The self-contained HTML evaluation report: no external URL, no script; charts are inline SVG,
// images are PNG data URIs. Sections: summary numbers, confusion-matrix heatmap, one-vs-rest
// ROC curves, per-class precision/recall/F1 bars, confidence histograms (correct vs wrong),
// training curves (when a history is given) and a Grad-CAM gallery (when items are given).
#include <cstdint>
#include <string>
#include <vector>

#include "apps/report/evaluate.h"
#include "tensor/json.h"

namespace scalpel::report {

struct GalleryItem {
  std::string caption;          // e.g. "a.png: true X, predicted Y (p = 0.97)"
  std::vector<uint8_t> png;     // encoded PNG
};

// A training history: series name ("train_loss", "val_accuracy", ...) -> value per epoch.
struct History {
  std::vector<std::pair<std::string, std::vector<double>>> series;
};
// Reads history.json (an array of per-epoch objects, or an object of arrays) or history.csv
// (a header row, one row per epoch); numeric columns other than "epoch" become series.
// Error naming the file when it cannot be read or parsed.
History load_history(const std::string& path);

std::string render_html_report(const EvalResult& result, const std::string& title, const History& history,
                               const std::vector<GalleryItem>& gallery);

// Escapes & < > " ' for HTML text and attributes.
std::string html_escape(const std::string& text);

// Base64 with padding (RFC 4648), for data URIs such as data:image/png;base64,...
std::string base64(const std::vector<uint8_t>& bytes);

// A line chart of one training-history series (one value per epoch) as inline SVG.
std::string history_svg(const std::string& name, const std::vector<double>& values);

}  // namespace scalpel::report
