#include "layers/schedule.h"

#include <cmath>
#include <limits>
#include <numbers>

#include "layers/optim.h"

namespace scalpel::nn {

void Schedule::apply(Optimizer& optimizer, int64_t step) const {
  optimizer.scale_lr(factor(step));
  if (auto m = momentum(step)) optimizer.set_momentum(*m);
}

double StepSchedule::factor(int64_t step) const { return std::pow(gamma_, static_cast<double>(step / step_size_)); }
std::string StepSchedule::describe() const { return fmt::format("step (every {} steps x{})", step_size_, gamma_); }

double MultiStepSchedule::factor(int64_t step) const {
  int passed = 0;
  for (int64_t m : milestones_) passed += step >= m;
  return std::pow(gamma_, passed);
}
std::string MultiStepSchedule::describe() const {
  return fmt::format("multistep (at {} x{})", fmt::join(milestones_, ","), gamma_);
}

double ExponentialSchedule::factor(int64_t step) const { return std::pow(gamma_, static_cast<double>(step)); }
std::string ExponentialSchedule::describe() const { return fmt::format("exponential (x{} per step)", gamma_); }

double WarmupCosineSchedule::factor(int64_t t) const {
  if (t < warmup_) return static_cast<double>(t + 1) / static_cast<double>(warmup_);
  const double span = static_cast<double>(std::max<int64_t>(total_ - warmup_, 1));
  const double progress = std::min(1.0, static_cast<double>(t - warmup_) / span);
  return min_factor_ + (1 - min_factor_) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
}
std::string WarmupCosineSchedule::describe() const {
  return fmt::format("cosine (warmup {} of {} steps, floor x{})", warmup_, total_, min_factor_);
}

double OneCycleSchedule::anneal(double start, double end, double pct) const {
  if (o_.cos_anneal) return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1);
  return (end - start) * pct + start;
}

// Phase boundaries exactly as torch: two phases end at pct*T - 1 and T - 1; three phases at
// pct*T - 1, 2 pct*T - 2 and T - 1. pick(phase) returns that phase's (start, end) values.
template <typename Pick>
double OneCycleSchedule::along_phases(int64_t step, Pick pick) const {
  const double T = static_cast<double>(o_.total_steps);
  std::vector<double> ends = o_.three_phase ? std::vector<double>{o_.pct_start * T - 1, 2 * o_.pct_start * T - 2, T - 1}
                                            : std::vector<double>{o_.pct_start * T - 1, T - 1};
  double start_step = 0;
  for (size_t i = 0; i < ends.size(); ++i) {
    if (static_cast<double>(step) <= ends[i] || i + 1 == ends.size()) {
      auto [a, b] = pick(i);
      return anneal(a, b, (static_cast<double>(step) - start_step) / (ends[i] - start_step));
    }
    start_step = ends[i];
  }
  return 0;  // unreachable: the last phase always matches
}

double OneCycleSchedule::factor(int64_t step) const {
  const double initial = 1.0 / o_.div_factor, min = initial / o_.final_div_factor;
  return along_phases(step, [&](size_t phase) -> std::pair<double, double> {
    if (phase == 0) return {initial, 1.0};
    if (o_.three_phase && phase == 1) return {1.0, initial};
    return {o_.three_phase ? initial : 1.0, min};
  });
}

std::optional<double> OneCycleSchedule::momentum(int64_t step) const {
  if (!o_.cycle_momentum) return std::nullopt;
  return along_phases(step, [&](size_t phase) -> std::pair<double, double> {
    if (phase == 0) return {o_.max_momentum, o_.base_momentum};
    if (phase == 1) return {o_.base_momentum, o_.max_momentum};
    return {o_.max_momentum, o_.max_momentum};
  });
}

std::string OneCycleSchedule::describe() const {
  return fmt::format("one-cycle ({} steps, peak at {:.0f}%)", o_.total_steps, o_.pct_start * 100);
}

ReduceOnPlateau::ReduceOnPlateau(PlateauOptions options)
    : o_(options), best_(options.maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity()) {}

bool ReduceOnPlateau::observe(double metric) {
  bool better;
  if (o_.maximize) better = o_.relative_threshold ? metric > best_ * (1 + o_.threshold) : metric > best_ + o_.threshold;
  else better = o_.relative_threshold ? metric < best_ * (1 - o_.threshold) : metric < best_ - o_.threshold;
  if (better) {
    best_ = metric;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_epochs_ = 0;
  }
  if (bad_epochs_ > o_.patience) {
    const double reduced = std::max(current_ * o_.factor, o_.min_factor);
    bad_epochs_ = 0;
    cooldown_left_ = o_.cooldown;
    if (current_ - reduced > o_.eps) {
      current_ = reduced;
      return true;
    }
  }
  return false;
}

std::string ReduceOnPlateau::describe() const {
  return fmt::format("reduce on plateau (x{} after {} bad epochs)", o_.factor, o_.patience);
}

static std::vector<std::string> split_spec(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

std::unique_ptr<Schedule> parse_schedule(const std::string& spec, int64_t total_steps) {
  auto parts = split_spec(spec, ':');
  const std::string& kind = parts[0];
  auto number = [&](size_t i, double fallback) {
    if (i >= parts.size() || parts[i].empty()) return fallback;
    try {
      size_t used = 0;
      double v = std::stod(parts[i], &used);
      if (used == parts[i].size()) return v;
    } catch (const std::exception&) {
    }
    fail("schedule '{}': '{}' is not a number", spec, parts[i]);
  };
  if (kind == "constant" || kind == "none") return std::make_unique<ConstantSchedule>();
  if (kind == "step") return std::make_unique<StepSchedule>(static_cast<int64_t>(number(1, 30)), number(2, 0.1));
  if (kind == "multistep") {
    SCALPEL_CHECK(parts.size() >= 2, "schedule '{}': give milestones, e.g. multistep:30,60:0.1", spec);
    std::vector<int64_t> milestones;
    for (const std::string& m : split_spec(parts[1], ',')) {
      parts.push_back(m);
      milestones.push_back(static_cast<int64_t>(number(parts.size() - 1, 0)));
    }
    return std::make_unique<MultiStepSchedule>(milestones, number(2, 0.1));
  }
  if (kind == "exponential") return std::make_unique<ExponentialSchedule>(number(1, 0.95));
  if (kind == "cosine") return std::make_unique<WarmupCosineSchedule>(static_cast<int64_t>(number(1, 0)), total_steps, number(2, 0));
  if (kind == "onecycle") {
    OneCycleOptions o;
    o.total_steps = total_steps;
    o.pct_start = number(1, 0.3);
    return std::make_unique<OneCycleSchedule>(o);
  }
  if (kind == "plateau") {
    PlateauOptions o;
    o.factor = number(1, 0.1);
    o.patience = static_cast<int64_t>(number(2, 3));
    return std::make_unique<ReduceOnPlateau>(o);
  }
  fail("unknown schedule '{}' (constant, step, multistep, exponential, cosine, onecycle, plateau)", spec);
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | step, multistep, exponential, warmup-cosine, one-cycle, reduce-on-plateau | `layers/schedule.cpp` | | (host only) | |
