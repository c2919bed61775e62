#pragma once
// CPU references for the kernel lab and the CUDA tests: the plain loops of layers/ops/conv2d.h
// (the Reference CPU algorithm), which every CPU and CUDA implementation is tested against.
// Float32 in and out; an empty bias means none.
#include <vector>

#include "cuda/backend.h"
#include "layers/ops/conv2d.h"

namespace scalpel::cuda::lab {

inline std::vector<float> conv2d_forward_reference(const Conv2dGeometry& g, const std::vector<float>& x,
                                                   const std::vector<float>& w, const std::vector<float>& bias) {
  std::vector<float> y(g.batch * g.out_channels * g.out_h * g.out_w);
  ops::conv2d_forward_reference<float>(g, x.data(), w.data(), bias.empty() ? nullptr : bias.data(), y.data());
  return y;
}

inline std::vector<float> conv2d_backward_data_reference(const Conv2dGeometry& g, const std::vector<float>& w,
                                                         const std::vector<float>& dy) {
  std::vector<float> dx(g.batch * g.in_channels * g.in_h * g.in_w);
  ops::conv2d_backward_input_reference<float>(g, dy.data(), w.data(), dx.data());
  return dx;
}

inline std::vector<float> conv2d_backward_filter_reference(const Conv2dGeometry& g, const std::vector<float>& x,
                                                           const std::vector<float>& dy) {
  std::vector<float> dw(g.out_channels * g.in_per_group() * g.kernel_h * g.kernel_w);
  ops::conv2d_backward_weight_reference<float>(g, x.data(), dy.data(), dw.data());
  return dw;
}

}  // namespace scalpel::cuda::lab
