#pragma once
// Batch normalization kernels (no autograd; see batch_norm() in layers/functional.h).
// x is [N, C] or [N, C, H, W] (any rank >= 2: statistics are per axis-1 channel over all
// other axes); per-channel tensors are [C] and have x's dtype. float32/float64, CPU.
// M below is the number of elements per channel (N * H * W).
#include "tensor/gemm.h"
#include "tensor/tensor.h"

namespace scalpel::ops {

struct BatchNormStats {
  Tensor mean;  // [C]
  Tensor var;   // [C], biased (divided by M): the variance used to normalize in training
};
// Per-channel mean and biased variance, two passes (mean first, then squared deviations)
// so that a large mean does not cost float32 digits.
BatchNormStats batch_norm_stats(const Tensor& x);

// y = act((x - mean) * invstd * weight + bias), invstd = 1 / sqrt(var + eps) per channel.
// weight/bias may be undefined (1 and 0). The activation (none by default) is applied to each
// plane while it is in cache (apply_epilogue's formulas): inference of BN + ReLU in one pass.
Tensor batch_norm_forward(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                          const Tensor& bias, EpilogueActivation activation = EpilogueActivation::none);

struct BatchNormGrads {
  Tensor x, weight, bias;  // weight/bias grads are [C] (computed even when weight is undefined)
};
// Backward with xhat = (x - mean) * invstd, gb = sum gy, gw = sum gy * xhat (per channel).
// training (mean/invstd are the batch's own statistics, so they depend on x):
//   gx = weight * invstd / M * (M * gy - gb - xhat * gw)
// eval (mean/invstd are constants): gx = gy * weight * invstd.
BatchNormGrads batch_norm_backward(const Tensor& gy, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                                   const Tensor& weight, bool training);

}  // namespace scalpel::ops
