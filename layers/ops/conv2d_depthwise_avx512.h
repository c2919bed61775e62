#pragma once
// The AVX-512 row kernels of the depthwise conv engine (conv2d_depthwise_avx512.cpp), float
// only, for layers/ops/conv2d_depthwise.cpp, which calls them only where
// cpu_supports(Isa::avx512) and covers(g). Not a public API.
#include <cstdint>

#include "layers/ops/conv2d.h"

namespace scalpel::ops::depthwise_avx512 {

// Square 3x3, 5x5 or 7x7 kernels, stride 1 or 2 in both directions, dilation 1, any padding
// (every depthwise layer of MobileNet V2 and EfficientNet).
bool covers(const Conv2dGeometry& g);

// One kernel's operands: `a` and `b` are its two inputs in the order of its public signature
// (layers/ops/conv2d_depthwise.h), `out` its output; bias and epilogue: forward only.
struct Operands {
  const Conv2dGeometry& g;
  const float* a;
  const float* b;
  const float* bias;
  float* out;
  ConvEpilogue<float> epilogue;
};

// A task's share of each kernel, as the portable loops split them: output planes
// n * C_out + oc (forward), input planes n * C_in + ic (input gradient, multiplier 1 only),
// output channels (weight gradient).
void forward_planes(const Operands& o, int64_t begin, int64_t end);
void input_grad_planes(const Operands& o, int64_t begin, int64_t end);
void weight_grad_channels(const Operands& o, int64_t begin, int64_t end);

}  // namespace scalpel::ops::depthwise_avx512
