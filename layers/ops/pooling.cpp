// Pooling: reference loops over (sample, channel) planes, parallel across planes, and the
// autograd wrappers of layers/functional.h.
#include "layers/ops/pooling.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "tensor/backend.h"
#include "tensor/cpu_isa.h"
#include "tensor/lanes_avx512.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"

namespace scalpel::ops {
namespace {

void check_nchw(const Tensor& x, const std::string& name) {
  SCALPEL_CHECK(x.defined() && x.dim() == 4, "{}: expected an input [N, C, H, W], got {}", name,
                x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  SCALPEL_CHECK(is_floating(x.dtype()), "{}: input must be float32 or float64, got {}", name, dtype_name(x.dtype()));
}

// PyTorch's pooling_output_shape_pad_lr (dilation 1).
int64_t pooled_size(int64_t in, int64_t kernel, int64_t before, int64_t after, int64_t stride, bool ceil_mode) {
  const int64_t span = in + before + after - kernel;
  int64_t out = (ceil_mode ? (span + stride - 1) : span);
  out = (out >= 0 ? out / stride : -((-out + stride - 1) / stride)) + 1;  // floor division
  if (ceil_mode && (out - 1) * stride >= in + before) --out;
  return out;
}

// Runs body(plane) for every (n, c) plane of a [N, C, ...] tensor, in parallel.
template <typename Body> void for_each_plane(int64_t planes, int64_t work_per_plane, Body&& body) {
  parallel_for(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(work_per_plane, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) body(p);
  });
}

// Window of output (oh, ow) as PyTorch's avg pool computes it: [h0, h1) x [w0, w1) clipped
// to the input, and the size of the window clipped to the padded input (`padded_size`).
struct AvgWindow {
  int64_t h0, h1, w0, w1, padded_size;
  AvgWindow(const Pool2dGeometry& g, int64_t oh, int64_t ow) {
    h0 = oh * g.stride_h - g.pad.top;
    w0 = ow * g.stride_w - g.pad.left;
    h1 = std::min(h0 + g.kernel_h, g.in_h + g.pad.bottom);
    w1 = std::min(w0 + g.kernel_w, g.in_w + g.pad.right);
    padded_size = (h1 - h0) * (w1 - w0);
    h0 = std::max<int64_t>(h0, 0);
    w0 = std::max<int64_t>(w0, 0);
    h1 = std::min(h1, g.in_h);
    w1 = std::min(w1, g.in_w);
  }
  bool empty() const { return h0 >= h1 || w0 >= w1; }
  int64_t divisor(bool count_include_pad) const { return count_include_pad ? padded_size : (h1 - h0) * (w1 - w0); }
};

Shape out_shape(const Shape& in, int64_t h, int64_t w) { return {in[0], in[1], h, w}; }

}  // namespace

Pool2dGeometry pool2d_geometry(const Tensor& x, const nn::Pool2dOptions& o, const std::string& name) {
  check_nchw(x, name);
  Pool2dGeometry g;
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.kernel_h = o.kernel[0];
  g.kernel_w = o.kernel[1];
  g.stride_h = o.stride[0] == 0 ? o.kernel[0] : o.stride[0];
  g.stride_w = o.stride[1] == 0 ? o.kernel[1] : o.stride[1];
  g.pad = o.padding;
  SCALPEL_CHECK(g.kernel_h > 0 && g.kernel_w > 0, "{}: kernel must be positive, got {}x{}", name, g.kernel_h, g.kernel_w);
  SCALPEL_CHECK(g.stride_h > 0 && g.stride_w > 0, "{}: stride must be positive, got {}x{}", name, o.stride[0],
                o.stride[1]);
  const nn::Padding2d& p = g.pad;
  SCALPEL_CHECK(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0 && p.top <= g.kernel_h / 2 &&
                    p.bottom <= g.kernel_h / 2 && p.left <= g.kernel_w / 2 && p.right <= g.kernel_w / 2,
                "{}: padding (top {}, bottom {}, left {}, right {}) must be between 0 and half the kernel {}x{}", name,
                p.top, p.bottom, p.left, p.right, g.kernel_h, g.kernel_w);
  g.out_h = pooled_size(g.in_h, g.kernel_h, p.top, p.bottom, g.stride_h, o.ceil_mode);
  g.out_w = pooled_size(g.in_w, g.kernel_w, p.left, p.right, g.stride_w, o.ceil_mode);
  SCALPEL_CHECK(g.out_h >= 1 && g.out_w >= 1,
                "{}: kernel {}x{} is larger than the padded input {} (padding top {}, bottom {}, left {}, right {})",
                name, g.kernel_h, g.kernel_w, shape_str(x.shape()), p.top, p.bottom, p.left, p.right);
  return g;
}

// ---------------------------------------------------------------- max pool

MaxPoolResult max_pool2d_forward(const Tensor& x_in, const Pool2dGeometry& g) {
  require_cpu("max_pool2d_forward", x_in);  // the device branch is in the nn:: wrappers below
  const Tensor x = x_in.contiguous();
  const int64_t planes = x.size(0) * x.size(1), in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // Rows as integers of T's width, so that the column pass's selects vectorize with its compares.
    using Row = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    MaxPoolResult r{Tensor::empty(out_shape(x.shape(), g.out_h, g.out_w), x.dtype()),
                    Tensor::empty(out_shape(x.shape(), g.out_h, g.out_w), DType::I64)};
    const T* px = x.data<T>();
    T* py = r.y.data<T>();
    int64_t* pi = r.argmax.data<int64_t>();
    parallel_for(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(in_plane, 1)), [&](int64_t p0, int64_t p1) {
      // Per input column, the pick over the window's rows: its value and row.
      std::vector<T> value_buffer(static_cast<size_t>(g.in_w));
      std::vector<Row> row_buffer(static_cast<size_t>(g.in_w));
      T* __restrict column_value = value_buffer.data();
      Row* __restrict column_row = row_buffer.data();
      for (int64_t plane = p0; plane < p1; ++plane) {
        const T* in = px + plane * in_plane;
        T* out = py + plane * out_plane;
        int64_t* index = pi + plane * out_plane;
        for (int64_t oh = 0; oh < g.out_h; ++oh, out += g.out_w, index += g.out_w) {
          const int64_t h0 = std::max<int64_t>(oh * g.stride_h - g.pad.top, 0);
          const int64_t h1 = std::min(oh * g.stride_h - g.pad.top + g.kernel_h, g.in_h);
          if (h0 < h1) {
            std::copy_n(in + h0 * g.in_w, g.in_w, column_value);
            std::fill_n(column_row, g.in_w, static_cast<Row>(h0));
          }
          for (int64_t h = h0 + 1; h < h1; ++h) {
            const T* __restrict row = in + h * g.in_w;
            const Row row_index = static_cast<Row>(h);
            for (int64_t w = 0; w < g.in_w; ++w) {
              const T v = row[w];
              const bool take = v > column_value[w] || v != v;  // the first maximum, the last NaN
              column_value[w] = take ? v : column_value[w];
              column_row[w] = take ? row_index : column_row[w];
            }
          }
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            const int64_t w0 = std::max<int64_t>(ow * g.stride_w - g.pad.left, 0);
            const int64_t w1 = std::min(ow * g.stride_w - g.pad.left + g.kernel_w, g.in_w);
            if (h0 >= h1 || w0 >= w1) {  // a window of padding only: as the reference loop leaves it
              out[ow] = -std::numeric_limits<T>::infinity();
              index[ow] = h0 * g.in_w + w0;
              continue;
            }
            // The columns' picks combined in the row-major scan's order: a NaN wins over numbers
            // and a later NaN (lower row, then further right) over an earlier one; an equal
            // number wins only from a higher row.
            T best = column_value[w0];
            int64_t best_row = column_row[w0], best_col = w0;
            for (int64_t w = w0 + 1; w < w1; ++w) {
              const T v = column_value[w];
              const int64_t h = column_row[w];
              const bool take = best != best ? (v != v && h >= best_row)
                                             : (v != v || v > best || (v == best && h < best_row));
              best = take ? v : best;
              best_row = take ? h : best_row;
              best_col = take ? w : best_col;
            }
            out[ow] = best;
            index[ow] = best_row * g.in_w + best_col;
          }
        }
      }
    });
    return r;
  });
}

