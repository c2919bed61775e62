// Batch normalization: reference per-channel loops and the autograd wrapper batch_norm().
#include "layers/ops/batch_norm.h"

#include <array>
#include <cmath>

#include "tensor/backend.h"
#include "layers/communicator.h"
#include "layers/functional.h"
#include "layers/ops/activations.h"
#include "layers/ops/batch_tree.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"

namespace scalpel::ops {
namespace {

// x viewed as [N, C, S]: channel c of sample n is the S contiguous elements at
// n * sample_stride + c * S. sample_stride is C * S for a contiguous x, more for a channel
// slice of a wider tensor (DenseNet's feature buffer, nn::ChannelBuffer), which the kernels
// read in place instead of copying.
struct ChannelLayout {
  int64_t n, c, s, sample_stride;
  explicit ChannelLayout(const Tensor& x)
      : n(x.size(0)), c(x.size(1)), s(x.numel() / std::max<int64_t>(x.size(0) * x.size(1), 1)),
        sample_stride(x.dim() > 0 && x.size(0) > 1 ? x.strides()[0] : c * s) {}
  int64_t per_channel() const { return n * s; }
  // Channels per thread chunk: small tensors stay serial (a parallel region costs more).
  int64_t channel_grain() const { return std::max<int64_t>(1, 16384 / std::max<int64_t>(per_channel(), 1)); }
  int64_t at(int64_t sample, int64_t channel) const { return sample * sample_stride + channel * s; }
};

// x itself when every sample's [C, S] block is contiguous (a contiguous tensor, or a channel
// slice of one), else a contiguous copy.
Tensor sample_blocks(const Tensor& x) {
  if (x.is_contiguous()) return x;
  int64_t expected = 1;
  for (int64_t d = x.dim() - 1; d >= 1; --d) {
    if (x.size(d) != 1 && x.strides()[d] != expected) return x.contiguous();
    expected *= x.size(d);
  }
  return x;
}

// Pointer to a per-channel tensor's data, or nullptr when undefined (made contiguous in `keep`).
template <typename T> const T* channel_data(const Tensor& t, Tensor& keep) {
  if (!t.defined()) return nullptr;
  keep = t.contiguous();
  return keep.data<T>();
}

// The per-channel sums of batch norm's backward, over sample n's plane or added over samples.
struct BatchNormGradSums {
  double g = 0, g_xhat = 0;  // sum gy, sum gy * xhat
  BatchNormGradSums operator+(const BatchNormGradSums& o) const { return {g + o.g, g_xhat + o.g_xhat}; }
};

// Channel c's sums, per sample over its plane, added over the samples as layers/ops/batch_tree.h's
// tree. L: x's layout, G: gy's.
template <typename T>
BatchNormGradSums batch_norm_grad_sums(const ChannelLayout& L, const ChannelLayout& G, const T* px, const T* pg,
                                       T mean, T invstd, int64_t c) {
  const double m = mean;
  return batch_tree_sum<BatchNormGradSums>(0, L.n, [&](int64_t n) {
    const T* g = pg + G.at(n, c);
    const T* x = px + L.at(n, c);
    const std::array<double, 2> sums = plane_sums<2>(L.s, [&](int64_t i) {
      const double gi = g[i];
      return std::array<double, 2>{gi, gi * (static_cast<double>(x[i]) - m)};
    });
    return BatchNormGradSums{sums[0], sums[1] * static_cast<double>(invstd)};
  });
}

}  // namespace

BatchNormStats batch_norm_stats(const Tensor& x_in) {
  require_cpu("batch_norm", x_in);
  const Tensor x = sample_blocks(x_in);
  const ChannelLayout L(x);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    BatchNormStats stats{Tensor::empty({L.c}, x.dtype()), Tensor::empty({L.c}, x.dtype())};
    const T* px = x.data<T>();
    T* mean = stats.mean.data<T>();
    T* var = stats.var.data<T>();
    parallel_for(L.c, L.channel_grain(), [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        // In double (M can be millions of float32 values): per sample a plane's sum, added over
        // the samples as layers/ops/batch_tree.h's tree (as sync_batch_norm adds the ranks').
        const double sum = batch_tree_sum<double>(0, L.n, [&](int64_t n) {
          const T* x = px + L.at(n, c);
          return plane_sums<1>(L.s, [&](int64_t i) { return std::array<double, 1>{static_cast<double>(x[i])}; })[0];
        });
        const double m = sum / static_cast<double>(L.per_channel());
        const double sq = batch_tree_sum<double>(0, L.n, [&](int64_t n) {
          const T* x = px + L.at(n, c);
          return plane_sums<1>(L.s, [&](int64_t i) {
            const double d = static_cast<double>(x[i]) - m;
            return std::array<double, 1>{d * d};
          })[0];
        });
        mean[c] = static_cast<T>(m);
        var[c] = static_cast<T>(sq / static_cast<double>(L.per_channel()));
      }
    });
    return stats;
  });
}

