#pragma once
// The sizes of one 2-D convolution, shared by the CPU engines (layers/ops/conv2d.h), the device
// dispatch table (tensor/backend.h), the CUDA kernels (cuda/kernels/*.cu, compiled by nvcc: a
// plain struct, helpers marked SCALPEL_HOST_DEVICE) and cuDNN.
//
// Layout: x [N, C_in, H, W], weight [C_out, C_in/groups, kH, kW], y [N, C_out, OH, OW], all
// contiguous NCHW. Output pixel (oh, ow) reads input rows
//   ih = oh * stride_h - pad_top + kh * dilation_h   (and likewise columns with pad_left);
// positions outside [0, H) x [0, W) read zero. Bottom/right padding only enters through the
// output size, so asymmetric and TF "SAME" padding need nothing special in a kernel: kernels
// read pad_top, pad_left, out_h and out_w. Only cuDNN, which takes one padding per axis, needs
// pad_bottom/pad_right (cuda/cudnn/cudnn.cpp pads the excess explicitly).
//
// Invariant: out_h == conv2d_output_size(in_h, kernel_h, stride_h, pad_top, pad_bottom,
// dilation_h), likewise out_w (set_output_size() establishes it). conv2d_geometry()
// (layers/ops/conv2d.h) validates user options and builds one; conv_transpose2d describes its
// adjoint convolution, where output_padding makes pad_bottom = padding - output_padding, which
// may be negative: the last input rows are then never read.
#include <cstdint>

#include "tensor/op_params.h"  // SCALPEL_HOST_DEVICE

namespace scalpel {

// floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1, or 0 when
// the kernel does not fit the padded input (callers check).
SCALPEL_HOST_DEVICE inline int64_t conv2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                                                      int64_t pad_after, int64_t dilation) {
  const int64_t span = dilation * (kernel - 1) + 1;  // input extent one output pixel reads
  const int64_t padded = in + pad_before + pad_after;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

struct Conv2dGeometry {
  int64_t batch = 1, in_channels = 1, in_h = 1, in_w = 1;
  int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  int64_t out_h = 1, out_w = 1;

  // Sets out_h/out_w from the other fields (the invariant above).
  SCALPEL_HOST_DEVICE void set_output_size() {
    out_h = conv2d_output_size(in_h, kernel_h, stride_h, pad_top, pad_bottom, dilation_h);
    out_w = conv2d_output_size(in_w, kernel_w, stride_w, pad_left, pad_right, dilation_w);
  }

  SCALPEL_HOST_DEVICE int64_t in_per_group() const { return in_channels / groups; }
  SCALPEL_HOST_DEVICE int64_t out_per_group() const { return out_channels / groups; }
  SCALPEL_HOST_DEVICE bool symmetric_padding() const { return pad_top == pad_bottom && pad_left == pad_right; }
  // groups == C_in: each output channel reads one input channel (C_out / C_in filters each).
  SCALPEL_HOST_DEVICE bool is_depthwise() const { return groups == in_channels && out_channels % in_channels == 0; }
  // Depthwise with one filter per channel (C_out == C_in): what the CUDA depthwise kernels run.
  SCALPEL_HOST_DEVICE bool is_depthwise_one_filter() const { return is_depthwise() && out_channels == in_channels; }
  // 1x1, stride 1, no padding: the input already is the im2col matrix.
  SCALPEL_HOST_DEVICE bool is_pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0 && pad_left == 0 &&
           out_h == in_h && out_w == in_w;
  }
  // Multiply-adds of the forward pass (backward input and backward weight cost the same).
  SCALPEL_HOST_DEVICE int64_t macs() const {
    return batch * out_channels * out_h * out_w * in_per_group() * kernel_h * kernel_w;
  }
};

}  // namespace scalpel