MaxPoolResult max_pool2d_forward_reference(const Tensor& x_in, const Pool2dGeometry& g) {
  require_cpu("max_pool2d_forward_reference", x_in);
  const Tensor x = x_in.contiguous();
  const int64_t planes = x.size(0) * x.size(1), in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    MaxPoolResult r{Tensor::empty(out_shape(x.shape(), g.out_h, g.out_w), x.dtype()),
                    Tensor::empty(out_shape(x.shape(), g.out_h, g.out_w), DType::I64)};
    const T* px = x.data<T>();
    T* py = r.y.data<T>();
    int64_t* pi = r.argmax.data<int64_t>();
    for_each_plane(planes, out_plane * g.kernel_h * g.kernel_w, [&](int64_t plane) {
      const T* in = px + plane * in_plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const int64_t h0 = std::max<int64_t>(oh * g.stride_h - g.pad.top, 0);
          const int64_t w0 = std::max<int64_t>(ow * g.stride_w - g.pad.left, 0);
          const int64_t h1 = std::min(oh * g.stride_h - g.pad.top + g.kernel_h, g.in_h);
          const int64_t w1 = std::min(ow * g.stride_w - g.pad.left + g.kernel_w, g.in_w);
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_index = h0 * g.in_w + w0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) {
              const T v = in[h * g.in_w + w];
              if (v > best || std::isnan(v)) {
                best = v;
                best_index = h * g.in_w + w;
              }
            }
          py[plane * out_plane + oh * g.out_w + ow] = best;
          pi[plane * out_plane + oh * g.out_w + ow] = best_index;
        }
    });
    return r;
  });
}

