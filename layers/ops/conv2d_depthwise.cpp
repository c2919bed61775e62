// Depthwise conv2d: direct loops over channel planes (see conv2d_depthwise.h).
#include "layers/ops/conv2d_depthwise.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "layers/ops/batch_tree.h"
#include "layers/ops/conv2d_depthwise_avx512.h"
#include "tensor/cpu_isa.h"
#include "tensor/error.h"
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

// A task's share of one kernel: planes [begin, end) (forward: output planes n*C_out + oc;
// input grad: input planes n*C_in + ic) or output channels [begin, end) (weight grad).
// `a` and `b` are the kernel's two inputs in the order of its public signature.
template <typename T>
struct Args {
  const Conv2dGeometry& g;
  const ColumnPlan& cols;
  const T* a;
  const T* b;
  const T* bias;
  T* out;
  ConvEpilogue<T> epilogue;  // forward only
};

// Small stride-1 planes (7x7 .. 28x28 in MobileNet V2 / EfficientNet): row by row, each of the
// kH*kW taps is a loop of only OW elements, and loop overhead dominates. Instead the input
// plane is copied once into a zero-padded buffer of Hp x Wp (Wp = OW + dilation_w*(kW-1)),
// and the taps run over the whole plane as one flat loop on that grid,
//   acc[oh*Wp + ow] += w[kh][kw] * padded[(oh + kh*dh)*Wp + ow + kw*dw],
// computing Wp - OW junk columns per row that the copy-out drops. Same sums in the same order.
bool use_flat_planes(const Conv2dGeometry& g) { return g.stride_h == 1 && g.stride_w == 1 && g.out_w <= 32; }

template <typename T>
[[gnu::always_inline]] inline void forward_plane_flat(const Args<T>& args, int64_t plane, const T* x, const T* w,
                                                      T bias, T* y) {
  const Conv2dGeometry& g = args.g;
  const int64_t wp = g.out_w + g.dilation_w * (g.kernel_w - 1), hp = g.out_h + g.dilation_h * (g.kernel_h - 1);
  const int64_t flat = g.out_h * wp;
  thread_local std::vector<T> padded, acc;
  // The last tap reads up to dilation_w*(kW-1) past the padded plane: keep those zeros too.
  padded.assign(hp * wp + g.dilation_w * (g.kernel_w - 1), T(0));
  acc.resize(flat);
  for (int64_t r = 0; r < hp; ++r) {
    const int64_t ih = r - g.pad_top;
    if (ih < 0 || ih >= g.in_h) continue;
    const int64_t c0 = std::max<int64_t>(0, g.pad_left), i0 = std::max<int64_t>(0, -g.pad_left);
    const int64_t n = std::min(g.in_w - i0, wp - c0);
    if (n > 0) std::copy(x + ih * g.in_w + i0, x + ih * g.in_w + i0 + n, padded.data() + r * wp + c0);
  }
  T* a = acc.data();
  std::fill(a, a + flat, bias);
  for (int64_t kh = 0; kh < g.kernel_h; ++kh)
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const T wk = w[kh * g.kernel_w + kw];
      const T* src = padded.data() + kh * g.dilation_h * wp + kw * g.dilation_w;
      for (int64_t i = 0; i < flat; ++i) a[i] += wk * src[i];
    }
  const GemmEpilogue<T> epilogue{nullptr, args.epilogue.activation, args.epilogue.residual, 0};
  const int64_t out_plane = g.out_h * g.out_w;
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    T* yrow = y + oh * g.out_w;
    std::copy(a + oh * wp, a + oh * wp + g.out_w, yrow);
    if (!epilogue.empty()) apply_epilogue(epilogue, 0, plane * out_plane + oh * g.out_w, g.out_w, yrow);
  }
}