Tensor batch_norm_forward(const Tensor& x_in, const Tensor& mean_in, const Tensor& invstd_in, const Tensor& weight_in,
                          const Tensor& bias_in, EpilogueActivation activation) {
  require_cpu("batch_norm", x_in);
  const Tensor x = sample_blocks(x_in);
  const ChannelLayout L(x);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor keep[4];
    const T* mean = channel_data<T>(mean_in, keep[0]);
    const T* invstd = channel_data<T>(invstd_in, keep[1]);
    const T* weight = channel_data<T>(weight_in, keep[2]);
    const T* bias = channel_data<T>(bias_in, keep[3]);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    GemmEpilogue<T> epilogue;
    epilogue.activation = activation;
    // One (sample, channel) plane per work item. (x - mean) first: folding the mean into a
    // shift (x * scale + shift) cancels catastrophically when |mean| >> std in float32.
    parallel_for(L.n * L.c, std::max<int64_t>(1, 4096 / std::max<int64_t>(L.s, 1)), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t c = p % L.c;
        const T scale = invstd[c] * (weight ? weight[c] : T(1));
        const T shift = bias ? bias[c] : T(0);
        const T m = mean[c];  // a local: ys might alias mean as far as the compiler knows
        const T* xs = px + L.at(p / L.c, c);
        T* ys = py + p * L.s;
        if (activation == EpilogueActivation::relu) {  // in the same loop: apply_epilogue's relu, a blend
          for (int64_t i = 0; i < L.s; ++i) {
            const T v = (xs[i] - m) * scale + shift;
            ys[i] = v > T(0) ? v : T(0);
          }
          continue;
        }
        for (int64_t i = 0; i < L.s; ++i) ys[i] = (xs[i] - m) * scale + shift;
        if (activation != EpilogueActivation::none) apply_epilogue(epilogue, 0, 0, L.s, ys);
      }
    });
    return y;
  });
}

BatchNormGrads batch_norm_backward(const Tensor& gy_in, const Tensor& x_in, const Tensor& mean_in,
                                   const Tensor& invstd_in, const Tensor& weight_in, bool training) {
  require_cpu("batch_norm backward", x_in);
  SCALPEL_CHECK(gy_in.shape() == x_in.shape() && gy_in.dtype() == x_in.dtype(),
                "batch_norm backward: gradient {} does not match input {}", gy_in.str(), x_in.str());
  const Tensor x = sample_blocks(x_in);
  const Tensor gy = gy_in.contiguous();
  const ChannelLayout L(x), G(gy);  // G: the contiguous layout of gy and gx
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor keep[3];
    const T* mean = channel_data<T>(mean_in, keep[0]);
    const T* invstd = channel_data<T>(invstd_in, keep[1]);
    const T* weight = channel_data<T>(weight_in, keep[2]);
    BatchNormGrads g{Tensor::empty(x.shape(), x.dtype()), Tensor::empty({L.c}, x.dtype()),
                     Tensor::empty({L.c}, x.dtype())};
    const T* px = x.data<T>();
    const T* pg = gy.data<T>();
    T* gx = g.x.data<T>();
    T* gw = g.weight.data<T>();
    T* gb = g.bias.data<T>();
    const double M = static_cast<double>(L.per_channel());
    parallel_for(L.c, L.channel_grain(), [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const BatchNormGradSums sums = batch_norm_grad_sums(L, G, px, pg, mean[c], invstd[c], c);
        const double sum_g = sums.g, sum_g_xhat = sums.g_xhat;
        gb[c] = static_cast<T>(sum_g);
        gw[c] = static_cast<T>(sum_g_xhat);
        const double scale = static_cast<double>(invstd[c]) * (weight ? weight[c] : 1.0);
        // Per channel constants in locals (gx might alias them as far as the compiler knows):
        // gx = scale * (gy - sum_g / M - xhat * sum_g_xhat / M), xhat = (x - mean) * invstd.
        const double m = mean[c], mean_g = sum_g / M, xc_factor = static_cast<double>(invstd[c]) * sum_g_xhat / M;
        for (int64_t n = 0; n < L.n; ++n) {
          const T* g_in = pg + G.at(n, c);
          const T* x = px + L.at(n, c);
          T* g_out = gx + G.at(n, c);
          if (training) {
            for (int64_t i = 0; i < L.s; ++i)
              g_out[i] = static_cast<T>(scale * (g_in[i] - mean_g - (static_cast<double>(x[i]) - m) * xc_factor));
          } else {
            for (int64_t i = 0; i < L.s; ++i) g_out[i] = static_cast<T>(scale * g_in[i]);
          }
        }
      }
    });
    return g;
  });
}

}  // namespace scalpel::ops