namespace {

// max_pool2d_values' pick, max_pick(best, v) = v > best || v is NaN ? v : best, on 16 lanes.
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline __m512 max_pick16(__m512 best, __m512 v) {
  const __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(take, best, v);
}

// out[o] = max_pick(max_pick(row[2 o], row[2 o + 1]), row[2 o + 2]) for o < n, in
// max_pool2d_values' order (so its bits): the 3-wide, stride-2 windows of resnet50's and
// densenet121's stem pools, 16 outputs per step from even and odd lanes (vpermt2ps) instead of
// three strided scalar passes. row holds 2 n + 1 values.
[[SCALPEL_TARGET_AVX512]] void max3_stride2_avx512(const float* row, int64_t n, float* out) {
  using lanes::first;
  const __m512i even = lanes::even(), odd = lanes::odd();
  for (int64_t o = 0; o < n; o += 16) {
    const int64_t valid = 2 * (n - o) + 1;  // the values row + 2 o on holds
    const float* r = row + 2 * o;
    const __m512 a = _mm512_maskz_loadu_ps(first(valid), r), b = _mm512_maskz_loadu_ps(first(valid - 16), r + 16);
    const __m512 c = _mm512_maskz_loadu_ps(first(valid - 2), r + 2);
    const __m512 d = _mm512_maskz_loadu_ps(first(valid - 18), r + 18);
    __m512 best = _mm512_permutex2var_ps(a, even, b);
    best = max_pick16(best, _mm512_permutex2var_ps(a, odd, b));
    best = max_pick16(best, _mm512_permutex2var_ps(c, even, d));
    _mm512_mask_storeu_ps(out + o, first(n - o), best);
  }
}

}  // namespace