template <typename T>
[[gnu::always_inline]] inline void forward_planes(const Args<T>& args, int64_t begin, int64_t end) {
  const Conv2dGeometry& g = args.g;
  const int64_t mult = g.out_channels / g.in_channels;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  const bool flat = use_flat_planes(g);
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.out_channels, oc = plane % g.out_channels;
    const T* xp = args.a + (n * g.in_channels + oc / mult) * in_plane;
    const T* wp = args.b + oc * g.kernel_h * g.kernel_w;
    T* yp = args.out + plane * out_plane;
    const T bias = args.bias ? args.bias[oc] : T(0);
    if (flat) {
      forward_plane_flat(args, plane, xp, wp, bias, yp);
      continue;
    }
    const GemmEpilogue<T> epilogue{nullptr, args.epilogue.activation, args.epilogue.residual, 0};
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      T* yrow = yp + oh * g.out_w;
      std::fill(yrow, yrow + g.out_w, bias);
      for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
        const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
        if (ih < 0 || ih >= g.in_h) continue;
        const T* xrow = xp + ih * g.in_w;
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const T w = wp[kh * g.kernel_w + kw];
          const auto [lo, hi] = args.cols.range[kw];
          const int64_t off = args.cols.offset[kw];
          if (g.stride_w == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) yrow[ow] += w * xrow[ow + off];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) yrow[ow] += w * xrow[ow * g.stride_w + off];
          }
        }
      }
      if (!epilogue.empty())  // while the row is hot
        apply_epilogue(epilogue, 0, plane * out_plane + oh * g.out_w, g.out_w, yrow);
    }
  }
}

// Each task owns whole input planes (all `mult` output channels that read them): no races.
template <typename T>
[[gnu::always_inline]] inline void input_grad_planes(const Args<T>& args, int64_t begin, int64_t end) {
  const Conv2dGeometry& g = args.g;
  const int64_t mult = g.out_channels / g.in_channels;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.in_channels, ic = plane % g.in_channels;
    T* gxp = args.out + plane * in_plane;
    std::fill(gxp, gxp + in_plane, T(0));
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t oc = ic * mult + m;
      const T* gyp = args.a + (n * g.out_channels + oc) * out_plane;
      const T* wp = args.b + oc * g.kernel_h * g.kernel_w;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const T* gyrow = gyp + oh * g.out_w;
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
          if (ih < 0 || ih >= g.in_h) continue;
          T* gxrow = gxp + ih * g.in_w;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const T w = wp[kh * g.kernel_w + kw];
            const auto [lo, hi] = args.cols.range[kw];
            const int64_t off = args.cols.offset[kw];
            if (g.stride_w == 1) {
              for (int64_t ow = lo; ow < hi; ++ow) gxrow[ow + off] += w * gyrow[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) gxrow[ow * g.stride_w + off] += w * gyrow[ow];
            }
          }
        }
      }
    }
  }
}

// Each task owns whole output channels and sums over the batch itself: no races. Products
// are summed per tap and output column first (a vectorizable elementwise update; a running
// scalar sum would pin the loop to one lane) and the row of partial sums is added up last.
template <typename T>
[[gnu::always_inline]] inline void weight_grad_channels(const Args<T>& args, int64_t begin, int64_t end) {
  const Conv2dGeometry& g = args.g;
  const int64_t mult = g.out_channels / g.in_channels;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  const int64_t taps = g.kernel_h * g.kernel_w;
  std::vector<T> partial(taps * g.out_w);
  for (int64_t oc = begin; oc < end; ++oc) {
    std::fill(partial.begin(), partial.end(), T(0));
    for (int64_t n = 0; n < g.batch; ++n) {
      const T* xp = args.a + (n * g.in_channels + oc / mult) * in_plane;
      const T* gyp = args.b + (n * g.out_channels + oc) * out_plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const T* gyrow = gyp + oh * g.out_w;
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
          if (ih < 0 || ih >= g.in_h) continue;
          const T* xrow = xp + ih * g.in_w;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const auto [lo, hi] = args.cols.range[kw];
            const int64_t off = args.cols.offset[kw];
            T* acc = partial.data() + (kh * g.kernel_w + kw) * g.out_w;
            if (g.stride_w == 1) {
              for (int64_t ow = lo; ow < hi; ++ow) acc[ow] += gyrow[ow] * xrow[ow + off];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) acc[ow] += gyrow[ow] * xrow[ow * g.stride_w + off];
            }
          }
        }
      }
    }
    for (int64_t t = 0; t < taps; ++t) {
      const T* acc = partial.data() + t * g.out_w;
      T sum = 0;
      for (int64_t ow = 0; ow < g.out_w; ++ow) sum += acc[ow];
      args.out[oc * taps + t] = sum;
    }
  }
}

