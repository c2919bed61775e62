#pragma once
// A one-line progress bar for loops over batches (training epochs, evaluation):
//
//   epoch 3/10 [=======>    ] 45/120 loss 0.412 acc 0.81 312 img/s ETA 0:14
//
// On a terminal the line is redrawn in place with '\r', at most every `min_interval`
// (10 redraws/s by default), and wiped by finish() so that the caller's summary line takes
// its place. Elsewhere (a pipe, a log file, a CI job) it prints nothing at all: callers keep
// printing their own plain line per epoch, so logs stay one line per epoch.
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace scalpel::cli {

// True when standard output is a terminal (isatty).
bool stdout_is_terminal();
// Columns of the terminal on standard output; 0 when unknown (not a terminal).
int terminal_columns();

// "[=======>    ]": `width` cells between the brackets, done/total of them filled with '='
// and the head '>' (no '>' when complete). total <= 0 renders an empty bar; done is clamped
// to [0, total].
std::string render_bar(int64_t done, int64_t total, int width);

// "m:ss" below an hour, "h:mm:ss" from there; negative or non-finite seconds give "--:--".
std::string format_duration(double seconds);

// The whole line: "<label> <bar> <done>/<total> <metrics> <rate> img/s ETA <eta>", where the
// rate is items/s and the ETA extrapolates the remaining steps at the average time per step
// so far (omitted until a step is done). `metrics` may be empty.
std::string progress_line(const std::string& label, int64_t done, int64_t total, const std::string& metrics,
                          double items_per_s, double elapsed_s, int bar_width = 24);

class ProgressBar {
 public:
  // `interactive` false (not a terminal) makes every call a no-op. Lines are cut to
  // `columns` - 1 characters (0 = no limit): a wrapped line could not be redrawn with '\r'.
  ProgressBar(std::ostream& out, bool interactive, std::string label, int64_t total,
              std::chrono::milliseconds min_interval = std::chrono::milliseconds(100),
              int columns = terminal_columns());
  ~ProgressBar() { finish(); }  // so that an error message starts on a clean line
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  // Step `done` of total finished, `items` processed so far (images): redraws when at least
  // min_interval passed since the last redraw, and always for the first and the last step.
  void update(int64_t done, int64_t items, const std::string& metrics);
  // Wipes the bar's line (terminal only); the next output starts at column 0.
  void finish();

 private:
  std::ostream& out_;
  bool interactive_;
  std::string label_;
  int64_t total_;
  std::chrono::milliseconds min_interval_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  size_t max_width_;  // 0 = no limit
  bool drawn_ = false;
  size_t last_width_ = 0;  // characters of the last drawn line, to wipe it
};

}  // namespace scalpel::cli