Tensor max_pool2d_values(const Tensor& x_in, const Pool2dGeometry& g) {
  require_cpu("max_pool2d_values", x_in);
  const Tensor x = x_in.contiguous();
  const int64_t planes = x.size(0) * x.size(1), in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  // One padded row of column maxima: -inf left of the input and right of it up to the end of
  // the last window (ceil_mode may place it past the right padding).
  const int64_t row_len = std::max(g.pad.left + g.in_w, (g.out_w - 1) * g.stride_w + g.kernel_w);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const auto pick = [](T best, T v) { return v > best || v != v ? v : best; };
    static const bool avx512 = cpu_supports(Isa::avx512);
    const bool stem_windows = avx512 && g.kernel_w == 3 && g.stride_w == 2;
    Tensor y = Tensor::empty(out_shape(x.shape(), g.out_h, g.out_w), x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(in_plane, 1)), [&](int64_t p0, int64_t p1) {
      std::vector<T> row(static_cast<size_t>(row_len), -std::numeric_limits<T>::infinity());
      T* columns = row.data() + g.pad.left;
      for (int64_t plane = p0; plane < p1; ++plane) {
        const T* in = px + plane * in_plane;
        T* out = py + plane * out_plane;
        for (int64_t oh = 0; oh < g.out_h; ++oh, out += g.out_w) {
          const int64_t h0 = std::max<int64_t>(oh * g.stride_h - g.pad.top, 0);
          const int64_t h1 = std::min(oh * g.stride_h - g.pad.top + g.kernel_h, g.in_h);
          std::copy_n(in + h0 * g.in_w, g.in_w, columns);
          for (int64_t h = h0 + 1; h < h1; ++h) {
            const T* r = in + h * g.in_w;
            for (int64_t w = 0; w < g.in_w; ++w) columns[w] = pick(columns[w], r[w]);
          }
          if constexpr (std::is_same_v<T, float>) {
            if (stem_windows) {
              max3_stride2_avx512(row.data(), g.out_w, out);
              continue;
            }
          }
          for (int64_t ow = 0; ow < g.out_w; ++ow) out[ow] = row[ow * g.stride_w];
          for (int64_t kw = 1; kw < g.kernel_w; ++kw)
            for (int64_t ow = 0; ow < g.out_w; ++ow) out[ow] = pick(out[ow], row[ow * g.stride_w + kw]);
        }
      }
    });
    return y;
  });
}

Tensor max_pool2d_backward(const Tensor& gy_in, const Tensor& argmax_in, const Pool2dGeometry& g) {
  const Tensor gy = gy_in.contiguous();
  const Tensor argmax = argmax_in.contiguous();
  SCALPEL_CHECK(gy.shape() == argmax.shape(), "max_pool2d backward: gradient {} does not match indices {}",
                shape_str(gy.shape()), shape_str(argmax.shape()));
  const int64_t planes = gy.size(0) * gy.size(1), in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  return dispatch_floating(gy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor gx = Tensor::zeros(out_shape(gy.shape(), g.in_h, g.in_w), gy.dtype());
    const T* pg = gy.data<T>();
    const int64_t* pi = argmax.data<int64_t>();
    T* out = gx.data<T>();
    for_each_plane(planes, out_plane, [&](int64_t plane) {
      for (int64_t o = plane * out_plane; o < (plane + 1) * out_plane; ++o) out[plane * in_plane + pi[o]] += pg[o];
    });
    return gx;
  });
}

// ---------------------------------------------------------------- average pool

// y [N, C, out_h, out_w] from body(in, out) on each (n, c) plane of x, in parallel; body is
// generic over the element type (float, double).
template <typename Body>
Tensor avg_pool_planes(const Tensor& x_in, const Pool2dGeometry& g, int64_t work_per_plane, Body&& body) {
  require_cpu("avg_pool2d_forward", x_in);  // the device branch is in the nn:: wrappers below
  const Tensor x = x_in.contiguous();
  const int64_t planes = x.size(0) * x.size(1), in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(out_shape(x.shape(), g.out_h, g.out_w), x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for_each_plane(planes, work_per_plane, [&](int64_t plane) { body(px + plane * in_plane, py + plane * out_plane); });
    return y;
  });
}

