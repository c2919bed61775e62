// Inline SVG chart pieces for the HTML reports (see svg_chart.h).
#include "apps/report/svg_chart.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace scalpel::report {
namespace {

constexpr double kTickLength = 4, kLineHeight = 15, kLegendRow = 17, kLegendSwatch = 18, kLegendCap = 360,
                 kCategoryCap = 260;

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Advance widths in em of the printable ASCII characters (32 ' ' to 126 '~') in DejaVu Sans,
// the widest common sans-serif face (Liberation Sans, Arial and Helvetica are narrower).
constexpr double kAsciiEm[95] = {
    0.318, 0.401, 0.460, 0.838, 0.636, 0.950, 0.780, 0.275, 0.390, 0.390, 0.500, 0.838, 0.318, 0.361, 0.318, 0.337,
    0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.337, 0.337, 0.838, 0.838, 0.838, 0.531,
    1.000, 0.684, 0.686, 0.698, 0.770, 0.632, 0.575, 0.775, 0.752, 0.295, 0.295, 0.656, 0.557, 0.863, 0.748, 0.787,
    0.603, 0.787, 0.695, 0.635, 0.611, 0.732, 0.684, 0.989, 0.685, 0.611, 0.685, 0.390, 0.337, 0.390, 0.838, 0.500,
    0.500, 0.613, 0.635, 0.550, 0.635, 0.615, 0.352, 0.635, 0.634, 0.278, 0.278, 0.579, 0.278, 0.974, 0.634, 0.612,
    0.635, 0.635, 0.411, 0.521, 0.392, 0.634, 0.592, 0.818, 0.592, 0.592, 0.525, 0.636, 0.337, 0.636, 0.838};
constexpr double kSafety = 1.05;  // hinting and rounding in the browser

}  // namespace

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

double text_width(std::string_view text, double font) {
  double em = 0;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 32 && byte < 127) {
      em += kAsciiEm[byte - 32];
    } else if (byte >= 0x80 && !is_continuation_byte(c)) {
      em += 1.0;  // any other code point: as wide as a CJK character
    }
  }
  return em * font * kSafety;
}

std::string fit_text(const std::string& text, double max_width, double font) {
  if (text_width(text, font) <= max_width) return text;
  const std::string ellipsis = "\u2026";
  std::string prefix = text;
  while (!prefix.empty() && text_width(prefix + ellipsis, font) > max_width) {
    while (!prefix.empty() && is_continuation_byte(prefix.back())) prefix.pop_back();
    if (!prefix.empty()) prefix.pop_back();
  }
  return prefix + ellipsis;
}

std::string svg_label(double x, double y, const std::string& text, double max_width, const std::string& attributes,
                      const std::string& tooltip) {
  const std::string shown = fit_text(text, max_width);
  std::string s = fmt::format("<text x='{:.1f}' y='{:.1f}'{}{}>{}", x, y, attributes.empty() ? "" : " ", attributes,
                              html_escape(shown));
  if (!tooltip.empty() || shown != text) s += "<title>" + html_escape(tooltip.empty() ? text : tooltip) + "</title>";
  return s + "</text>";
}

const char* series_color(size_t index) {
  static const char* const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return palette[index % 10];
}

std::string Axis::label(double value) const {
  if (std::abs(value) < 1e-12 * std::max(std::abs(lo), std::abs(hi))) value = 0;  // no "-0" or "1e-17"
  return general ? fmt::format("{:.{}g}", value, decimals) : fmt::format("{:.{}f}", value, decimals);
}

Axis nice_axis(double data_lo, double data_hi, int target_ticks, bool integer) {
  if (!std::isfinite(data_lo) || !std::isfinite(data_hi)) data_lo = 0, data_hi = 1;
  if (data_hi < data_lo) std::swap(data_lo, data_hi);
  if (data_hi == data_lo) {
    const double pad = integer ? 1 : (data_lo == 0 ? 1 : std::abs(data_lo) * 0.1);
    data_lo -= data_lo == 0 && !integer ? 0 : pad;
    data_hi += pad;
  }
  const double raw = (data_hi - data_lo) / std::max(1, target_ticks);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude * 10;
  for (double m : {1.0, 2.0, 5.0})
    if (magnitude * m >= raw * (1 - 1e-9)) {
      step = magnitude * m;
      break;
    }
  if (integer) step = std::max(1.0, std::round(step));
  Axis a;
  const long first = static_cast<long>(std::floor(data_lo / step + 1e-9));
  const long last = static_cast<long>(std::ceil(data_hi / step - 1e-9));
  a.lo = first * step;
  a.hi = last * step;
  for (long i = first; i <= last; ++i) a.ticks.push_back(i * step);
  // Fixed notation with the step's decimals, unless the values are tiny or huge: then general
  // notation with as many significant digits as tell the ticks apart.
  const double largest = std::max(std::abs(a.lo), std::abs(a.hi));
  const int step_exponent = static_cast<int>(std::floor(std::log10(step) + 1e-9));
  a.general = largest < 1e-3 || largest >= 1e6;
  a.decimals = a.general ? std::max(3, static_cast<int>(std::floor(std::log10(largest))) - step_exponent + 1)
                         : std::max(0, -step_exponent);
  return a;
}

