// Depthwise conv2d: direct loops over channel planes (see conv2d_depthwise.h).
#include "layers/ops/conv2d_depthwise.h"

#include <vector>

#include "tensor/parallel.h"

namespace scalpel::ops {

namespace {

// Column ranges per kernel column: output columns [lo, hi) read input column
// ow * stride_w + offset[kw], all inside the input.
struct ColumnPlan {
  std::vector<ConvRange> range;
  std::vector<int64_t> offset;
  explicit ColumnPlan(const Conv2dGeometry& g) : range(g.kernel_w), offset(g.kernel_w) {
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      offset[kw] = kw * g.dilation_w - g.pad_left;
      range[kw] = conv_valid_range(g.out_w, g.in_w, g.stride_w, offset[kw]);
    }
  }
};

// Enough planes per task that threading pays off on small feature maps.
int64_t plane_grain(const Conv2dGeometry& g) {
  return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, g.out_h * g.out_w * g.kernel_h * g.kernel_w));
}

}  // namespace

template <typename T>
void conv2d_forward_depthwise(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                              T* y) {
  const int64_t mult = g.out_channels / g.in_channels;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  const ColumnPlan cols(g);
  parallel_for(g.batch * g.out_channels, plane_grain(g), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / g.out_channels, oc = plane % g.out_channels;
      const T* xp = x + (n * g.in_channels + oc / mult) * in_plane;
      const T* wp = weight + oc * g.kernel_h * g.kernel_w;
      T* yp = y + plane * out_plane;
      const T b = bias ? bias[oc] : T(0);
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        T* yrow = yp + oh * g.out_w;
        std::fill(yrow, yrow + g.out_w, b);
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
          if (ih < 0 || ih >= g.in_h) continue;
          const T* xrow = xp + ih * g.in_w;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const T w = wp[kh * g.kernel_w + kw];
            const auto [lo, hi] = cols.range[kw];
            const int64_t off = cols.offset[kw];
            if (g.stride_w == 1) {
              for (int64_t ow = lo; ow < hi; ++ow) yrow[ow] += w * xrow[ow + off];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) yrow[ow] += w * xrow[ow * g.stride_w + off];
            }
          }
        }
      }
    }
  });
}

// Each task owns whole input planes (all `mult` output channels that read them): no races.
template <typename T>
void conv2d_backward_input_depthwise(const Conv2dGeometry& g, const T* grad_y, const T* weight,
                                     T* grad_x) {
  const int64_t mult = g.out_channels / g.in_channels;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  const ColumnPlan cols(g);
  parallel_for(g.batch * g.in_channels, plane_grain(g), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / g.in_channels, ic = plane % g.in_channels;
      T* gxp = grad_x + plane * in_plane;
      std::fill(gxp, gxp + in_plane, T(0));
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t oc = ic * mult + m;
        const T* gyp = grad_y + (n * g.out_channels + oc) * out_plane;
        const T* wp = weight + oc * g.kernel_h * g.kernel_w;
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          const T* gyrow = gyp + oh * g.out_w;
          for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
            const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
            if (ih < 0 || ih >= g.in_h) continue;
            T* gxrow = gxp + ih * g.in_w;
            for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
              const T w = wp[kh * g.kernel_w + kw];
              const auto [lo, hi] = cols.range[kw];
              const int64_t off = cols.offset[kw];
              for (int64_t ow = lo; ow < hi; ++ow) gxrow[ow * g.stride_w + off] += w * gyrow[ow];
            }
          }
        }
      }
    }
  });
}

// Each task owns whole output channels and sums over the batch itself: no races.
template <typename T>
void conv2d_backward_weight_depthwise(const Conv2dGeometry& g, const T* x, const T* grad_y,
                                      T* grad_weight) {
  const int64_t mult = g.out_channels / g.in_channels;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  const int64_t taps = g.kernel_h * g.kernel_w;
  const ColumnPlan cols(g);
  const int64_t grain = std::max<int64_t>(1, plane_grain(g) / std::max<int64_t>(1, g.batch));
  parallel_for(g.out_channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t oc = begin; oc < end; ++oc) {
      T* gwp = grad_weight + oc * taps;
      std::fill(gwp, gwp + taps, T(0));
      for (int64_t n = 0; n < g.batch; ++n) {
        const T* xp = x + (n * g.in_channels + oc / mult) * in_plane;
        const T* gyp = grad_y + (n * g.out_channels + oc) * out_plane;
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          const T* gyrow = gyp + oh * g.out_w;
          for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
            const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
            if (ih < 0 || ih >= g.in_h) continue;
            const T* xrow = xp + ih * g.in_w;
            for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
              const auto [lo, hi] = cols.range[kw];
              const int64_t off = cols.offset[kw];
              T acc = 0;
              for (int64_t ow = lo; ow < hi; ++ow) acc += gyrow[ow] * xrow[ow * g.stride_w + off];
              gwp[kh * g.kernel_w + kw] += acc;
            }
          }
        }
      }
    }
  });
}

#define SCALPEL_DEPTHWISE_INSTANTIATE(T)                                                        \
  template void conv2d_forward_depthwise<T>(const Conv2dGeometry&, const T*, const T*,         \
                                            const T*, T*);                                     \
  template void conv2d_backward_input_depthwise<T>(const Conv2dGeometry&, const T*, const T*,  \
                                                   T*);                                        \
  template void conv2d_backward_weight_depthwise<T>(const Conv2dGeometry&, const T*, const T*, \
                                                    T*);
SCALPEL_DEPTHWISE_INSTANTIATE(float)
SCALPEL_DEPTHWISE_INSTANTIATE(double)
#undef SCALPEL_DEPTHWISE_INSTANTIATE

}  // namespace scalpel::ops
