#pragma once
// Inline SVG charts for the HTML reports: axes with ticks on both sides, legends beside the
// plot, and labels sized so that nothing is clipped by the <svg> box.
//
// Text cannot be measured when the SVG is written, so every label's width is estimated from
// per-character advance widths of common sans-serif faces (rounded up), and margins are made
// wide enough for it; a label longer than its cap is shortened with an ellipsis and keeps its
// full text in a <title> tooltip. tests/browser/report_browser_test.py checks the result in
// Chromium.
//
//   Plot p(nice_axis(0, 1), nice_axis(0, 40, 5, true), "probability", "images");
//   p.legend = {{"correct", "#2ca02c"}, {"wrong", "#d62728"}};
//   std::string svg = p.open() + "<rect x='" ... p.x(0.1) ... "'/>" + "</svg>";
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scalpel::report {

constexpr double kChartFont = 12;  // px, every chart's text

// Escapes & < > " ' for HTML text and attributes.
std::string html_escape(const std::string& text);

// Estimated rendered width in px of UTF-8 `text` at `font` px (errs wide, never narrow).
double text_width(std::string_view text, double font = kChartFont);

// `text` when it fits in `max_width` px, else its longest prefix (whole code points) followed
// by an ellipsis that does.
std::string fit_text(const std::string& text, double max_width, double font = kChartFont);

// <text x y attributes>text</text>, escaped, shortened to max_width px by fit_text; a shortened
// label carries its full text (or `tooltip` when given) in a <title> child.
std::string svg_label(double x, double y, const std::string& text, double max_width,
                      const std::string& attributes = "", const std::string& tooltip = "");

// One palette colour per series index (matplotlib's tab10).
const char* series_color(size_t index);

// A linear axis from lo to hi with "nice" ticks (steps of 1, 2 or 5 times a power of ten)
// covering the data range [data_lo, data_hi]; with `integer`, steps are whole numbers (counts,
// epochs). An empty range is widened around its value.
struct Axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
  int decimals = 0;      // of the tick labels, or their significant digits when `general`
  bool general = false;  // general notation (1e-05) for tiny or huge values
  std::string label(double value) const;
};
Axis nice_axis(double data_lo, double data_hi, int target_ticks = 5, bool integer = false);

struct LegendEntry {
  std::string text;
  std::string color;
  std::string tooltip = "";  // e.g. the full name when `text` holds a shortened one
};

// A rectangular plot area with a frame, tick marks and labels (class 'x-axis' and 'y-axis'
// groups), axis titles and an optional legend to its right. y_categories replaces the numeric
// y axis by one label per band of height 1 (band c spans [c, c+1) of `y`, first at the top).
struct Plot {
  Axis x_axis, y_axis;
  std::string x_title, y_title, title;
  std::vector<LegendEntry> legend;
  std::vector<std::string> y_categories;
  double plot_width = 300, plot_height = 220;

  Plot(Axis x, Axis y, std::string x_title_, std::string y_title_)
      : x_axis(std::move(x)), y_axis(std::move(y)), x_title(std::move(x_title_)), y_title(std::move(y_title_)) {}

  // Margins depend on the labels, so x(), y(), width() and height() are valid only after open().
  std::string open();  // <svg ...> with frame, grid, ticks, titles and legend
  double x(double value) const;
  double y(double value) const;
  double width() const;
  double height() const;

 private:
  double left_ = 0, right_ = 0, top_ = 0, bottom_ = 0, legend_width_ = 0;
};

// A polyline through the finite (x, y) `points` in `color`, with `markers` a dot at each (so
// that a single point shows).
std::string svg_series(const Plot& plot, const std::vector<std::pair<double, double>>& points, const char* color,
                       bool markers);

}  // namespace scalpel::report