Tensor avg_pool2d_forward_reference(const Tensor& x, const Pool2dGeometry& g, bool count_include_pad) {
  return avg_pool_planes(x, g, g.out_h * g.out_w * g.kernel_h * g.kernel_w, [&](const auto* in, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const AvgWindow win(g, oh, ow);
        T sum = 0;
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) sum += in[h * g.in_w + w];
        out[oh * g.out_w + ow] = win.empty() ? T(0) : sum / T(win.divisor(count_include_pad));
      }
  });
}

// Whole 2x2 windows at stride 2: the reference's sums in its order, without its per-window
// bounds. [1, 128, 56, 56] on Zen 4: 0.018 vs 0.254 ms.
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g, bool count_include_pad) {
  const bool halving = g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad.top == 0 &&
                       g.pad.left == 0 && 2 * g.out_h <= g.in_h && 2 * g.out_w <= g.in_w;
  if (!halving) return avg_pool2d_forward_reference(x, g, count_include_pad);
  return avg_pool_planes(x, g, g.out_h * g.out_w * 4, [&](const auto* in, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const T* r0 = in + 2 * oh * g.in_w;
      const T* r1 = r0 + g.in_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow)
        out[oh * g.out_w + ow] = (T(0) + r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) / T(4);
    }
  });
}

Tensor avg_pool2d_backward(const Tensor& gy_in, const Pool2dGeometry& g, bool count_include_pad) {
  const Tensor gy = gy_in.contiguous();
  const int64_t planes = gy.size(0) * gy.size(1), in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  return dispatch_floating(gy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor gx = Tensor::zeros(out_shape(gy.shape(), g.in_h, g.in_w), gy.dtype());
    const T* pg = gy.data<T>();
    T* out = gx.data<T>();
    for_each_plane(planes, out_plane * g.kernel_h * g.kernel_w, [&](int64_t plane) {
      T* gin = out + plane * in_plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const AvgWindow win(g, oh, ow);
          if (win.empty()) continue;
          const T share = pg[plane * out_plane + oh * g.out_w + ow] / T(win.divisor(count_include_pad));
          for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) gin[h * g.in_w + w] += share;
        }
    });
    return gx;
  });
}

// ---------------------------------------------------------------- adaptive average pool

namespace {
int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return i * in / out; }
int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// The sum of n contiguous values as 16 interleaved partial sums added pairwise at the end: a
// loop the compiler vectorizes, where one running sum is a chain of dependent adds (3-4
// cycles each). Global average pooling (squeeze-excite, every classifier head) reads whole
// planes this way: efficientnet_b0's pools at batch 8 were 6 % of its inference samples in perf.
template <typename T>
T contiguous_sum(const T* x, int64_t n) {
  constexpr int64_t kLanes = 16;
  T part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) part[l] += x[i + l];
  for (int64_t l = 0; i + l < n; ++l) part[l] += x[i + l];
  for (int64_t width = kLanes / 2; width > 0; width /= 2)
    for (int64_t l = 0; l < width; ++l) part[l] += part[l + width];
  return part[0];
}
}  // namespace

