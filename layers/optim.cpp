// Update rules follow torch/optim/{sgd,adam,adamw,rmsprop}.py (torch 1.13, single-tensor path)
// line for line; each loop below names the formula it computes. Parameters on a device
// step through its fused kernels (tensor/backend.h; same formulas, float32).
#include "layers/optim.h"

#include <cmath>

#include "tensor/backend.h"
#include "tensor/parallel.h"

namespace scalpel::nn {

// Elements per thread chunk of an optimizer step: small parameters stay on one thread.
constexpr int64_t kStepGrain = int64_t{1} << 15;

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  size_t count = 0;
  for (ParamGroup& g : groups_) {
    if (g.initial_lr < 0) g.initial_lr = g.lr;
    for (const Tensor& p : g.params) {
      SCALPEL_CHECK(p.defined() && is_floating(p.dtype()) && p.is_contiguous(),
                    "optimizer: parameter {} must be a contiguous float tensor", p.str());
      ++count;
    }
  }
  buffers_.resize(count);
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.set_grad(Tensor());
}

void Optimizer::scale_lr(double factor) {
  for (ParamGroup& g : groups_) g.lr = g.initial_lr * factor;
}

Tensor& Optimizer::buffer(size_t index, const std::string& name, const Tensor& like, double init) {
  for (auto& [n, t] : buffers_[index])
    if (n == name) return t;
  buffers_[index].emplace_back(name, Tensor::full(like.shape(), init, like.dtype(), like.device()));
  return buffers_[index].back().second;
}

bool Optimizer::has_buffer(size_t index, const std::string& name) const {
  for (const auto& [n, t] : buffers_[index])
    if (n == name) return true;
  return false;
}

template <typename Fn>
void Optimizer::for_each_param_with_grad(Fn fn) {
  size_t index = 0;
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) {
      Tensor grad = p.grad();
      if (grad.defined()) {
        SCALPEL_CHECK(grad.shape() == p.shape(), "optimizer: gradient {} does not match parameter {}", grad.str(), p.str());
        fn(g, p, grad.contiguous(), index);
      }
      ++index;
    }
}

std::vector<NamedTensor> Optimizer::state_dict() const {
  std::vector<NamedTensor> out;
  out.push_back({"steps", Tensor::scalar(static_cast<double>(steps_), DType::I64)});
  for (size_t g = 0; g < groups_.size(); ++g)
    out.push_back({fmt::format("group{}.lr", g), Tensor::scalar(groups_[g].lr, DType::F64)});
  for (size_t i = 0; i < buffers_.size(); ++i)
    for (const auto& [name, t] : buffers_[i]) out.push_back({fmt::format("{}.{}", i, name), t.clone()});
  return out;
}

void Optimizer::load_state_dict(const std::vector<NamedTensor>& state) {
  for (auto& b : buffers_) b.clear();
  for (const NamedTensor& entry : state) {
    const std::string& name = entry.name;
    if (name == "steps") {
      steps_ = static_cast<int64_t>(entry.tensor.item());
      continue;
    }
    if (name.starts_with("group")) {
      size_t g = std::stoul(name.substr(5));
      SCALPEL_CHECK(g < groups_.size(), "optimizer state: entry {} names a group this optimizer lacks", name);
      groups_[g].lr = entry.tensor.item();
      continue;
    }
    size_t dot = name.find('.');
    SCALPEL_CHECK(dot != std::string::npos && dot > 0 && name.find_first_not_of("0123456789") == dot,
                  "optimizer state: unexpected entry '{}'", name);
    size_t index = std::stoul(name.substr(0, dot));
    SCALPEL_CHECK(index < buffers_.size(), "optimizer state: entry {} names parameter {} of {}", name, index, buffers_.size());
    buffers_[index].emplace_back(name.substr(dot + 1), entry.tensor.clone());
  }
}

// ---------------------------------------------------------------- SGD

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options) : Optimizer(std::move(groups)), options_(options) {}

void SGD::step() {
  NoGradGuard no_grad;
  ++steps_;
  for_each_param_with_grad([&](ParamGroup& g, Tensor& p, const Tensor& grad, size_t index) {
    const bool first = !has_buffer(index, "momentum_buffer");
    Tensor* buf = options_.momentum != 0 ? &buffer(index, "momentum_buffer", p) : nullptr;
    if (!p.device().is_cpu()) {
      backend::run<backend::Op::sgd_step>(p.device(), p, grad, buf ? *buf : Tensor(), g.lr, options_.momentum,
                                          options_.dampening, g.weight_decay, options_.nesterov, first);
      return;
    }
    dispatch_floating(p.dtype(), [&](auto tag) {
      using T = decltype(tag);
      T* w = p.data<T>();
      const T* gr = grad.data<T>();
      T* b = buf ? buf->data<T>() : nullptr;
      const double lr = g.lr, wd = g.weight_decay, mom = options_.momentum, damp = options_.dampening;
      const bool nesterov = options_.nesterov;
      // Elementwise, so threads give the same bits; the flags are loop-invariant locals the
      // compiler can hoist.
      parallel_for(p.numel(), kStepGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          double d = gr[i] + wd * w[i];  // d_p = g + wd * p
          if (b) {
            b[i] = first ? T(d) : T(mom * b[i] + (1 - damp) * d);  // buf = m buf + (1 - dampening) d_p
            d = nesterov ? d + mom * b[i] : b[i];
          }
          w[i] = T(w[i] - lr * d);  // p -= lr d_p
        }
      });
    });
  });
}

// ---------------------------------------------------------------- Adam / AdamW

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options) : Optimizer(std::move(groups)), options_(options) {}

