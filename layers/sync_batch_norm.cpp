// Batch normalization over the batches of every rank (layers/communicator.h). The statistics
// and the input gradient follow the single-process kernels of layers/ops/batch_norm.cpp step
// by step (two passes in double: the mean first, then squared deviations from it), with the
// per-channel sums added over the ranks in between, in the same order (layers/ops/batch_tree.h),
// so that 2^k ranks get one process's bits, even when a channel's variance is tiny next to its mean.
#include <algorithm>
#include <array>
#include <vector>

#include "autograd/autograd.h"
#include "layers/communicator.h"
#include "layers/ops/batch_norm.h"
#include "layers/ops/batch_tree.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"

namespace scalpel::nn {
namespace {

// Per thread: the scope belongs to the thread running forward (tests run ranks as threads).
thread_local Communicator* current_sync_communicator = nullptr;

// x viewed as [N, C, S]: sample n's channel c is the S contiguous elements at (n * C + c) * S.
struct Planes {
  int64_t n, c, s;
  explicit Planes(const Tensor& x) : n(x.size(0)), c(x.size(1)), s(x.numel() / std::max<int64_t>(n * c, 1)) {}
  int64_t at(int64_t sample, int64_t channel) const { return (sample * c + channel) * s; }
  // The sum over this rank's samples of fn(k) over channel `channel`'s elements k, per sample
  // over its plane, then over the samples as layers/ops/batch_tree.h's tree, as one process
  // adds them (the allreduce then adds the ranks' sums as that tree's top does).
  // fn(k) -> std::array<double, kSums>; per plane with ops::plane_sums, as the kernels.
  template <int kSums, typename Fn> std::array<double, kSums> sum(int64_t channel, Fn&& fn) const {
    return ops::batch_tree_sum<Sums<kSums>>(0, n, [&](int64_t sample) {
             const int64_t first = at(sample, channel);
             return Sums<kSums>{ops::plane_sums<kSums>(s, [&](int64_t j) { return fn(first + j); })};
           })
        .v;
  }
  template <int kSums> struct Sums {
    std::array<double, kSums> v{};
    Sums operator+(const Sums& o) const {
      Sums r;
      for (int k = 0; k < kSums; ++k) r.v[k] = v[k] + o.v[k];
      return r;
    }
  };
};

// Per-channel mean and biased variance of every rank's x together.
ops::BatchNormStats global_stats(const Tensor& x, Communicator& comm, double& count) {
  const Planes P(x);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    std::vector<double> sums(P.c + 1);  // per channel, then the element count per channel
    parallel_for(P.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c)
        sums[c] = P.sum<1>(c, [&](int64_t k) { return std::array<double, 1>{double(px[k])}; })[0];
    });
    sums[P.c] = static_cast<double>(P.n * P.s);
    comm.allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
    count = sums[P.c];
    std::vector<double> mean(P.c), squares(P.c);
    for (int64_t c = 0; c < P.c; ++c) mean[c] = sums[c] / count;
    parallel_for(P.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        squares[c] = P.sum<1>(c, [&](int64_t k) {
          const double d = double(px[k]) - mean[c];
          return std::array<double, 1>{d * d};
        })[0];
      }
    });
    comm.allreduce_sum(squares.data(), P.c);
    for (double& v : squares) v /= count;
    return ops::BatchNormStats{Tensor::from_vector(mean, {P.c}, x.dtype()),
                               Tensor::from_vector(squares, {P.c}, x.dtype())};
  });
}