Tensor adaptive_avg_pool2d_forward(const Tensor& x_in, int64_t out_h, int64_t out_w) {
  require_cpu("adaptive_avg_pool2d_forward", x_in);  // the device branch is in the nn:: wrappers below
  const Tensor x = x_in.contiguous();
  const int64_t in_h = x.size(2), in_w = x.size(3);
  const int64_t planes = x.size(0) * x.size(1), in_plane = in_h * in_w, out_plane = out_h * out_w;
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(out_shape(x.shape(), out_h, out_w), x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for_each_plane(planes, std::max(in_plane, out_plane), [&](int64_t plane) {
      const T* in = px + plane * in_plane;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const int64_t h0 = adaptive_start(oh, in_h, out_h), h1 = adaptive_end(oh, in_h, out_h);
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t w0 = adaptive_start(ow, in_w, out_w), w1 = adaptive_end(ow, in_w, out_w);
          T sum = 0;
          if (w0 == 0 && w1 == in_w) {  // whole rows: one contiguous run
            sum = contiguous_sum(in + h0 * in_w, (h1 - h0) * in_w);
          } else {
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) sum += in[h * in_w + w];
          }
          py[plane * out_plane + oh * out_w + ow] = sum / T((h1 - h0) * (w1 - w0));
        }
      }
    });
    return y;
  });
}

Tensor adaptive_avg_pool2d_backward(const Tensor& gy_in, int64_t in_h, int64_t in_w) {
  const Tensor gy = gy_in.contiguous();
  const int64_t out_h = gy.size(2), out_w = gy.size(3);
  const int64_t planes = gy.size(0) * gy.size(1), in_plane = in_h * in_w, out_plane = out_h * out_w;
  return dispatch_floating(gy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor gx = Tensor::zeros(out_shape(gy.shape(), in_h, in_w), gy.dtype());
    const T* pg = gy.data<T>();
    T* out = gx.data<T>();
    for_each_plane(planes, std::max(in_plane, out_plane), [&](int64_t plane) {
      T* gin = out + plane * in_plane;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const int64_t h0 = adaptive_start(oh, in_h, out_h), h1 = adaptive_end(oh, in_h, out_h);
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t w0 = adaptive_start(ow, in_w, out_w), w1 = adaptive_end(ow, in_w, out_w);
          const T share = pg[plane * out_plane + oh * out_w + ow] / T((h1 - h0) * (w1 - w0));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) gin[h * in_w + w] += share;
        }
      }
    });
    return gx;
  });
}

}  // namespace scalpel::ops

