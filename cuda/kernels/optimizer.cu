// Fused optimizer updates: one pass reads param, grad and state once and writes them back,
// instead of a chain of elementwise ops each re-reading memory. Formulas are torch.optim's.
// Kernels, entry points and registration.
#include <cmath>

#include "cuda/compat.cuh"

SCALPEL_KERNEL_API(
// PyTorch's formulas (torch.optim), in place on param and state. `step` counts from 1.
// momentum_buf may be null when momentum == 0; on the first step (step == 1) it is set to the
// gradient.
void sgd_step(const Stream& s, float* param, const float* grad, float* momentum_buf, int64_t n,
              float lr, float momentum, float dampening, float weight_decay, bool nesterov,
              int64_t step);
// Adam (decoupled == false: L2 added to the gradient) or AdamW (decoupled weight decay).
void adam_step(const Stream& s, float* param, const float* grad, float* exp_avg,
               float* exp_avg_sq, int64_t n, float lr, float beta1, float beta2, float eps,
               float weight_decay, bool decoupled, int64_t step);
// RMSprop without centering; momentum_buf may be null when momentum == 0.
void rmsprop_step(const Stream& s, float* param, const float* grad, float* square_avg,
                  float* momentum_buf, int64_t n, float lr, float alpha, float eps,
                  float weight_decay, float momentum);
)

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

__global__ void sgd_kernel(float* param, const float* grad, float* buf, int64_t n, float lr,
                           float momentum, float dampening, float weight_decay, bool nesterov,
                           bool first) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    float g = grad[i] + weight_decay * param[i];
    if (momentum != 0.0f) {
      const float b = first ? g : momentum * buf[i] + (1.0f - dampening) * g;
      buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    param[i] -= lr * g;
  }
}

__global__ void adam_kernel(float* param, const float* grad, float* m, float* v, int64_t n,
                            float lr, float beta1, float beta2, float eps, float weight_decay,
                            bool decoupled, float bias1, float bias2_sqrt) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    float p = param[i], g = grad[i];
    if (decoupled)
      p *= 1.0f - lr * weight_decay;
    else
      g += weight_decay * p;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = p - (lr / bias1) * mi / (sqrtf(vi) / bias2_sqrt + eps);
  }
}

__global__ void rmsprop_kernel(float* param, const float* grad, float* sq, float* buf, int64_t n,
                               float lr, float alpha, float eps, float weight_decay,
                               float momentum) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float g = grad[i] + weight_decay * param[i];
    const float s = alpha * sq[i] + (1.0f - alpha) * g * g;
    sq[i] = s;
    const float step = g / (sqrtf(s) + eps);
    if (momentum > 0.0f) {
      buf[i] = momentum * buf[i] + step;
      param[i] -= lr * buf[i];
    } else {
      param[i] -= lr * step;
    }
  }
}

}  // namespace

void sgd_step(const Stream& s, float* param, const float* grad, float* momentum_buf, int64_t n,
              float lr, float momentum, float dampening, float weight_decay, bool nesterov,
              int64_t step) {
  if (n > 0)
    SCALPEL_LAUNCH(sgd_kernel, grid_for(n, kThreads), kThreads, 0, s, param, grad, momentum_buf, n,
                   lr, momentum, dampening, weight_decay, nesterov, step == 1);
}

void adam_step(const Stream& s, float* param, const float* grad, float* exp_avg,
               float* exp_avg_sq, int64_t n, float lr, float beta1, float beta2, float eps,
               float weight_decay, bool decoupled, int64_t step) {
  // Bias corrections in double on the host, as torch computes them.
  const double t = static_cast<double>(step);
  const float bias1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), t));
  const float bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(beta2), t)));
  if (n > 0)
    SCALPEL_LAUNCH(adam_kernel, grid_for(n, kThreads), kThreads, 0, s, param, grad, exp_avg,
                   exp_avg_sq, n, lr, beta1, beta2, eps, weight_decay, decoupled, bias1, bias2_sqrt);
}

void rmsprop_step(const Stream& s, float* param, const float* grad, float* square_avg,
                  float* momentum_buf, int64_t n, float lr, float alpha, float eps,
                  float weight_decay, float momentum) {
  if (n > 0)
    SCALPEL_LAUNCH(rmsprop_kernel, grid_for(n, kThreads), kThreads, 0, s, param, grad, square_avg,
                   momentum_buf, n, lr, alpha, eps, weight_decay, momentum);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

void sgd_step(Tensor& param, const Tensor& grad_in, Tensor momentum_buf, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first) {
  const Tensor grad = dense(grad_in);
  const Stream s = stream_for("sgd", {&param, &grad, &momentum_buf});
  // The kernel's step counter only tells the first step (buffer = gradient) from the others.
  SCALPEL_CUDA_CALL(s, sgd_step, out(param), in(grad), out(momentum_buf), param.numel(), static_cast<float>(lr),
                    static_cast<float>(momentum), static_cast<float>(dampening),
                    static_cast<float>(weight_decay), nesterov, first ? 1 : 2);
}

void adam_step(Tensor& param, const Tensor& grad_in, Tensor exp_avg, Tensor exp_avg_sq, double lr, double beta1,
               double beta2, double eps, double weight_decay, bool decoupled, int64_t step) {
  const Tensor grad = dense(grad_in);
  const Stream s = stream_for(decoupled ? "adamw" : "adam", {&param, &grad, &exp_avg, &exp_avg_sq});
  SCALPEL_CUDA_CALL(s, adam_step, out(param), in(grad), out(exp_avg), out(exp_avg_sq), param.numel(),
                    static_cast<float>(lr), static_cast<float>(beta1), static_cast<float>(beta2),
                    static_cast<float>(eps), static_cast<float>(weight_decay), decoupled, step);
}

void rmsprop_step(Tensor& param, const Tensor& grad_in, Tensor square_avg, Tensor momentum_buf, double lr,
                  double alpha, double eps, double weight_decay, double momentum) {
  const Tensor grad = dense(grad_in);
  const Stream s = stream_for("rmsprop", {&param, &grad, &square_avg, &momentum_buf});
  SCALPEL_CUDA_CALL(s, rmsprop_step, out(param), in(grad), out(square_avg), out(momentum_buf), param.numel(),
                    static_cast<float>(lr), static_cast<float>(alpha), static_cast<float>(eps),
                    static_cast<float>(weight_decay), static_cast<float>(momentum));
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(optimizer) {
  using backend::Op;
  backend::register_kernel<Op::sgd_step>(type, sgd_step);
  backend::register_kernel<Op::adam_step>(type, adam_step);
  backend::register_kernel<Op::rmsprop_step>(type, rmsprop_step);
}
#endif
