#pragma once
// The convolution configurations every conv test runs (engines vs reference, gradcheck):
// odd sizes, stride 2 on odd inputs, groups, depthwise with multiplier 1 and 2, dilation,
// asymmetric padding, TF SAME, pointwise, kernels as large as the padded input.
#include <iterator>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "layers/functional.h"
#include "layers/ops/conv2d.h"
#include "tensor/random.h"

namespace scalpel::testing_conv {

struct ConvCase {
  std::string name;
  Shape x;  // [N, C_in, H, W]
  int64_t out_channels, kernel_h, kernel_w;
  nn::Conv2dOptions options;
  bool bias = true;

  Shape weight() const { return {out_channels, x[1] / options.groups, kernel_h, kernel_w}; }
};

inline nn::Conv2dOptions conv_opts(std::array<int64_t, 2> stride, nn::Padding2d pad,
                                   int64_t groups = 1, std::array<int64_t, 2> dilation = {1, 1},
                                   bool same = false) {
  nn::Conv2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.groups = groups;
  o.dilation = dilation;
  o.same = same;
  return o;
}

inline std::vector<ConvCase> conv_cases() {
  using P = nn::Padding2d;
  return {
      {"plain_3x3", {2, 3, 7, 6}, 4, 3, 3, conv_opts({1, 1}, P::symmetric(1))},
      {"stride2_odd", {2, 3, 9, 7}, 5, 3, 3, conv_opts({2, 2}, P::symmetric(1))},
      {"stride2_odd_unpadded", {1, 2, 9, 9}, 3, 3, 3, conv_opts({2, 2}, P{})},
      {"asymmetric_pad", {2, 3, 6, 7}, 4, 3, 3, conv_opts({2, 2}, P{1, 2, 0, 1})},
      {"same_stride2", {2, 3, 8, 7}, 4, 3, 3, conv_opts({2, 2}, P{}, 1, {1, 1}, true)},
      {"same_k4_stride1", {1, 2, 6, 5}, 3, 4, 4, conv_opts({1, 1}, P{}, 1, {1, 1}, true)},
      {"dilation2", {2, 3, 9, 8}, 4, 3, 3, conv_opts({1, 1}, P::symmetric(2), 1, {2, 2})},
      {"dilation_rect_stride", {1, 2, 10, 9}, 3, 3, 2, conv_opts({1, 2}, P{1, 0, 2, 1}, 1, {2, 3})},
      {"groups2", {2, 4, 7, 7}, 6, 3, 3, conv_opts({1, 1}, P::symmetric(1), 2)},
      {"groups3_stride2_asym", {2, 6, 8, 9}, 9, 3, 3, conv_opts({2, 2}, P{0, 1, 1, 0}, 3)},
      {"depthwise", {2, 5, 7, 6}, 5, 3, 3, conv_opts({1, 1}, P::symmetric(1), 5)},
      {"depthwise_mult2", {2, 3, 7, 7}, 6, 3, 3, conv_opts({1, 1}, P::symmetric(1), 3)},
      {"depthwise_mult2_stride2_odd", {2, 3, 9, 7}, 6, 3, 3, conv_opts({2, 2}, P::symmetric(1), 3), false},
      {"depthwise_dilation2", {1, 4, 9, 9}, 4, 3, 3, conv_opts({1, 1}, P::symmetric(2), 4, {2, 2})},
      {"depthwise_same_k5_stride2", {2, 4, 9, 8}, 4, 5, 5, conv_opts({2, 2}, P{}, 4, {1, 1}, true)},
      {"pointwise", {2, 8, 5, 6}, 6, 1, 1, conv_opts({1, 1}, P{})},
      {"pointwise_groups2", {2, 8, 5, 5}, 4, 1, 1, conv_opts({1, 1}, P{}, 2)},
      {"pointwise_stride2", {2, 4, 7, 7}, 6, 1, 1, conv_opts({2, 2}, P{}), false},
      {"pointwise_padded", {1, 3, 4, 4}, 2, 1, 1, conv_opts({1, 1}, P{1, 0, 0, 1})},
      {"k7_stride2", {2, 3, 11, 10}, 4, 7, 7, conv_opts({2, 2}, P::symmetric(3)), false},
      {"rect_kernel", {2, 3, 7, 9}, 4, 3, 5, conv_opts({2, 1}, P::symmetric(1, 2))},
      {"kernel_fills_padded_input", {1, 2, 3, 3}, 2, 5, 5, conv_opts({1, 1}, P::symmetric(1))},
      {"padding_wider_than_kernel", {1, 1, 4, 4}, 2, 2, 2, conv_opts({1, 1}, P::symmetric(3))},
  };
}

// Forces an engine for nn::conv2d within a scope.
class EngineGuard {
 public:
  explicit EngineGuard(ops::CpuConvAlgorithm engine) { ops::set_cpu_conv_algorithm(engine); }
  ~EngineGuard() { ops::set_cpu_conv_algorithm(ops::CpuConvAlgorithm::Auto); }
  EngineGuard(const EngineGuard&) = delete;
  EngineGuard& operator=(const EngineGuard&) = delete;
};

inline const std::vector<ops::CpuConvAlgorithm>& fast_engines() {
  static const std::vector<ops::CpuConvAlgorithm> engines(std::begin(ops::kFastCpuConvAlgorithms),
                                                          std::end(ops::kFastCpuConvAlgorithms));
  return engines;
}

}  // namespace scalpel::testing_conv
