// Batch normalization over N, H, W for each channel of NCHW data. Training kernels give one
// block per channel: block reductions produce the statistics, then the same block normalizes.
// Kernels, entry points and registration.
#include "cuda/kernels/block_reduce.cuh"

SCALPEL_KERNEL_API(
// Training: y = (x - mean) * invstd * gamma + beta with batch statistics; writes save_mean and
// save_invstd [c] for backward and updates running_mean/var in place (PyTorch: momentum
// weighting, unbiased variance in the running estimate).
void batch_norm_train_forward(const Stream& s, const float* x, const float* gamma,
                              const float* beta, float* y, float* running_mean,
                              float* running_var, float* save_mean, float* save_invstd,
                              int64_t n, int64_t c, int64_t hw, float momentum, float eps);
// Evaluation: running statistics.
void batch_norm_eval_forward(const Stream& s, const float* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, float* y, int64_t n, int64_t c,
                             int64_t hw, float eps);
// Training backward: dx, dgamma, dbeta from the saved statistics.
void batch_norm_backward(const Stream& s, const float* x, const float* dy, const float* gamma,
                         const float* save_mean, const float* save_invstd, float* dx,
                         float* dgamma, float* dbeta, int64_t n, int64_t c, int64_t hw);

// Evaluation-mode backward (running statistics are constants): dx = dy * gamma * invstd;
// dgamma, dbeta as in training. Any of dx, dgamma, dbeta may be null (not wanted).
void batch_norm_eval_backward(const Stream& s, const float* x, const float* dy,
                              const float* gamma, const float* running_mean,
                              const float* running_var, float* dx, float* dgamma, float* dbeta,
                              int64_t n, int64_t c, int64_t hw, float eps);
)

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

// Visits the channel's n * hw elements (index into the NCHW tensor) spread over the block.
#define SCALPEL_FOR_CHANNEL(idx)                                       \
  for (int64_t b = 0; b < n; ++b)                                      \
    for (int64_t j = threadIdx.x, idx = (b * c + ch) * hw + j; j < hw; \
         j += blockDim.x, idx += blockDim.x)

__global__ void bn_train_forward_kernel(const float* x, const float* gamma, const float* beta,
                                        float* y, float* running_mean, float* running_var,
                                        float* save_mean, float* save_invstd, int64_t n,
                                        int64_t c, int64_t hw, float momentum, float eps) {
  const float count = static_cast<float>(n * hw);
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    float sum = 0.0f;
    SCALPEL_FOR_CHANNEL(i) sum += x[i];
    const float mean = block_sum(sum) / count;
    float sq = 0.0f;  // two passes: sum of squared deviations, no cancellation
    SCALPEL_FOR_CHANNEL(i) sq += (x[i] - mean) * (x[i] - mean);
    const float var = block_sum(sq) / count;
    const float invstd = rsqrtf(var + eps);
    const float scale = gamma ? gamma[ch] * invstd : invstd;
    const float shift = (beta ? beta[ch] : 0.0f) - mean * scale;
    SCALPEL_FOR_CHANNEL(i) y[i] = fmaf(x[i], scale, shift);
    if (threadIdx.x == 0) {
      save_mean[ch] = mean;
      save_invstd[ch] = invstd;
      if (running_mean) running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * mean;
      if (running_var) {
        const float unbiased = count > 1.0f ? var * count / (count - 1.0f) : var;
        running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * unbiased;
      }
    }
  }
}

__global__ void bn_eval_forward_kernel(const float* x, const float* gamma, const float* beta,
                                       const float* running_mean, const float* running_var,
                                       float* y, int64_t n, int64_t c, int64_t hw, float eps) {
  const int64_t total = n * c * hw;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ch = i / hw % c;
    const float scale = (gamma ? gamma[ch] : 1.0f) * rsqrtf(running_var[ch] + eps);
    y[i] = (x[i] - running_mean[ch]) * scale + (beta ? beta[ch] : 0.0f);
  }
}

// dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)); dgamma = sum(dy * xhat);
// dbeta = sum(dy).
__global__ void bn_backward_kernel(const float* x, const float* dy, const float* gamma,
                                   const float* save_mean, const float* save_invstd, float* dx,
                                   float* dgamma, float* dbeta, int64_t n, int64_t c, int64_t hw) {
  const float count = static_cast<float>(n * hw);
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const float mean = save_mean[ch], invstd = save_invstd[ch];
    float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
    SCALPEL_FOR_CHANNEL(i) {
      sum_dy += dy[i];
      sum_dy_xhat += dy[i] * (x[i] - mean) * invstd;
    }
    sum_dy = block_sum(sum_dy);
    sum_dy_xhat = block_sum(sum_dy_xhat);
    const float g = (gamma ? gamma[ch] : 1.0f) * invstd;
    SCALPEL_FOR_CHANNEL(i) {
      const float xhat = (x[i] - mean) * invstd;
      dx[i] = g * (dy[i] - sum_dy / count - xhat * sum_dy_xhat / count);
    }
    if (threadIdx.x == 0) {
      if (dgamma) dgamma[ch] = sum_dy_xhat;
      if (dbeta) dbeta[ch] = sum_dy;
    }
  }
}

// Evaluation mode: the statistics are constants, so dx = dy * gamma * invstd with invstd from
// the running variance; dgamma and dbeta as in training.
__global__ void bn_eval_backward_kernel(const float* x, const float* dy, const float* gamma,
                                        const float* running_mean, const float* running_var,
                                        float* dx, float* dgamma, float* dbeta, int64_t n,
                                        int64_t c, int64_t hw, float eps) {
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const float mean = running_mean[ch], invstd = rsqrtf(running_var[ch] + eps);
    const float g = (gamma ? gamma[ch] : 1.0f) * invstd;
    float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
    SCALPEL_FOR_CHANNEL(i) {
      sum_dy += dy[i];
      sum_dy_xhat += dy[i] * (x[i] - mean) * invstd;
      if (dx) dx[i] = g * dy[i];
    }
    sum_dy = block_sum(sum_dy);
    sum_dy_xhat = block_sum(sum_dy_xhat);
    if (threadIdx.x == 0) {
      if (dgamma) dgamma[ch] = sum_dy_xhat;
      if (dbeta) dbeta[ch] = sum_dy;
    }
  }
}

#undef SCALPEL_FOR_CHANNEL

}  // namespace

void batch_norm_train_forward(const Stream& s, const float* x, const float* gamma,
                              const float* beta, float* y, float* running_mean,
                              float* running_var, float* save_mean, float* save_invstd,
                              int64_t n, int64_t c, int64_t hw, float momentum, float eps) {
  if (c > 0)
    SCALPEL_LAUNCH(bn_train_forward_kernel, grid_for(c, 1, 65535), kReductionThreads, 0, s, x, gamma, beta,
                   y, running_mean, running_var, save_mean, save_invstd, n, c, hw, momentum, eps);
}

void batch_norm_eval_forward(const Stream& s, const float* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, float* y, int64_t n, int64_t c,
                             int64_t hw, float eps) {
  const int64_t total = n * c * hw;
  if (total > 0)
    SCALPEL_LAUNCH(bn_eval_forward_kernel, grid_for(total, kThreads), kThreads, 0, s, x, gamma,
                   beta, running_mean, running_var, y, n, c, hw, eps);
}

void batch_norm_backward(const Stream& s, const float* x, const float* dy, const float* gamma,
                         const float* save_mean, const float* save_invstd, float* dx,
                         float* dgamma, float* dbeta, int64_t n, int64_t c, int64_t hw) {
  if (c > 0)
    SCALPEL_LAUNCH(bn_backward_kernel, grid_for(c, 1, 65535), kReductionThreads, 0, s, x, dy, gamma,
                   save_mean, save_invstd, dx, dgamma, dbeta, n, c, hw);
}