// The loops above compiled for AVX-512 and for AVX2 besides the baseline build; the widest
// the CPU supports runs unless a test forces another. Only vector width changes: the AVX2
// variant is compiled without FMA, so the arithmetic is the same.
template <typename T>
using RangeFn = void (*)(const Args<T>&, int64_t, int64_t);

std::atomic<Isa> g_isa{best_isa()};

#define SCALPEL_DEPTHWISE_ISA_VARIANTS(fn)                                                       \
  template <typename T>                                                                          \
  [[SCALPEL_TARGET_AVX512]] void fn##_avx512(const Args<T>& a, int64_t begin, int64_t end) {      \
    fn(a, begin, end);                                                                           \
  }                                                                                              \
  template <typename T>                                                                          \
  [[SCALPEL_TARGET_AVX2_NO_FMA]] void fn##_avx2(const Args<T>& a, int64_t begin, int64_t end) {   \
    fn(a, begin, end);                                                                           \
  }                                                                                              \
  template <typename T>                                                                          \
  void fn##_baseline(const Args<T>& a, int64_t begin, int64_t end) {                             \
    fn(a, begin, end);                                                                           \
  }                                                                                              \
  template <typename T>                                                                          \
  RangeFn<T> fn##_variant() {                                                                    \
    switch (g_isa.load()) {                                                                      \
      case Isa::avx512: return fn##_avx512<T>;                                                   \
      case Isa::avx2: return fn##_avx2<T>;                                                       \
      default: return fn##_baseline<T>;                                                          \
    }                                                                                            \
  }
SCALPEL_DEPTHWISE_ISA_VARIANTS(forward_planes)
SCALPEL_DEPTHWISE_ISA_VARIANTS(input_grad_planes)
SCALPEL_DEPTHWISE_ISA_VARIANTS(weight_grad_channels)
#undef SCALPEL_DEPTHWISE_ISA_VARIANTS

}  // namespace

Isa depthwise_isa() { return g_isa; }

void set_depthwise_isa(Isa level) {
  SCALPEL_CHECK(cpu_supports(level), "depthwise conv: this CPU cannot run the {} variant", isa_name(level));
  g_isa = level;
}

void reset_depthwise_isa() { g_isa = best_isa(); }

namespace {
// Whether the AVX-512 row kernels (float) run g: that level is selected and they cover g.
bool use_avx512_rows(const Conv2dGeometry& g) { return g_isa.load() == Isa::avx512 && depthwise_avx512::covers(g); }
}  // namespace

template <typename T>
void conv2d_forward_depthwise(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                              T* y, const ConvEpilogue<T>& epilogue) {
  const ColumnPlan cols(g);
  const Args<T> args{g, cols, x, weight, bias, y, epilogue};
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512_rows(g)) {
      const depthwise_avx512::Operands o{g, x, weight, bias, y, epilogue};
      parallel_for(g.batch * g.out_channels, plane_grain(g),
                   [&](int64_t begin, int64_t end) { depthwise_avx512::forward_planes(o, begin, end); });
      return;
    }
  }
  const RangeFn<T> fn = forward_planes_variant<T>();
  parallel_for(g.batch * g.out_channels, plane_grain(g),
               [&](int64_t begin, int64_t end) { fn(args, begin, end); });
}

