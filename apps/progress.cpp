#include "apps/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ostream>

#include <fmt/format.h>

namespace scalpel::cli {

bool stdout_is_terminal() { return isatty(STDOUT_FILENO) == 1; }

int terminal_columns() {
  winsize size{};
  return ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 ? size.ws_col : 0;
}

std::string render_bar(int64_t done, int64_t total, int width) {
  width = std::max(width, 1);
  if (total <= 0) return "[" + std::string(static_cast<size_t>(width), ' ') + "]";
  done = std::clamp<int64_t>(done, 0, total);
  const int64_t filled = done * width / total;
  std::string cells(static_cast<size_t>(filled), '=');
  // The head '>' takes the cell after the filled part while the loop runs.
  if (done < total) cells += '>';
  cells.resize(static_cast<size_t>(width), ' ');
  return "[" + cells + "]";
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const int64_t s = std::llround(seconds);
  if (s < 3600) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

std::string progress_line(const std::string& label, int64_t done, int64_t total, const std::string& metrics,
                          double items_per_s, double elapsed_s, int bar_width) {
  std::string line = fmt::format("{} {} {}/{}", label, render_bar(done, total, bar_width), done, total);
  if (!metrics.empty()) line += " " + metrics;
  if (done > 0) {
    const double eta = elapsed_s / static_cast<double>(done) * static_cast<double>(std::max<int64_t>(total - done, 0));
    line += fmt::format(" {:.0f} img/s ETA {}", items_per_s, format_duration(eta));
  }
  return line;
}

ProgressBar::ProgressBar(std::ostream& out, bool interactive, std::string label, int64_t total,
                         std::chrono::milliseconds min_interval, int columns)
    : out_(out), interactive_(interactive), label_(std::move(label)), total_(total), min_interval_(min_interval),
      start_(std::chrono::steady_clock::now()), last_draw_(start_),
      // One column spare: writing the last column makes some terminals wrap.
      max_width_(static_cast<size_t>(std::max(columns - 1, 0))) {}

void ProgressBar::update(int64_t done, int64_t items, const std::string& metrics) {
  if (!interactive_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total_ && now - last_draw_ < min_interval_) return;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = progress_line(label_, done, total_, metrics,
                                   elapsed > 0 ? static_cast<double>(items) / elapsed : 0, elapsed);
  if (max_width_ > 0 && line.size() > max_width_) line.resize(max_width_);
  // Pad with spaces over a longer previous line (the metrics' width varies).
  out_ << '\r' << line << std::string(last_width_ > line.size() ? last_width_ - line.size() : 0, ' ') << std::flush;
  last_width_ = line.size();
  last_draw_ = now;
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!interactive_ || !drawn_) return;
  out_ << '\r' << std::string(last_width_, ' ') << '\r' << std::flush;
  drawn_ = false;
  last_width_ = 0;
}

}  // namespace scalpel::cli