void Adam::step() {
  NoGradGuard no_grad;
  ++steps_;
  for_each_param_with_grad([&](ParamGroup& g, Tensor& p, const Tensor& grad, size_t index) {
    Tensor& m = buffer(index, "exp_avg", p);
    Tensor& v = buffer(index, "exp_avg_sq", p);
    Tensor& count = buffer(index, "step", Tensor::scalar(0, DType::F64));
    const double t = count.item() + 1;
    count.fill_(t);
    if (!p.device().is_cpu()) {
      backend::run<backend::Op::adam_step>(p.device(), p, grad, m, v, g.lr, options_.beta1, options_.beta2,
                                           options_.eps, g.weight_decay, options_.decoupled_weight_decay,
                                           static_cast<int64_t>(t));
      return;
    }
    dispatch_floating(p.dtype(), [&](auto tag) {
      using T = decltype(tag);
      T* w = p.data<T>();
      const T* gr = grad.data<T>();
      T* mp = m.data<T>();
      T* vp = v.data<T>();
      const double lr = g.lr, wd = g.weight_decay, b1 = options_.beta1, b2 = options_.beta2;
      const double bias1 = 1 - std::pow(b1, t), bias2_sqrt = std::sqrt(1 - std::pow(b2, t));
      const double eps = options_.eps;
      const bool decoupled = options_.decoupled_weight_decay;
      parallel_for(p.numel(), kStepGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          double gi = gr[i];
          if (decoupled) w[i] = T(w[i] * (1 - lr * wd));  // AdamW: p *= 1 - lr wd
          else gi += wd * w[i];                           // Adam: L2 in the gradient
          mp[i] = T(b1 * mp[i] + (1 - b1) * gi);
          vp[i] = T(b2 * vp[i] + (1 - b2) * gi * gi);
          const double denom = std::sqrt(double(vp[i])) / bias2_sqrt + eps;
          w[i] = T(w[i] - (lr / bias1) * mp[i] / denom);
        }
      });
    });
  });
}

// ---------------------------------------------------------------- RMSprop

RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options)
    : Optimizer(std::move(groups)), options_(options) {}

void RMSprop::step() {
  NoGradGuard no_grad;
  ++steps_;
  for_each_param_with_grad([&](ParamGroup& g, Tensor& p, const Tensor& grad, size_t index) {
    Tensor& sq = buffer(index, "square_avg", p, options_.tf_style ? options_.ms_init : 0.0);
    Tensor* mom_buf = options_.momentum > 0 ? &buffer(index, "momentum_buffer", p) : nullptr;
    Tensor* grad_avg = options_.centered ? &buffer(index, "grad_avg", p) : nullptr;
    if (!p.device().is_cpu()) {
      if (options_.centered || options_.tf_style)
        backend::not_implemented(name() + (options_.centered ? " (centered)" : ""), p.device());
      backend::run<backend::Op::rmsprop_step>(p.device(), p, grad, sq, mom_buf ? *mom_buf : Tensor(), g.lr,
                                              options_.alpha, options_.eps, g.weight_decay, options_.momentum);
      return;
    }
    dispatch_floating(p.dtype(), [&](auto tag) {
      using T = decltype(tag);
      T* w = p.data<T>();
      const T* gr = grad.data<T>();
      T* s = sq.data<T>();
      T* b = mom_buf ? mom_buf->data<T>() : nullptr;
      T* ga = grad_avg ? grad_avg->data<T>() : nullptr;
      const double lr = g.lr, wd = g.weight_decay, a = options_.alpha, eps = options_.eps, mom = options_.momentum;
      const int64_t n = p.numel();
      for (int64_t i = 0; i < n; ++i) {
        const double gi = gr[i] + wd * w[i];
        s[i] = T(a * s[i] + (1 - a) * gi * gi);
        if (options_.tf_style) {
          // mom = m mom + lr g / sqrt(ms + eps); p -= mom
          const double update = lr * gi / std::sqrt(double(s[i]) + eps);
          if (b) {
            b[i] = T(mom * b[i] + update);
            w[i] = T(w[i] - b[i]);
          } else {
            w[i] = T(w[i] - update);
          }
          continue;
        }
        double avg;
        if (ga) {
          ga[i] = T(a * ga[i] + (1 - a) * gi);
          avg = std::sqrt(double(s[i]) - double(ga[i]) * ga[i]) + eps;  // centered: sqrt(E[g^2] - E[g]^2) + eps
        } else {
          avg = std::sqrt(double(s[i])) + eps;
        }
        if (b) {
          b[i] = T(mom * b[i] + gi / avg);
          w[i] = T(w[i] - lr * b[i]);
        } else {
          w[i] = T(w[i] - lr * gi / avg);
        }
      }
    });
  });
}

// ---------------------------------------------------------------- helpers

std::vector<ParamGroup> trainable_groups(const Module& module, double lr, double weight_decay) {
  ParamGroup g;
  g.lr = lr;
  g.weight_decay = weight_decay;
  for (const NamedTensor& p : module.named_parameters())
    if (p.tensor.requires_grad()) g.params.push_back(p.tensor);
  return {g};
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  double total = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    for (double v : g.to_vector()) total += v * v;
  }
  total = std::sqrt(total);
  const double coef = std::min(1.0, max_norm / (total + 1e-6));
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) const_cast<Tensor&>(p).set_grad(ops::mul_scalar(g, coef));
  }
  return total;
}

void clip_grad_value(const std::vector<Tensor>& params, double clip_value) {
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) const_cast<Tensor&>(p).set_grad(ops::clamp(g, -clip_value, clip_value));
  }
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | SGD, Adam, AdamW, RMSprop (+TF form), clipping | `layers/optim.cpp` | | `optimizer.cu` | |
