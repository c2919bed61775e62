#pragma once
// 2-D pooling kernels (no autograd; see max_pool2d(), avg_pool2d(), adaptive_avg_pool2d() and
// global_avg_pool() in layers/functional.h). x is [N, C, H, W] float32/float64 on the CPU (any
// strided view); outputs are new contiguous tensors; backward kernels return a fresh gradient.
#include <string>

#include "layers/functional.h"

namespace scalpel::ops {

// Window placement of one pooling call, resolved as PyTorch does:
//   out = floor_or_ceil((in + pad_before + pad_after - kernel) / stride) + 1, and with
//   ceil_mode the last window is dropped when it would start past the input and the leading
//   padding ((out - 1) * stride >= in + pad_before).
// Each padding side must be at most kernel / 2 (so every window overlaps the input).
struct Pool2dGeometry {
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  nn::Padding2d pad;
};
// Throws Error naming `name` and the input shape when the options do not fit x.
Pool2dGeometry pool2d_geometry(const Tensor& x, const nn::Pool2dOptions& options, const std::string& name);

struct MaxPoolResult {
  Tensor y;       // [N, C, out_h, out_w]
  Tensor argmax;  // int64, same shape: index h * W + w of the max in its input plane
};
// Padding counts as -inf; the first maximum in row-major window order wins ties (NaN wins,
// the last NaN of several). Computed as max_pool2d_values is, with each pick's row and column
// carried along; the same result as the reference, which scans each window element by element.
MaxPoolResult max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g);
MaxPoolResult max_pool2d_forward_reference(const Tensor& x, const Pool2dGeometry& g);
// The same values without the argmax, for inference: the max over the window's rows for
// each column, then over its columns, so the loops run along contiguous rows. NaN propagates
// as above; of equal values of opposite sign (+0, -0) either may be returned.
Tensor max_pool2d_values(const Tensor& x, const Pool2dGeometry& g);
// gx [N, C, H, W]: each gy element added at its argmax.
Tensor max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Pool2dGeometry& g);

// Mean over each window clipped to the input. The divisor is the window clipped to the
// padded input (count_include_pad) or to the input itself (not counting padding). Whole 2x2
// windows at stride 2 (DenseNet's transitions) skip the per-window bounds; the reference
// computes every window alike, in the same order, so both give the same bits.
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g, bool count_include_pad);
Tensor avg_pool2d_forward_reference(const Tensor& x, const Pool2dGeometry& g, bool count_include_pad);
Tensor avg_pool2d_backward(const Tensor& gy, const Pool2dGeometry& g, bool count_include_pad);

// Output cell (i, j) averages rows [floor(i*H/oh), ceil((i+1)*H/oh)) and the same for columns.
Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor adaptive_avg_pool2d_backward(const Tensor& gy, int64_t in_h, int64_t in_w);

}  // namespace scalpel::ops