namespace scalpel::nn {
namespace {

void check_channel_tensor(const std::string& name, const char* what, const Tensor& t, const Tensor& x) {
  if (!t.defined()) return;
  SCALPEL_CHECK(t.dim() == 1 && t.size(0) == x.size(1), "{}: {} has shape {} but the input {} has {} channels",
                name, what, shape_str(t.shape()), shape_str(x.shape()), x.size(1));
  SCALPEL_CHECK(t.dtype() == x.dtype(), "{}: {} is {} but the input is {}", name, what, dtype_name(t.dtype()),
                dtype_name(x.dtype()));
}

}  // namespace

// The device branch (tensor/backend.h): batch statistics (updating the running ones) when training, the
// running statistics otherwise; backward through the matching kernels.
static Tensor device_batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                                const Tensor& bias, bool training, double momentum, double eps) {
  const bool need_w = weight.defined() && weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  const Tensor w = weight.defined() ? weight.detach() : Tensor();
  if (training) {
    backend::BatchNormTrainOutput r = backend::run<backend::Op::batch_norm_train>(
        x.device(), x, weight, bias, running_mean, running_var, momentum, eps);
    return record("batch_norm", r.y, {x, weight, bias},
                  [x = x.detach(), w, mean = r.save_mean, invstd = r.save_invstd, need_w, need_b](const Tensor& gy) {
                    backend::BatchNormGrads g = backend::run<backend::Op::batch_norm_backward>(
                        gy.device(), gy, x, w, mean, invstd, need_w, need_b);
                    return std::vector<Tensor>{g.x, g.gamma, g.beta};
                  });
  }
  Tensor y = backend::run<backend::Op::batch_norm_eval>(x.device(), x, weight, bias, running_mean, running_var, eps);
  if (!any_requires_grad({x, weight, bias})) return y;
  // Copies: the buffers may be updated (a training step) before backward runs.
  return record("batch_norm", y, {x, weight, bias},
                [x = x.detach(), w, mean = running_mean.clone(), var = running_var.clone(), eps, need_w,
                 need_b](const Tensor& gy) {
                  backend::BatchNormGrads g = backend::run<backend::Op::batch_norm_eval_backward>(
                      gy.device(), gy, x, w, mean, var, eps, need_w, need_b);
                  return std::vector<Tensor>{g.x, g.gamma, g.beta};
                });
}

