// Upsampling: per-axis source index tables (computed once per call) and plain loops over
// (sample, channel) planes; the autograd wrapper upsample() of layers/functional.h.
#include "layers/ops/upsample.h"

#include <cmath>
#include <vector>

#include "tensor/backend.h"
#include "layers/functional.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"

namespace scalpel::ops {
namespace {

// PyTorch's nearest_idx: exact shortcuts for equal size and 2x, else float32 arithmetic.
std::vector<int64_t> nearest_sources(int64_t in, int64_t out) {
  std::vector<int64_t> src(out);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t i = 0; i < out; ++i) {
    if (out == in) src[i] = i;
    else if (out == 2 * in) src[i] = i >> 1;
    else src[i] = std::min(static_cast<int64_t>(std::floor(static_cast<float>(i) * scale)), in - 1);
  }
  return src;
}

template <typename T> struct LinearTap {
  int64_t i0, i1;
  T w0, w1;
};

// PyTorch's area_pixel_compute_source_index + guard_index_and_lambda, in precision T.
template <typename T> std::vector<LinearTap<T>> linear_taps(int64_t in, int64_t out, bool align_corners) {
  std::vector<LinearTap<T>> taps(out);
  const T scale = align_corners ? (out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0))
                                : static_cast<T>(in) / static_cast<T>(out);
  for (int64_t i = 0; i < out; ++i) {
    T src = align_corners ? scale * static_cast<T>(i) : scale * (static_cast<T>(i) + T(0.5)) - T(0.5);
    if (!align_corners && src < 0) src = 0;
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
    const T l = std::min(std::max(src - static_cast<T>(i0), T(0)), T(1));
    taps[i] = {i0, std::min(i0 + 1, in - 1), T(1) - l, l};
  }
  return taps;
}

template <typename Body> void for_each_plane(int64_t planes, int64_t work_per_plane, Body&& body) {
  parallel_for(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(work_per_plane, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) body(p);
  });
}

}  // namespace

Tensor upsample_nearest_forward(const Tensor& x_in, int64_t out_h, int64_t out_w) {
  require_cpu("upsample", x_in);
  const Tensor x = x_in.contiguous();
  const int64_t in_h = x.size(2), in_w = x.size(3);
  const std::vector<int64_t> sh = nearest_sources(in_h, out_h), sw = nearest_sources(in_w, out_w);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for_each_plane(x.size(0) * x.size(1), out_h * out_w, [&](int64_t plane) {
      const T* in = px + plane * in_h * in_w;
      T* out = py + plane * out_h * out_w;
      for (int64_t h = 0; h < out_h; ++h)
        for (int64_t w = 0; w < out_w; ++w) out[h * out_w + w] = in[sh[h] * in_w + sw[w]];
    });
    return y;
  });
}

Tensor upsample_nearest_backward(const Tensor& gy_in, int64_t in_h, int64_t in_w) {
  const Tensor gy = gy_in.contiguous();
  const int64_t out_h = gy.size(2), out_w = gy.size(3);
  const std::vector<int64_t> sh = nearest_sources(in_h, out_h), sw = nearest_sources(in_w, out_w);
  return dispatch_floating(gy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor gx = Tensor::zeros({gy.size(0), gy.size(1), in_h, in_w}, gy.dtype());
    const T* pg = gy.data<T>();
    T* px = gx.data<T>();
    for_each_plane(gy.size(0) * gy.size(1), out_h * out_w, [&](int64_t plane) {
      const T* g = pg + plane * out_h * out_w;
      T* gin = px + plane * in_h * in_w;
      for (int64_t h = 0; h < out_h; ++h)
        for (int64_t w = 0; w < out_w; ++w) gin[sh[h] * in_w + sw[w]] += g[h * out_w + w];
    });
    return gx;
  });
}

Tensor upsample_bilinear_forward(const Tensor& x_in, int64_t out_h, int64_t out_w, bool align_corners) {
  require_cpu("upsample", x_in);
  const Tensor x = x_in.contiguous();
  const int64_t in_h = x.size(2), in_w = x.size(3);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const auto th = linear_taps<T>(in_h, out_h, align_corners), tw = linear_taps<T>(in_w, out_w, align_corners);
    Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for_each_plane(x.size(0) * x.size(1), 4 * out_h * out_w, [&](int64_t plane) {
      const T* in = px + plane * in_h * in_w;
      T* out = py + plane * out_h * out_w;
      for (int64_t h = 0; h < out_h; ++h) {
        const T* r0 = in + th[h].i0 * in_w;
        const T* r1 = in + th[h].i1 * in_w;
        for (int64_t w = 0; w < out_w; ++w) {
          const LinearTap<T>& c = tw[w];
          out[h * out_w + w] = th[h].w0 * (c.w0 * r0[c.i0] + c.w1 * r0[c.i1]) + th[h].w1 * (c.w0 * r1[c.i0] + c.w1 * r1[c.i1]);
        }
      }
    });
    return y;
  });
}

