#pragma once
// Depthwise conv2d engine: groups == C_in, C_out = C_in * multiplier (multiplier >= 1), so
// output channel oc reads only input channel oc / multiplier. Run as direct loops per channel
// plane, never as per-channel GEMMs: each output row accumulates kH*kW shifted, scaled input
// rows (contiguous and vectorizable when stride_w == 1); narrow stride-1 planes (OW <= 32) run
// each tap as one loop over a zero-padded copy of the plane instead (fewer, longer loops; the
// forward only). Parallel over (sample, channel) planes (weight grad: over output channels).
// The loops are compiled for AVX-512, AVX2 and the baseline (tensor/cpu_isa.h); the widest the
// CPU supports runs unless set_depthwise_isa() forces one.
// At the AVX-512 level (conv2d_depthwise_avx512.cpp), float convs with a square 3x3/5x5/7x7 kernel, stride 1 or 2 and
// dilation 1 (every depthwise layer of MobileNet V2 and EfficientNet) run hand-vectorized row
// kernels instead: 16 output columns per register with masked loads for the padding, 4 output
// rows per pass; the input grad (multiplier 1) and the weight grad likewise. Their sums are
// in a different order (and fused multiply-adds), so they agree with the reference to
// rounding, not bit for bit.
// Same contracts as the kernels in layers/ops/conv2d.h (outputs overwritten; requires
// g.is_depthwise()).
#include <string_view>

#include "layers/ops/conv2d.h"
#include "tensor/cpu_isa.h"

namespace scalpel::ops {

// Which compiled variant of the loops runs (process-wide). Tests run each one the CPU has.
Isa depthwise_isa();
void set_depthwise_isa(Isa level);  // Error when the CPU lacks it
void reset_depthwise_isa();         // back to best_isa()

template <typename T>
void conv2d_forward_depthwise(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                              T* y, const ConvEpilogue<T>& epilogue = {});
template <typename T>
void conv2d_backward_input_depthwise(const Conv2dGeometry& g, const T* grad_y, const T* weight,
                                     T* grad_x);
template <typename T>
void conv2d_backward_weight_depthwise(const Conv2dGeometry& g, const T* x, const T* grad_y,
                                      T* grad_weight);

}  // namespace scalpel::ops