std::string Plot::open() {
  // Left: the rotated y title, then the widest tick label (or category name, capped).
  double tick_labels = 0;
  if (y_categories.empty()) {
    for (double t : y_axis.ticks) tick_labels = std::max(tick_labels, text_width(y_axis.label(t)));
  } else {
    for (const std::string& c : y_categories) tick_labels = std::max(tick_labels, text_width(c));
    tick_labels = std::min(tick_labels, kCategoryCap);
  }
  left_ = 4 + (y_title.empty() ? 0 : kLineHeight + 4) + tick_labels + kTickLength + 4;
  top_ = title.empty() ? 10 : kLineHeight + 12;
  bottom_ = kTickLength + kLineHeight + (x_title.empty() ? 4 : kLineHeight + 8);
  for (const LegendEntry& e : legend) legend_width_ = std::max(legend_width_, text_width(e.text));
  legend_width_ = std::min(legend_width_, kLegendCap);
  // Right: half the last x tick label, which is centred on the frame's edge, or the legend.
  const double last_tick = x_axis.ticks.empty() ? 0 : text_width(x_axis.label(x_axis.ticks.back())) / 2;
  right_ = legend.empty() ? last_tick + 6 : std::max(last_tick, 12.0) + kLegendSwatch + 6 + legend_width_ + 6;

  std::string s = fmt::format("<svg class='chart' width='{:.0f}' height='{:.0f}' font-size='{}' "
                              "font-family='sans-serif'>",
                              std::ceil(width()), std::ceil(height()), kChartFont);
  if (!title.empty())
    s += svg_label(left_ + plot_width / 2, kLineHeight, title, width() - 8,
                   "class='chart-title' text-anchor='middle'");
  // Grid and frame.
  if (y_categories.empty())
    for (double t : y_axis.ticks)
      s += fmt::format("<line x1='{:.1f}' y1='{:.1f}' x2='{:.1f}' y2='{:.1f}' stroke='#eee'/>", x(x_axis.lo), y(t),
                       x(x_axis.hi), y(t));
  for (double t : x_axis.ticks)
    s += fmt::format("<line x1='{0:.1f}' y1='{1:.1f}' x2='{0:.1f}' y2='{2:.1f}' stroke='#eee'/>", x(t), top_,
                     top_ + plot_height);
  s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='none' stroke='#999'/>", left_,
                   top_, plot_width, plot_height);
  // x axis: ticks below the frame, labels centred on them.
  s += "<g class='x-axis'>";
  for (double t : x_axis.ticks)
    s += fmt::format("<line x1='{0:.1f}' y1='{1:.1f}' x2='{0:.1f}' y2='{2:.1f}' stroke='#666'/>"
                     "<text x='{0:.1f}' y='{3:.1f}' text-anchor='middle'>{4}</text>",
                     x(t), top_ + plot_height, top_ + plot_height + kTickLength,
                     top_ + plot_height + kTickLength + kLineHeight - 2, x_axis.label(t));
  s += "</g><g class='y-axis'>";
  const double label_x = left_ - kTickLength - 3;
  if (y_categories.empty()) {
    for (double t : y_axis.ticks)
      s += fmt::format("<line x1='{0:.1f}' y1='{1:.1f}' x2='{2:.1f}' y2='{1:.1f}' stroke='#666'/>"
                       "<text x='{3:.1f}' y='{4:.1f}' text-anchor='end'>{5}</text>",
                       left_ - kTickLength, y(t), left_, label_x, y(t) + 4, y_axis.label(t));
  } else {
    for (size_t c = 0; c < y_categories.size(); ++c)
      s += svg_label(label_x, y(c + 0.5) + 4, y_categories[c], kCategoryCap, "text-anchor='end'");
  }
  s += "</g>";
  if (!x_title.empty())
    s += svg_label(left_ + plot_width / 2, height() - 6, x_title, plot_width + 2 * std::min(left_, right_) - 4,
                   "class='axis-title' text-anchor='middle'");
  if (!y_title.empty()) {
    const double cx = 4 + kLineHeight - 3, cy = top_ + plot_height / 2;
    s += svg_label(cx, cy, y_title, plot_height, fmt::format("class='axis-title' text-anchor='middle' "
                                                             "transform='rotate(-90 {:.1f} {:.1f})'", cx, cy));
  }
  // Legend: a swatch and a label per entry, right of the frame.
  const double lx = left_ + plot_width + std::max(last_tick, 12.0);
  for (size_t i = 0; i < legend.size(); ++i) {
    const double ly = top_ + 8 + kLegendRow * i;
    s += fmt::format("<line x1='{:.1f}' y1='{:.1f}' x2='{:.1f}' y2='{:.1f}' stroke='{}' stroke-width='3'/>", lx, ly,
                     lx + kLegendSwatch - 4, ly, legend[i].color);
    s += svg_label(lx + kLegendSwatch, ly + 4, legend[i].text, legend_width_, "class='legend'", legend[i].tooltip);
  }
  return s;
}

double Plot::x(double v) const { return left_ + (v - x_axis.lo) / (x_axis.hi - x_axis.lo) * plot_width; }

double Plot::y(double v) const {
  if (!y_categories.empty()) return top_ + v / static_cast<double>(y_categories.size()) * plot_height;
  return top_ + plot_height - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * plot_height;
}

double Plot::width() const { return left_ + plot_width + right_; }

double Plot::height() const {
  return std::max(top_ + plot_height + bottom_, top_ + 8 + kLegendRow * static_cast<double>(legend.size()));
}

std::string svg_series(const Plot& plot, const std::vector<std::pair<double, double>>& points, const char* color,
                       bool markers) {
  std::string line, dots;
  for (const auto& [vx, vy] : points) {
    if (!std::isfinite(vx) || !std::isfinite(vy)) continue;
    line += fmt::format("{:.1f},{:.1f} ", plot.x(vx), plot.y(vy));
    if (markers)
      dots += fmt::format("<circle cx='{:.1f}' cy='{:.1f}' r='2.5' fill='{}'/>", plot.x(vx), plot.y(vy), color);
  }
  return fmt::format("<polyline class='series' points='{}' fill='none' stroke='{}' stroke-width='1.8'/>", line,
                     color) +
         dots;
}

}  // namespace scalpel::report