namespace {

// batch_norm, and with `relu` batch_norm_relu.
Tensor batch_norm_and(bool relu, const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                      const Tensor& bias, bool training, double momentum, double eps, const std::string& name) {
  SCALPEL_CHECK(x.defined() && x.dim() >= 2, "{}: expected an input [N, C, ...], got {}", name,
                x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  SCALPEL_CHECK(is_floating(x.dtype()), "{}: input must be float32 or float64, got {}", name, dtype_name(x.dtype()));
  SCALPEL_CHECK(eps > 0, "{}: eps must be positive, got {}", name, eps);
  check_channel_tensor(name, "running_mean", running_mean, x);
  check_channel_tensor(name, "running_var", running_var, x);
  check_channel_tensor(name, "weight", weight, x);
  check_channel_tensor(name, "bias", bias, x);
  SCALPEL_CHECK(running_mean.defined() == running_var.defined(), "{}: give both running_mean and running_var, or neither",
                name);

  const int64_t per_channel = x.numel() / std::max<int64_t>(x.size(1), 1);
  SCALPEL_CHECK(!training || per_channel > 1,
                "{}: expected more than 1 value per channel when training, got input {}", name, shape_str(x.shape()));
  SCALPEL_CHECK(training || running_mean.defined(), "{}: evaluation mode needs running statistics", name);
  // The device kernels read contiguous inputs only (the CPU ones take channel slices).
  if (!x.device().is_cpu()) {
    const Tensor y = device_batch_norm(contiguous(x), running_mean, running_var, weight, bias, training, momentum, eps);
    return relu ? nn::relu(y) : y;
  }
  if (Communicator* comm = sync_batch_norm_communicator(); comm && training) {
    const Tensor y =
        sync_batch_norm_train(contiguous(x), running_mean, running_var, weight, bias, momentum, eps, *comm);
    return relu ? nn::relu(y) : y;
  }
  Tensor mean, invstd;
  if (training) {
    ops::BatchNormStats stats = ops::batch_norm_stats(x);
    mean = stats.mean;
    invstd = ops::pow_scalar(ops::add_scalar(stats.var, eps), -0.5);
    if (running_mean.defined()) {
      // PyTorch: running = (1 - momentum) * running + momentum * batch, with the unbiased variance.
      const double unbias = static_cast<double>(per_channel) / static_cast<double>(per_channel - 1);
      running_mean.copy_(ops::add(ops::mul_scalar(running_mean, 1 - momentum), ops::mul_scalar(stats.mean, momentum)));
      running_var.copy_(
          ops::add(ops::mul_scalar(running_var, 1 - momentum), ops::mul_scalar(stats.var, momentum * unbias)));
    }
  } else {
    mean = running_mean.clone();  // a copy: the buffers may be updated before backward runs
    invstd = ops::pow_scalar(ops::add_scalar(running_var, eps), -0.5);
  }
  Tensor y = ops::batch_norm_forward(x, mean, invstd, weight, bias,
                                     relu ? EpilogueActivation::relu : EpilogueActivation::none);
  // With the ReLU, its output y (detached: no cycle through the closure) masks the gradient.
  return record(relu ? "batch_norm_relu" : "batch_norm", y, {x, weight, bias},
                [x = x.detach(), mean, invstd, weight = weight.defined() ? weight.detach() : Tensor(),
                 has_bias = bias.defined(), training, y_relu = relu ? y.detach() : Tensor()](const Tensor& gy) {
                  // The ReLU's backward first (its output > 0 is its input > 0), then batch norm's.
                  const Tensor g_bn = y_relu.defined() ? ops::activation_backward(ops::ActivationKind::ReLU, gy, y_relu)
                                                       : gy;
                  ops::BatchNormGrads g = ops::batch_norm_backward(g_bn, x, mean, invstd, weight, training);
                  return std::vector<Tensor>{g.x, weight.defined() ? g.weight : Tensor(),
                                             has_bias ? g.bias : Tensor()};
                });
}

}  // namespace

Tensor batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight, const Tensor& bias,
                  bool training, double momentum, double eps, const std::string& name) {
  return batch_norm_and(false, x, std::move(running_mean), std::move(running_var), weight, bias, training, momentum,
                        eps, name);
}

Tensor batch_norm_relu(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps, const std::string& name) {
  return batch_norm_and(true, x, std::move(running_mean), std::move(running_var), weight, bias, training, momentum,
                        eps, name);
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | batch_norm (train/eval, running stats as PyTorch) | `layers/ops/batch_norm.cpp` | | `batch_norm.cu` | |