void batch_norm_eval_backward(const Stream& s, const float* x, const float* dy,
                              const float* gamma, const float* running_mean,
                              const float* running_var, float* dx, float* dgamma, float* dbeta,
                              int64_t n, int64_t c, int64_t hw, float eps) {
  if (c > 0)
    SCALPEL_LAUNCH(bn_eval_backward_kernel, grid_for(c, 1, 65535), kReductionThreads, 0, s, x, dy, gamma,
                   running_mean, running_var, dx, dgamma, dbeta, n, c, hw, eps);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

// Batch-norm tensors as the kernels see them: [n, c, hw].
void nchw(const Tensor& x, int64_t& n, int64_t& c, int64_t& hw) {
  n = x.size(0), c = x.size(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
}

Tensor batch_norm_eval(const Tensor& x_in, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, double eps) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  int64_t n, c, hw;
  nchw(x, n, c, hw);
  Tensor y = empty_like_device(x.shape(), x);
  // Null gamma/beta: an affine-free batch norm (the kernels read them as 1 and 0).
  SCALPEL_CUDA_CALL(s, batch_norm_eval_forward, in(x), in(dense(gamma)), in(dense(beta)),
                    in(dense(running_mean)), in(dense(running_var)), out(y), n, c, hw,
                    static_cast<float>(eps));
  return y;
}

BatchNormTrainOutput batch_norm_train(const Tensor& x_in, const Tensor& gamma, const Tensor& beta,
                                      Tensor running_mean, Tensor running_var, double momentum,
                                      double eps) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  int64_t n, c, hw;
  nchw(x, n, c, hw);
  BatchNormTrainOutput r{empty_like_device(x.shape(), x), empty_like_device({c}, x),
                         empty_like_device({c}, x)};
  // The running statistics are module buffers, updated in place: they must be contiguous.
  SCALPEL_CUDA_CALL(s, batch_norm_train_forward, in(x), in(dense(gamma)), in(dense(beta)),
                    out(r.y), out(running_mean), out(running_var), out(r.save_mean),
                    out(r.save_invstd), n, c, hw, static_cast<float>(momentum),
                    static_cast<float>(eps));
  return r;
}

BatchNormGrads batch_norm_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& gamma_in,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   bool need_gamma, bool need_beta) {
  const Tensor dy = dense(dy_in), x = dense(x_in), gamma = dense(gamma_in);
  const Stream s = stream_for("batch_norm backward", {&dy, &x, &gamma, &save_mean, &save_invstd});
  int64_t n, c, hw;
  nchw(x, n, c, hw);
  BatchNormGrads g{empty_like_device(x.shape(), dy), Tensor(), Tensor()};
  if (need_gamma) g.gamma = empty_like_device({c}, dy);
  if (need_beta) g.beta = empty_like_device({c}, dy);
  SCALPEL_CUDA_CALL(s, batch_norm_backward, in(x), in(dy), in(gamma), in(save_mean), in(save_invstd),
                    out(g.x), out(g.gamma), out(g.beta), n, c, hw);
  return g;
}

BatchNormGrads batch_norm_eval_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& gamma_in,
                                        const Tensor& running_mean, const Tensor& running_var,
                                        double eps, bool need_gamma, bool need_beta) {
  const Tensor dy = dense(dy_in), x = dense(x_in), gamma = dense(gamma_in);
  const Stream s = stream_for("batch_norm backward", {&dy, &x, &gamma, &running_mean, &running_var});
  int64_t n, c, hw;
  nchw(x, n, c, hw);
  BatchNormGrads g{empty_like_device(x.shape(), dy), Tensor(), Tensor()};
  if (need_gamma) g.gamma = empty_like_device({c}, dy);
  if (need_beta) g.beta = empty_like_device({c}, dy);
  SCALPEL_CUDA_CALL(s, batch_norm_eval_backward, in(x), in(dy), in(gamma), in(dense(running_mean)),
                    in(dense(running_var)), out(g.x), out(g.gamma), out(g.beta), n, c, hw,
                    static_cast<float>(eps));
  return g;
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(batch_norm) {
  using backend::Op;
  backend::register_kernel<Op::batch_norm_eval>(type, batch_norm_eval);
  backend::register_kernel<Op::batch_norm_train>(type, batch_norm_train);
  backend::register_kernel<Op::batch_norm_backward>(type, batch_norm_backward);
  backend::register_kernel<Op::batch_norm_eval_backward>(type, batch_norm_eval_backward);
}
#endif