template <typename T>
void conv2d_backward_input_depthwise(const Conv2dGeometry& g, const T* grad_y, const T* weight,
                                     T* grad_x) {
  const ColumnPlan cols(g);
  const Args<T> args{g, cols, grad_y, weight, nullptr, grad_x, {}};
  if constexpr (std::is_same_v<T, float>) {
    if (g.out_channels == g.in_channels && use_avx512_rows(g)) {
      const depthwise_avx512::Operands o{g, grad_y, weight, nullptr, grad_x, {}};
      parallel_for(g.batch * g.in_channels, plane_grain(g),
                   [&](int64_t begin, int64_t end) { depthwise_avx512::input_grad_planes(o, begin, end); });
      return;
    }
  }
  const RangeFn<T> fn = input_grad_planes_variant<T>();
  parallel_for(g.batch * g.in_channels, plane_grain(g),
               [&](int64_t begin, int64_t end) { fn(args, begin, end); });
}

// Each sample's gradient into a row of its own (the kernels above with a batch of 1), then the
// rows added as layers/ops/batch_tree.h's tree, so that data-parallel ranks get one process's
// bits. The rows take batch x C_out x kH x kW entries: depthwise weights are small.
template <typename T>
void conv2d_backward_weight_depthwise(const Conv2dGeometry& g, const T* x, const T* grad_y,
                                      T* grad_weight) {
  const int64_t wsize = g.out_channels * g.kernel_h * g.kernel_w;
  if (g.batch == 0) {
    std::fill(grad_weight, grad_weight + wsize, T(0));
    return;
  }
  Conv2dGeometry one = g;
  one.batch = 1;
  const int64_t in_sample = g.in_channels * g.in_h * g.in_w, out_sample = g.out_channels * g.out_h * g.out_w;
  thread_local std::vector<T> per_sample;
  if (g.batch > 1) per_sample.resize(g.batch * wsize);
  T* const rows = g.batch > 1 ? per_sample.data() : grad_weight;
  // Work items: (sample, output channel) pairs, sample-major; each call covers one sample's channels.
  auto run = [&](auto&& channels) {
    parallel_for(g.batch * g.out_channels, plane_grain(g), [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end;) {
        const int64_t n = item / g.out_channels, oc0 = item % g.out_channels;
        const int64_t oc1 = std::min(g.out_channels, oc0 + (end - item));
        channels(n, oc0, oc1);
        item += oc1 - oc0;
      }
    });
  };
  const ColumnPlan cols(g);
  bool done = false;
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512_rows(g)) {
      run([&](int64_t n, int64_t oc0, int64_t oc1) {
        const depthwise_avx512::Operands o{one, x + n * in_sample, grad_y + n * out_sample, nullptr, rows + n * wsize,
                                           {}};
        depthwise_avx512::weight_grad_channels(o, oc0, oc1);
      });
      done = true;
    }
  }
  if (!done) {
    const RangeFn<T> fn = weight_grad_channels_variant<T>();
    run([&](int64_t n, int64_t oc0, int64_t oc1) {
      const Args<T> args{one, cols, x + n * in_sample, grad_y + n * out_sample, nullptr, rows + n * wsize, {}};
      fn(args, oc0, oc1);
    });
  }
  if (g.batch == 1) return;
  batch_tree_sum_rows(int64_t{0}, g.batch, wsize, rows);
  std::copy(rows, rows + wsize, grad_weight);
}

#define SCALPEL_DEPTHWISE_INSTANTIATE(T)                                                        \
  template void conv2d_forward_depthwise<T>(const Conv2dGeometry&, const T*, const T*,         \
                                            const T*, T*, const ConvEpilogue<T>&);             \
  template void conv2d_backward_input_depthwise<T>(const Conv2dGeometry&, const T*, const T*,  \
                                                   T*);                                        \
  template void conv2d_backward_weight_depthwise<T>(const Conv2dGeometry&, const T*, const T*, \
                                                    T*);
SCALPEL_DEPTHWISE_INSTANTIATE(float)
SCALPEL_DEPTHWISE_INSTANTIATE(double)
#undef SCALPEL_DEPTHWISE_INSTANTIATE

}  // namespace scalpel::ops