namespace scalpel::nn {

using V = std::vector<Tensor>;

// The device branch of the pooling ops (tensor/backend.h), forward and backward: the kernels
// take symmetric padding and floor-mode output sizes.
static Tensor device_pool2d(const Tensor& x, const ops::Pool2dGeometry& g, bool max, bool count_include_pad,
                          const std::string& name) {
  Pool2dShape s;
  s.n = x.size(0), s.c = x.size(1), s.h = g.in_h, s.w = g.in_w;
  s.kernel_h = g.kernel_h, s.kernel_w = g.kernel_w, s.stride_h = g.stride_h, s.stride_w = g.stride_w;
  s.pad_h = g.pad.top, s.pad_w = g.pad.left, s.count_include_pad = count_include_pad;
  if (g.pad.top != g.pad.bottom || g.pad.left != g.pad.right || s.out_h() != g.out_h || s.out_w() != g.out_w)
    backend::not_implemented(name + " with asymmetric padding or ceil_mode", x.device());
  if (max) {
    backend::MaxPoolOutput r = backend::run<backend::Op::max_pool2d>(x.device(), x, s);
    return record("max_pool2d", r.y, {x}, [s, indices = r.indices](const Tensor& gy) {
      return V{backend::run<backend::Op::max_pool2d_backward>(gy.device(), gy, indices, s)};
    });
  }
  return record(name.c_str(), backend::run<backend::Op::avg_pool2d>(x.device(), x, s), {x}, [s](const Tensor& gy) {
    return V{backend::run<backend::Op::avg_pool2d_backward>(gy.device(), gy, s)};
  });
}

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options, const std::string& name) {
  const ops::Pool2dGeometry g = ops::pool2d_geometry(x, options, name);
  if (!x.device().is_cpu()) {
    // The kernels take symmetric padding and floor mode. Padding a max pool means -inf, so
    // other geometries (TF "SAME" pools, Xception's) pool an explicitly -inf-padded input
    // (extended past the bottom/right for ceil_mode's last window) without padding.
    const int64_t extra_h = std::max<int64_t>(0, (g.out_h - 1) * g.stride_h + g.kernel_h - (g.in_h + g.pad.top + g.pad.bottom));
    const int64_t extra_w = std::max<int64_t>(0, (g.out_w - 1) * g.stride_w + g.kernel_w - (g.in_w + g.pad.left + g.pad.right));
    if (g.pad.top != g.pad.bottom || g.pad.left != g.pad.right || extra_h > 0 || extra_w > 0) {
      Pool2dOptions unpadded = options;
      unpadded.padding = {};
      unpadded.ceil_mode = false;
      const Padding2d pad{g.pad.top, g.pad.bottom + extra_h, g.pad.left, g.pad.right + extra_w};
      return max_pool2d(pad2d(x, pad, -std::numeric_limits<double>::infinity()), unpadded, name);
    }
    return device_pool2d(x, g, true, false, name);
  }
  if (!any_requires_grad({x})) return ops::max_pool2d_values(x, g);
  ops::MaxPoolResult r = ops::max_pool2d_forward(x, g);
  return record("max_pool2d", r.y, {x}, [argmax = r.argmax, g](const Tensor& gy) {
    return V{ops::max_pool2d_backward(gy, argmax, g)};
  });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options, const std::string& name) {
  const ops::Pool2dGeometry g = ops::pool2d_geometry(x, options, name);
  const bool include = options.count_include_pad;
  if (!x.device().is_cpu()) return device_pool2d(x, g, false, include, name);
  return record("avg_pool2d", ops::avg_pool2d_forward(x, g, include), {x}, [g, include](const Tensor& gy) {
    return V{ops::avg_pool2d_backward(gy, g, include)};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  SCALPEL_CHECK(x.defined() && x.dim() == 4 && is_floating(x.dtype()),
                "adaptive_avg_pool2d: expected a float input [N, C, H, W], got {}", x.defined() ? x.str() : "undefined");
  SCALPEL_CHECK(out_h > 0 && out_w > 0, "adaptive_avg_pool2d: output size must be positive, got {}x{}", out_h, out_w);
  SCALPEL_CHECK(x.size(2) > 0 && x.size(3) > 0, "adaptive_avg_pool2d: input {} has an empty plane",
                shape_str(x.shape()));
  const int64_t in_h = x.size(2), in_w = x.size(3);
  if (!x.device().is_cpu()) {
    // On the device only when every output cell averages a whole, equal window (global
    // pooling included): then it is avg_pool2d with kernel = stride = in / out.
    if (in_h % out_h != 0 || in_w % out_w != 0)
      backend::not_implemented(fmt::format("adaptive_avg_pool2d {}x{} -> {}x{}", in_h, in_w, out_h, out_w), x.device());
    ops::Pool2dGeometry g;
    g.in_h = in_h, g.in_w = in_w, g.out_h = out_h, g.out_w = out_w;
    g.kernel_h = g.stride_h = in_h / out_h;
    g.kernel_w = g.stride_w = in_w / out_w;
    return device_pool2d(x, g, false, true, "adaptive_avg_pool2d");
  }
  return record("adaptive_avg_pool2d", ops::adaptive_avg_pool2d_forward(x, out_h, out_w), {x},
                [in_h, in_w](const Tensor& gy) { return V{ops::adaptive_avg_pool2d_backward(gy, in_h, in_w)}; });
}

Tensor global_avg_pool(const Tensor& x) {
  SCALPEL_CHECK(x.defined() && x.dim() == 4, "global_avg_pool: expected an input [N, C, H, W], got {}",
                x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  return reshape(adaptive_avg_pool2d(x, 1, 1), {x.size(0), x.size(1)});
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | max/avg/adaptive/global pooling (ceil_mode, count_include_pad as PyTorch) | `layers/ops/pooling.cpp` | | `pool.cu` | |
