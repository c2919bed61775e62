#pragma once
// CPU references on the CUDA backend's Conv2dShape, for the kernel lab and the CUDA tests:
// the plain loops of layers/ops/conv2d.h (ops::ConvEngine::Reference), which every CPU and
// CUDA engine is tested against. Float32 in and out; an empty bias means none.
#include <vector>

#include "cuda/backend.h"
#include "layers/ops/conv2d.h"

namespace scalpel::cuda::lab {

inline ops::Conv2dGeometry geometry_of(const Conv2dShape& s) {
  ops::Conv2dGeometry g;
  g.batch = s.n, g.in_channels = s.c, g.in_h = s.h, g.in_w = s.w;
  g.out_channels = s.k, g.kernel_h = s.r, g.kernel_w = s.s;
  g.stride_h = s.stride_h, g.stride_w = s.stride_w, g.pad_top = s.pad_h, g.pad_left = s.pad_w;
  g.dilation_h = s.dilation_h, g.dilation_w = s.dilation_w, g.groups = s.groups;
  g.out_h = s.out_h(), g.out_w = s.out_w();
  return g;
}

inline std::vector<float> conv2d_forward_reference(const Conv2dShape& s, const std::vector<float>& x,
                                                   const std::vector<float>& w,
                                                   const std::vector<float>& bias) {
  std::vector<float> y(s.n * s.k * s.out_h() * s.out_w());
  ops::conv2d_forward<float>(ops::ConvEngine::Reference, geometry_of(s), x.data(), w.data(),
                             bias.empty() ? nullptr : bias.data(), y.data());
  return y;
}

inline std::vector<float> conv2d_backward_data_reference(const Conv2dShape& s, const std::vector<float>& w,
                                                         const std::vector<float>& dy) {
  std::vector<float> dx(s.n * s.c * s.h * s.w);
  ops::conv2d_backward_input<float>(ops::ConvEngine::Reference, geometry_of(s), dy.data(), w.data(),
                                    dx.data());
  return dx;
}

inline std::vector<float> conv2d_backward_filter_reference(const Conv2dShape& s, const std::vector<float>& x,
                                                           const std::vector<float>& dy) {
  std::vector<float> dw(s.k * (s.c / s.groups) * s.r * s.s);
  ops::conv2d_backward_weight<float>(ops::ConvEngine::Reference, geometry_of(s), x.data(), dy.data(),
                                     dw.data());
  return dw;
}

}  // namespace scalpel::cuda::lab
