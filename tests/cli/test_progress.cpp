// The progress bar of apps/progress.h: rendering as a pure function of the counts, and the
// redraw policy (throttled on a terminal, silent elsewhere).
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>

#include "apps/progress.h"

namespace scalpel::cli {
namespace {

TEST(Progress, BarFillsWithTheCounts) {
  EXPECT_EQ(render_bar(0, 10, 10), "[>         ]");
  EXPECT_EQ(render_bar(5, 10, 10), "[=====>    ]");
  EXPECT_EQ(render_bar(9, 10, 10), "[=========>]");
  EXPECT_EQ(render_bar(10, 10, 10), "[==========]");
  EXPECT_EQ(render_bar(45, 120, 12), "[====>       ]");  // 45 / 120 of 12 cells = 4.5 -> 4
  EXPECT_EQ(render_bar(15, 10, 4), "[====]");           // clamped to total
  EXPECT_EQ(render_bar(3, 0, 4), "[    ]");             // unknown total
}

TEST(Progress, Durations) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(14.4), "0:14");
  EXPECT_EQ(format_duration(75), "1:15");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(-1), "--:--");
}

TEST(Progress, LineHasCountsMetricsRateAndEta) {
  // 45 of 120 steps in 9 s: 0.2 s per step, 75 steps left -> 15 s.
  EXPECT_EQ(progress_line("epoch 3/10", 45, 120, "loss 0.412 acc 0.81", 312.4, 9.0, 12),
            "epoch 3/10 [====>       ] 45/120 loss 0.412 acc 0.81 312 img/s ETA 0:15");
  // Nothing done yet: no rate and no ETA to extrapolate.
  EXPECT_EQ(progress_line("eval", 0, 8, "", 0, 0.5, 4), "eval [>   ] 0/8");
}

TEST(Progress, SilentWhenNotATerminal) {
  std::ostringstream out;
  ProgressBar bar(out, false, "epoch 1/1", 3);
  for (int64_t i = 1; i <= 3; ++i) bar.update(i, 8 * i, "loss 1.000");
  bar.finish();
  EXPECT_EQ(out.str(), "");
}

TEST(Progress, TerminalRedrawsInPlaceThrottledAndWipesAtTheEnd) {
  std::ostringstream out;
  {
    // An hour between redraws: only the first and the last step draw.
    ProgressBar bar(out, true, "epoch 1/1", 3, std::chrono::hours(1), 0);
    for (int64_t i = 1; i <= 3; ++i) bar.update(i, 8 * i, "loss 1.000");
    bar.finish();
  }
  const std::string s = out.str();
  EXPECT_EQ(std::count(s.begin(), s.end(), '\r'), 4) << s;  // two draws, the wipe's two
  EXPECT_NE(s.find("\repoch 1/1 [========>               ] 1/3 loss 1.000"), std::string::npos) << s;
  EXPECT_EQ(s.find("2/3"), std::string::npos) << s;
  EXPECT_NE(s.find("3/3 loss 1.000"), std::string::npos) << s;
  EXPECT_EQ(s.find('\n'), std::string::npos) << s;
  EXPECT_TRUE(s.ends_with("\r")) << s;

  std::ostringstream every;
  ProgressBar unthrottled(every, true, "eval", 3, std::chrono::milliseconds(0), 0);
  for (int64_t i = 1; i <= 3; ++i) unthrottled.update(i, i, "");
  const std::string e = every.str();
  EXPECT_EQ(std::count(e.begin(), e.end(), '\r'), 3) << e;
}

TEST(Progress, LinesAreCutToTheTerminalWidth) {
  std::ostringstream out;
  ProgressBar bar(out, true, "epoch 1/1", 4, std::chrono::milliseconds(0), 20);
  bar.update(1, 8, "loss 1.000 acc 0.50");
  EXPECT_EQ(out.str(), "\repoch 1/1 [======> ");  // 19 characters: a 20-column line would wrap
}

}  // namespace
}  // namespace scalpel::cli
