#pragma once
// Resampling kernels (no autograd; see upsample() in layers/functional.h). x is [N, C, H, W]
// float32/float64 on the CPU (any strided view); outputs are new contiguous tensors.
// Source coordinates follow PyTorch's float32 CPU kernels, so indices match it exactly:
//   nearest:  src = min(floor(dst * (in / out)), in - 1)      (torch 'nearest', not 'nearest-exact')
//             in float32 arithmetic for every dtype (exact x2 and same-size shortcuts); at some
//             sizes (6 -> 74) this differs from the exact rational floor, as in torch's float32.
//             (torch's float64 kernel is not self-consistent here: it uses double arithmetic on
//             multi-channel inputs.)
//   bilinear: in the tensor's own precision (float32 for float32, as torch):
//     align_corners:   src = dst * (in - 1) / (out - 1)   (0 when out == 1)
//     otherwise:       src = max((dst + 0.5) * in / out - 0.5, 0)
//   then i0 = min(floor(src), in - 1), i1 = min(i0 + 1, in - 1), weights (1 - l, l), l = src - i0.
#include "tensor/tensor.h"

namespace scalpel::ops {

Tensor upsample_nearest_forward(const Tensor& x, int64_t out_h, int64_t out_w);
// gx [N, C, in_h, in_w]: each gy element added to its source pixel.
Tensor upsample_nearest_backward(const Tensor& gy, int64_t in_h, int64_t in_w);

Tensor upsample_bilinear_forward(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners);
// gx [N, C, in_h, in_w]: each gy element spread over its four source pixels with the same weights.
Tensor upsample_bilinear_backward(const Tensor& gy, int64_t in_h, int64_t in_w, bool align_corners);

}  // namespace scalpel::ops
