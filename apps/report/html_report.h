#pragma once
// The self-contained HTML evaluation report: no external URL, no script; charts are inline SVG
// (svg_chart.h), images are PNG data URIs. Sections: summary numbers, confusion matrices
// (counts and row-normalized), one-vs-rest ROC curves, per-class precision/recall/F1 bars,
// confidence histograms (correct vs wrong), training curves (when a history is given) and a
// Grad-CAM gallery (when items are given; click an image to enlarge it).
#include <cstdint>
#include <string>
#include <vector>

#include "apps/report/evaluate.h"
#include "apps/report/svg_chart.h"
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

// Base64 with padding (RFC 4648), for data URIs such as data:image/png;base64,...
std::string base64(const std::vector<uint8_t>& bytes);

// The page's <!DOCTYPE html> ... <body> opening with the shared style sheet.
std::string page_head(const std::string& title);

// Training curves: one panel per metric with train_X and val_X overlaid (epochs on x), the
// learning rate on its own panel, and the epoch timings (seconds, images_per_s) as one line
// of text rather than curves.
std::string training_curves_html(const History& history);

// Gallery thumbnails `thumbnail_height` px high (width by the image's aspect ratio) with their
// captions; clicking one shows it as large as the window (a CSS checkbox, no script).
std::string gallery_html(const std::vector<GalleryItem>& items, int thumbnail_height);

}  // namespace scalpel::report
