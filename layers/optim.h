#pragma once
// Optimizers matching torch.optim's update rules step for step (torch 1.13), gradient
// clipping, and serializable state for exact resume.
//
// Parameters are grouped; each group has its own learning rate and weight decay (a lower LR
// for a fine-tuned backbone, a higher one for a new head). step() reads each parameter's
// .grad (parameters without a gradient are skipped, as in PyTorch) and updates the values in
// place without recording autograd history.
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace scalpel::nn {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0;
  double initial_lr = -1;  // set by the optimizer to lr; schedules scale from it
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;

  virtual void step() = 0;
  void zero_grad();  // drops every parameter's .grad (PyTorch's set_to_none)
  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Sets each group's lr to initial_lr * factor (what the schedules call).
  void scale_lr(double factor);
  int64_t steps_taken() const { return steps_; }
  virtual std::string name() const = 0;
  // Momentum-like coefficient that one-cycle schedules cycle (SGD momentum, Adam beta1);
  // a no-op for optimizers without one.
  virtual void set_momentum(double) {}

  // Optimizer state (moment buffers, step counts) as named tensors "<index>.<buffer>", with
  // the parameter index counted across groups, plus "steps" and each group's lr.
  std::vector<NamedTensor> state_dict() const;
  // Restores state saved by state_dict() of the same optimizer over the same parameters;
  // Error naming the entry on a mismatch.
  void load_state_dict(const std::vector<NamedTensor>& state);

 protected:
  // Per-parameter state buffers, created on first use, keyed by name.
  Tensor& buffer(size_t param_index, const std::string& name, const Tensor& like, double init = 0);
  bool has_buffer(size_t param_index, const std::string& name) const;
  // Calls fn(group, param, param_index) for every parameter that has a gradient.
  template <typename Fn> void for_each_param_with_grad(Fn fn);
  int64_t steps_ = 0;

 private:
  std::vector<ParamGroup> groups_;
  // Per parameter; a deque so references from buffer() stay valid as buffers are added.
  std::vector<std::deque<std::pair<std::string, Tensor>>> buffers_;
};

struct SGDOptions {
  double momentum = 0, dampening = 0;
  bool nesterov = false;
};
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  void step() override;
  std::string name() const override { return "sgd"; }
  void set_momentum(double m) override { options_.momentum = m; }

 private:
  SGDOptions options_;
};

struct AdamOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool decoupled_weight_decay = false;  // true = AdamW (p *= 1 - lr * wd before the update)
};
class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  void step() override;
  std::string name() const override { return options_.decoupled_weight_decay ? "adamw" : "adam"; }
  void set_momentum(double m) override { options_.beta1 = m; }

 private:
  AdamOptions options_;
};

struct RMSpropOptions {
  double alpha = 0.99, eps = 1e-8, momentum = 0;
  bool centered = false;
  // TF/Keras form: eps inside the square root and lr inside the momentum buffer;
  // the mean square starts at ms_init (0 in Keras, 1 in TF1 / the EfficientNet recipe).
  bool tf_style = false;
  double ms_init = 0;
};
class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options = {});
  void step() override;
  std::string name() const override { return options_.tf_style ? "rmsprop_tf" : "rmsprop"; }
  void set_momentum(double m) override { options_.momentum = m; }

 private:
  RMSpropOptions options_;
};

// One group with every trainable parameter (requires_grad) of `module`.
std::vector<ParamGroup> trainable_groups(const Module& module, double lr, double weight_decay = 0);

// Scales all gradients so that their total 2-norm is at most max_norm (torch's
// clip_grad_norm_, including its 1e-6 in the denominator). Returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// Clamps every gradient element to [-clip_value, clip_value].
void clip_grad_value(const std::vector<Tensor>& params, double clip_value);

}  // namespace scalpel::nn
