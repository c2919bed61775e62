// Fused optimizer updates on the device (contracts in tensor/backend.h): one kernel per
// parameter reads param, grad and state once and writes them back in place.
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {

using detail::dense;
using detail::in;
using detail::out;
using detail::stream_for;

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

// This file's ops in the dispatch table (tensor/backend.h), one line per op.
void detail::register_optimizer_kernels(DeviceType type) {
  using backend::Op;
  using backend::register_kernel;
  register_kernel<Op::sgd_step>(type, sgd_step);
  register_kernel<Op::adam_step>(type, adam_step);
  register_kernel<Op::rmsprop_step>(type, rmsprop_step);
}

}  // namespace scalpel::cuda