Tensor upsample_bilinear_backward(const Tensor& gy_in, int64_t in_h, int64_t in_w, bool align_corners) {
  const Tensor gy = gy_in.contiguous();
  const int64_t out_h = gy.size(2), out_w = gy.size(3);
  return dispatch_floating(gy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const auto th = linear_taps<T>(in_h, out_h, align_corners), tw = linear_taps<T>(in_w, out_w, align_corners);
    Tensor gx = Tensor::zeros({gy.size(0), gy.size(1), in_h, in_w}, gy.dtype());
    const T* pg = gy.data<T>();
    T* px = gx.data<T>();
    for_each_plane(gy.size(0) * gy.size(1), 4 * out_h * out_w, [&](int64_t plane) {
      const T* g = pg + plane * out_h * out_w;
      T* gin = px + plane * in_h * in_w;
      for (int64_t h = 0; h < out_h; ++h) {
        T* r0 = gin + th[h].i0 * in_w;
        T* r1 = gin + th[h].i1 * in_w;
        for (int64_t w = 0; w < out_w; ++w) {
          const LinearTap<T>& c = tw[w];
          const T v = g[h * out_w + w];
          r0[c.i0] += th[h].w0 * c.w0 * v;
          r0[c.i1] += th[h].w0 * c.w1 * v;
          r1[c.i0] += th[h].w1 * c.w0 * v;
          r1[c.i1] += th[h].w1 * c.w1 * v;
        }
      }
    });
    return gx;
  });
}

}  // namespace scalpel::ops

namespace scalpel::nn {

Tensor upsample(const Tensor& x, int64_t out_h, int64_t out_w, const std::string& mode, bool align_corners) {
  SCALPEL_CHECK(x.defined() && x.dim() == 4 && is_floating(x.dtype()),
                "upsample: expected a float input [N, C, H, W], got {}", x.defined() ? x.str() : "undefined");
  SCALPEL_CHECK(out_h > 0 && out_w > 0, "upsample: output size must be positive, got {}x{} for input {}", out_h, out_w,
                shape_str(x.shape()));
  SCALPEL_CHECK(x.size(2) > 0 && x.size(3) > 0, "upsample: input {} has an empty plane", shape_str(x.shape()));
  const int64_t in_h = x.size(2), in_w = x.size(3);
  SCALPEL_CHECK(mode == "nearest" || mode == "bilinear", "upsample: unknown mode '{}' (nearest or bilinear)", mode);
  if (!x.device().is_cpu()) {  // device branch (tensor/backend.h): the kernels' bilinear is align_corners=false
    if (mode == "bilinear" && align_corners) backend::not_implemented("upsample bilinear with align_corners", x.device());
    const UpsampleMode m = mode == "nearest" ? UpsampleMode::Nearest : UpsampleMode::Bilinear;
    const Tensor y = backend::run<backend::Op::upsample2d>(x.device(), x, m, out_h, out_w);
    return record(mode == "nearest" ? "upsample_nearest" : "upsample_bilinear", y, {x}, [m, in_h, in_w](const Tensor& gy) {
                    return std::vector<Tensor>{backend::run<backend::Op::upsample2d_backward>(gy.device(), gy, m, in_h, in_w)};
                  });
  }
  if (mode == "nearest") {
    return record("upsample_nearest", ops::upsample_nearest_forward(x, out_h, out_w), {x},
                  [in_h, in_w](const Tensor& gy) {
                    return std::vector<Tensor>{ops::upsample_nearest_backward(gy, in_h, in_w)};
                  });
  }
  return record("upsample_bilinear", ops::upsample_bilinear_forward(x, out_h, out_w, align_corners), {x},
                [in_h, in_w, align_corners](const Tensor& gy) {
                  return std::vector<Tensor>{ops::upsample_bilinear_backward(gy, in_h, in_w, align_corners)};
                });
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | upsample nearest/bilinear (align_corners) | `layers/ops/upsample.cpp` | | `upsample.cu` | |