// The training-mode input gradient with the gradient sums of every rank. The weight and bias
// gradients are the global sums too (allreduced here in double, as one process adds them), so
// rank 0 holds them and the other ranks zero: the gradients' allreduce leaves them exact.
ops::BatchNormGrads global_backward(const Tensor& gy_in, const Tensor& x, const Tensor& mean_t,
                                    const Tensor& invstd_t, const Tensor& weight_t, double count,
                                    Communicator& comm) {
  const Tensor gy = gy_in.contiguous();
  const Planes P(x);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pg = gy.data<T>();
    const std::vector<T> mean = mean_t.values<T>(), invstd = invstd_t.values<T>();
    const std::vector<T> weight = weight_t.defined() ? weight_t.values<T>() : std::vector<T>();
    std::vector<double> sums(2 * P.c);  // sum gy per channel, then sum gy * xhat
    parallel_for(P.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        // As ops::batch_norm_backward: sum gy and sum gy * (x - mean) per plane, the latter
        // times invstd before the planes are added.
        const double m = mean[c], is = invstd[c];
        const std::array<double, 2> s = ops::batch_tree_sum<Planes::Sums<2>>(0, P.n, [&](int64_t sample) {
                                          const T* g = pg + P.at(sample, c);
                                          const T* xs = px + P.at(sample, c);
                                          std::array<double, 2> t = ops::plane_sums<2>(P.s, [&](int64_t j) {
                                            const double gj = g[j];
                                            return std::array<double, 2>{gj, gj * (double(xs[j]) - m)};
                                          });
                                          t[1] *= is;
                                          return Planes::Sums<2>{t};
                                        }).v;
        sums[c] = s[0];
        sums[P.c + c] = s[1];
      }
    });
    comm.allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
    ops::BatchNormGrads g{Tensor::empty(x.shape(), x.dtype()), Tensor::empty({P.c}, x.dtype()),
                          Tensor::empty({P.c}, x.dtype())};
    T* gb = g.bias.data<T>();
    T* gw = g.weight.data<T>();
    const bool holder = comm.rank() == 0;
    for (int64_t c = 0; c < P.c; ++c) {
      gb[c] = holder ? static_cast<T>(sums[c]) : T(0);
      gw[c] = holder ? static_cast<T>(sums[P.c + c]) : T(0);
    }
    T* gx = g.x.data<T>();
    parallel_for(P.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const double scale = static_cast<double>(invstd[c]) * (weight.empty() ? 1.0 : weight[c]);
        const double sum_g = sums[c], sum_g_xhat = sums[P.c + c];
        const double m = mean[c], mean_g = sum_g / count, xc_factor = static_cast<double>(invstd[c]) * sum_g_xhat / count;
        for (int64_t i = 0; i < P.n; ++i)
          for (int64_t j = 0; j < P.s; ++j) {
            const int64_t k = P.at(i, c) + j;
            gx[k] = static_cast<T>(scale * (pg[k] - mean_g - (static_cast<double>(px[k]) - m) * xc_factor));
          }
      }
    });
    return g;
  });
}

}  // namespace

SyncBatchNorm::SyncBatchNorm(Communicator* comm) : previous_(current_sync_communicator) {
  current_sync_communicator = comm;
}

SyncBatchNorm::~SyncBatchNorm() { current_sync_communicator = previous_; }

Communicator* sync_batch_norm_communicator() { return current_sync_communicator; }

Tensor sync_batch_norm_train(const Tensor& x_in, Tensor running_mean, Tensor running_var, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps, Communicator& comm) {
  const Tensor x = x_in.contiguous();
  double count = 0;
  const ops::BatchNormStats stats = global_stats(x, comm, count);
  const Tensor invstd = ops::pow_scalar(ops::add_scalar(stats.var, eps), -0.5);
  if (running_mean.defined()) {
    const double unbias = count / (count - 1);  // PyTorch's unbiased running variance
    running_mean.copy_(ops::add(ops::mul_scalar(running_mean, 1 - momentum), ops::mul_scalar(stats.mean, momentum)));
    running_var.copy_(
        ops::add(ops::mul_scalar(running_var, 1 - momentum), ops::mul_scalar(stats.var, momentum * unbias)));
  }
  const Tensor y = ops::batch_norm_forward(x, stats.mean, invstd, weight, bias);
  return record("sync_batch_norm", y, {x_in, weight, bias},
                [x = x.detach(), mean = stats.mean, invstd, weight = weight.defined() ? weight.detach() : Tensor(),
                 has_bias = bias.defined(), count, &comm](const Tensor& gy) {
                  ops::BatchNormGrads g = global_backward(gy, x, mean, invstd, weight, count, comm);
                  return std::vector<Tensor>{g.x, weight.defined() ? g.weight : Tensor(),
                                             has_bias ? g.bias : Tensor()};
                });
}

}  // namespace scalpel::nn
