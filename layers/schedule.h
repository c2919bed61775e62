#pragma once
// Learning-rate schedules. Each gives the learning rate of 0-based optimizer step t as a
// factor of the group's initial lr (so per-group lrs keep their ratios), matching
// torch.optim.lr_scheduler stepped once per optimizer step. ReduceOnPlateau depends on
// the metric history and is fed with observe().
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace scalpel::nn {

class Optimizer;

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual double factor(int64_t step) const = 0;
  // Momentum for step t (one-cycle cycles it); nullopt = leave the optimizer's.
  virtual std::optional<double> momentum(int64_t) const { return std::nullopt; }
  // Sets the optimizer's lr (and momentum) for step t.
  void apply(Optimizer& optimizer, int64_t step) const;
  virtual std::string describe() const = 0;
};

class ConstantSchedule : public Schedule {
 public:
  double factor(int64_t) const override { return 1.0; }
  std::string describe() const override { return "constant"; }
};

class StepSchedule : public Schedule {  // torch StepLR
 public:
  StepSchedule(int64_t step_size, double gamma) : step_size_(step_size), gamma_(gamma) {}
  double factor(int64_t step) const override;
  std::string describe() const override;

 private:
  int64_t step_size_;
  double gamma_;
};

class MultiStepSchedule : public Schedule {  // torch MultiStepLR
 public:
  MultiStepSchedule(std::vector<int64_t> milestones, double gamma) : milestones_(std::move(milestones)), gamma_(gamma) {}
  double factor(int64_t step) const override;
  std::string describe() const override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

class ExponentialSchedule : public Schedule {  // torch ExponentialLR
 public:
  explicit ExponentialSchedule(double gamma) : gamma_(gamma) {}
  double factor(int64_t step) const override;
  std::string describe() const override;

 private:
  double gamma_;
};

// Linear warmup over warmup_steps (lr = base (t+1)/W), then cosine from base to min down to
// total_steps. With warmup 0 it equals torch's CosineAnnealingLR(T_max = total, eta_min).
class WarmupCosineSchedule : public Schedule {
 public:
  WarmupCosineSchedule(int64_t warmup_steps, int64_t total_steps, double min_factor)
      : warmup_(warmup_steps), total_(total_steps), min_factor_(min_factor) {}
  double factor(int64_t step) const override;
  std::string describe() const override;

 private:
  int64_t warmup_, total_;
  double min_factor_;
};

// torch OneCycleLR: factors are relative to max_lr (the optimizer's initial lr is max_lr).
struct OneCycleOptions {
  int64_t total_steps = 100;
  double pct_start = 0.3;
  bool cos_anneal = true;  // false = linear
  double div_factor = 25, final_div_factor = 1e4;
  bool three_phase = false;
  bool cycle_momentum = true;
  double base_momentum = 0.85, max_momentum = 0.95;
};
class OneCycleSchedule : public Schedule {
 public:
  explicit OneCycleSchedule(OneCycleOptions options) : o_(options) {}
  double factor(int64_t step) const override;
  std::optional<double> momentum(int64_t step) const override;
  std::string describe() const override;

 private:
  // Interpolates along the phase holding `step`: returns (start, end, pct) in index form.
  double anneal(double start, double end, double pct) const;
  template <typename Pick> double along_phases(int64_t step, Pick pick) const;
  OneCycleOptions o_;
};

// torch ReduceLROnPlateau: feed the validation metric after each epoch with observe();
// factor() is then the current multiplier (steps are ignored).
struct PlateauOptions {
  bool maximize = false;  // mode "max"
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;
  bool relative_threshold = true;  // threshold_mode "rel" (else "abs")
  int64_t cooldown = 0;
  double min_factor = 0;  // min_lr / initial lr
  double eps = 1e-8;      // in lr units relative to the initial lr
};
class ReduceOnPlateau : public Schedule {
 public:
  explicit ReduceOnPlateau(PlateauOptions options);
  double factor(int64_t) const override { return current_; }
  // Returns true when the lr was reduced by this observation.
  bool observe(double metric);
  std::string describe() const override;

 private:
  PlateauOptions o_;
  double best_;
  int64_t bad_epochs_ = 0, cooldown_left_ = 0;
  double current_ = 1.0;
};

// Parses a schedule spec for the CLI: "constant", "step:<size>:<gamma>",
// "multistep:<m1>,<m2>:<gamma>", "exponential:<gamma>", "cosine[:<warmup>[:<min_factor>]]",
// "onecycle[:<pct_start>]", "plateau[:<factor>:<patience>]". total_steps comes from the run.
std::unique_ptr<Schedule> parse_schedule(const std::string& spec, int64_t total_steps);

}  // namespace scalpel::nn
