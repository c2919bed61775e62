// AVX-512 float kernels for the depthwise layers of MobileNet V2 / EfficientNet (declared in
// conv2d_depthwise_avx512.h; the portable loops and the dispatch are in conv2d_depthwise.cpp).
// Compiled for the baseline ISA like the rest of the project: only the functions marked
// SCALPEL_TARGET_AVX512 (tensor/cpu_isa.h) use AVX-512.
// Square 3x3, 5x5 or 7x7 kernels, stride 1 or 2 in both directions, dilation 1, any padding.
// Vectorized along output columns, 16 per register: a load's lanes outside [0, W) are masked
// off and read as zero, which is the conv's zero padding, so the loops have no bounds checks
// and no scalar tails; input rows outside [0, H) point at a row of zeros. Each input row
// loaded feeds every output row of the pass that uses it, from registers. Planes of a few
// short rows (7x7) run as one flat run of pixels instead (FlatPlan).
#include "layers/ops/conv2d_depthwise_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "tensor/cpu_isa.h"
#include "tensor/epilogue_avx512.h"

namespace scalpel::ops::depthwise_avx512 {
namespace {

constexpr int64_t kLanes = 16;

// The lanes of a 16-float load at position c of a row of `width` that lie inside the row.
inline __mmask16 row_mask(int64_t c, int64_t width) {
  const int64_t lo = std::clamp<int64_t>(-c, 0, kLanes), hi = std::clamp<int64_t>(width - c, 0, kLanes);
  return hi > lo ? __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1)) : __mmask16(0);
}

[[SCALPEL_TARGET_AVX512]] inline __m512 load_masked(const float* row, int64_t c, __mmask16 mask) {
  return _mm512_maskz_loadu_ps(mask, row + c);
}

// Stride 2: the input window of 48 columns w[0..48) = A|B|C under 16 output columns holds the
// tap kw = 2q + p of lane i at w[2(i + q) + p]. even/odd de-interleave A|B once per row
// (P_p[j] = w[2j + p]); taps with q > 0 shift P_p by q lanes and take the last q from C.
struct Stride2Index {
  alignas(64) int32_t even[16], odd[16], shifted[2][4][16];  // [p][q]
  Stride2Index() {
    for (int i = 0; i < 16; ++i) {
      even[i] = 2 * i;
      odd[i] = 2 * i + 1;
      for (int p = 0; p < 2; ++p)
        for (int q = 0; q < 4; ++q) shifted[p][q][i] = i + q < 16 ? i + q : 16 + 2 * (i + q - 16) + p;
    }
  }
};
const Stride2Index kStride2Index;

// The K taps of one input row under 16 output columns [ow0, ow0 + 16): tap[kw] lane i holds
// input column (ow0 + i) * S - pad_left + kw, zero outside the row.
template <int K, int S>
class RowTaps {
 public:
  [[SCALPEL_TARGET_AVX512, gnu::always_inline]] RowTaps() {
    if constexpr (S == 2) {
      even_ = _mm512_load_si512(kStride2Index.even);
      odd_ = _mm512_load_si512(kStride2Index.odd);
      for (int q = 1; q < (K + 1) / 2; ++q)
        for (int p = 0; p < 2; ++p) shifted_[p][q] = _mm512_load_si512(kStride2Index.shifted[p][q]);
    }
  }
  // Where the loads start for this column block and which of their lanes lie in the row.
  [[SCALPEL_TARGET_AVX512, gnu::always_inline]] void set_columns(int64_t ow0, int64_t pad_left, int64_t in_w) {
    constexpr int kLoads = S == 1 ? K : 3;  // stride 2: the window A|B|C
    for (int i = 0; i < kLoads; ++i) {
      start_[i] = S == 1 ? ow0 + i - pad_left : 2 * ow0 - pad_left + i * kLanes;
      mask_[i] = row_mask(start_[i], in_w);
    }
  }
  [[SCALPEL_TARGET_AVX512, gnu::always_inline]] void load(const float* row, __m512 (&tap)[K]) const {
    if constexpr (S == 1) {
      for (int kw = 0; kw < K; ++kw) tap[kw] = load_masked(row, start_[kw], mask_[kw]);
    } else {
      const __m512 a = load_masked(row, start_[0], mask_[0]), b = load_masked(row, start_[1], mask_[1]);
      const __m512 c = load_masked(row, start_[2], mask_[2]);
      tap[0] = _mm512_permutex2var_ps(a, even_, b);
      tap[1] = _mm512_permutex2var_ps(a, odd_, b);
      for (int kw = 2; kw < K; ++kw) tap[kw] = _mm512_permutex2var_ps(tap[kw % 2], shifted_[kw % 2][kw / 2], c);
    }
  }

 private:
  __m512i even_, odd_, shifted_[2][(K + 1) / 2];
  int64_t start_[K];
  __mmask16 mask_[K];
};

// One plane's operands for the row kernels. Output rows [oh0, oh0 + R) read input rows
// oh0 * S - pad_top + t, t < (R - 1) * S + K.
// The forward's residual and activation (one activates_in_registers covers) are applied in
// registers before the store; the other activations run on the stored rows (forward_planes).
struct PlaneJob {
  const float* x;      // input plane [in_h, in_w]
  const float* zeros;  // >= in_w zeros, standing in for rows outside the input
  const float* w;      // K*K taps
  float bias;
  float* y;            // output plane [out_h, out_w]
  int64_t in_h, in_w, out_w, pad_top, pad_left;
  const float* residual;  // null, or the plane's residual [out_h, out_w], added before the activation
  EpilogueActivation activation;
};

// R output rows starting at oh0 (all of them inside the output), every column.
template <int K, int S, int R>
[[SCALPEL_TARGET_AVX512]] void forward_rows(const PlaneJob& j, int64_t oh0) {
  constexpr int kRows = (R - 1) * S + K;
  const float* rows[kRows];
  for (int t = 0; t < kRows; ++t) {
    const int64_t ih = oh0 * S - j.pad_top + t;
    rows[t] = ih >= 0 && ih < j.in_h ? j.x + ih * j.in_w : j.zeros;
  }
  __m512 w[K * K];
  for (int i = 0; i < K * K; ++i) w[i] = _mm512_set1_ps(j.w[i]);
  RowTaps<K, S> taps;
  for (int64_t ow0 = 0; ow0 < j.out_w; ow0 += kLanes) {
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_set1_ps(j.bias);
    taps.set_columns(ow0, j.pad_left, j.in_w);
#pragma GCC unroll 16
    for (int t = 0; t < kRows; ++t) {
      __m512 tap[K];
      taps.load(rows[t], tap);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const int kh = t - r * S;
        if (kh < 0 || kh >= K) continue;  // resolved at compile time
        for (int kw = 0; kw < K; ++kw) acc[r] = _mm512_fmadd_ps(w[kh * K + kw], tap[kw], acc[r]);
      }
    }
    const __mmask16 out_mask = row_mask(ow0, j.out_w);
    for (int r = 0; r < R; ++r) {
      const int64_t at = (oh0 + r) * j.out_w + ow0;
      __m512 v = acc[r];
      if (j.residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(out_mask, j.residual + at));
      _mm512_mask_storeu_ps(j.y + at, out_mask, activate16(j.activation, v));
    }
  }
}

// Small planes at stride 1 whose input rows are as long as the output rows (same padding
// across): output pixel p = oh * W + ow reads tap (kh, kw) at input pixel p + (kh - pad_top) *
// W + kw - pad_left, one offset per tap whatever the row. So 16 consecutive output pixels,
// across row ends, are one masked load per tap; the mask drops the lanes whose tap falls
// outside the input's rows or columns (the zero padding) and the lanes past the plane. A 7x7
// plane is then 4 vectors per tap where the row kernels take 7 rows of 7 lanes, and the taps
// are broadcast once per plane. Rows of 16 or more fill the row kernels' vectors, and on
// larger planes those reuse each loaded row for several output rows: they keep those.
constexpr int64_t kFlatMaxVectors = 4, kFlatMaxTaps = 7 * 7;

struct FlatPlan {
  int64_t vectors = 0, offset[kFlatMaxTaps] = {};  // output vectors; input offset per tap
  __mmask16 tap_mask[kFlatMaxVectors][kFlatMaxTaps] = {}, out_mask[kFlatMaxVectors] = {};
};

// The plan for a K x K stride-S plane job; nullopt where the row kernels run it: stride 2,
// in_w != out_w, rows of 16 or more, more than kFlatMaxVectors vectors of output.
std::optional<FlatPlan> flat_plan(int64_t K, int64_t S, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                                  int64_t pad_top, int64_t pad_left) {
  const int64_t pixels = out_h * out_w;
  if (S != 1 || in_w != out_w || out_w >= kLanes || pixels > kFlatMaxVectors * kLanes) return std::nullopt;
  FlatPlan plan;
  plan.vectors = (pixels + kLanes - 1) / kLanes;
  for (int64_t kh = 0; kh < K; ++kh)
    for (int64_t kw = 0; kw < K; ++kw) {
      const int64_t t = kh * K + kw;
      plan.offset[t] = (kh - pad_top) * in_w + kw - pad_left;
      for (int64_t v = 0; v < plan.vectors; ++v)
        plan.tap_mask[v][t] = flat_lanes_inside(v * kLanes, pixels, out_w, 0, kh - pad_top, kw - pad_left, in_h, in_w);
    }
  for (int64_t v = 0; v < plan.vectors; ++v) plan.out_mask[v] = row_mask(v * kLanes, pixels);
  return plan;
}

// The whole output plane of j, as `plan` lays it out.
template <int K>
[[SCALPEL_TARGET_AVX512]] void forward_flat(const FlatPlan& plan, const PlaneJob& j) {
  __m512 w[K * K];
  for (int t = 0; t < K * K; ++t) w[t] = _mm512_set1_ps(j.w[t]);
  for (int64_t v = 0; v < plan.vectors; ++v) {
    const float* x = j.x + v * kLanes;
    __m512 acc = _mm512_set1_ps(j.bias);
#pragma GCC unroll 49
    for (int t = 0; t < K * K; ++t)
      acc = _mm512_fmadd_ps(w[t], _mm512_maskz_loadu_ps(plan.tap_mask[v][t], x + plan.offset[t]), acc);
    if (j.residual) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(plan.out_mask[v], j.residual + v * kLanes));
    _mm512_mask_storeu_ps(j.y + v * kLanes, plan.out_mask[v], activate16(j.activation, acc));
  }
}

// grad_weight[oc] = sum over the batch and the output plane of grad_y * the tap's input, in
// K*K vector accumulators (a lane per output column) added up at the end. Lanes past the
// output row's end are left out of the sums (masked FMA).
template <int K, int S>
[[SCALPEL_TARGET_AVX512]] void weight_grad_channel(const Conv2dGeometry& g, const float* x, const float* grad_y,
                                                    int64_t oc, float* grad_weight) {
  const int64_t mult = g.out_channels / g.in_channels;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  __m512 acc[K * K];
  for (int i = 0; i < K * K; ++i) acc[i] = _mm512_setzero_ps();
  RowTaps<K, S> taps;
  for (int64_t n = 0; n < g.batch; ++n) {
    const float* xp = x + (n * g.in_channels + oc / mult) * in_plane;
    const float* gyp = grad_y + (n * g.out_channels + oc) * out_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const float* rows[K];
      for (int kh = 0; kh < K; ++kh) {
        const int64_t ih = oh * S - g.pad_top + kh;
        rows[kh] = ih >= 0 && ih < g.in_h ? xp + ih * g.in_w : nullptr;
      }
      for (int64_t ow0 = 0; ow0 < g.out_w; ow0 += kLanes) {
        const __mmask16 out_mask = row_mask(ow0, g.out_w);
        const __m512 gy = _mm512_maskz_loadu_ps(out_mask, gyp + oh * g.out_w + ow0);
        taps.set_columns(ow0, g.pad_left, g.in_w);
        for (int kh = 0; kh < K; ++kh) {
          if (!rows[kh]) continue;  // a padding row adds nothing
          __m512 tap[K];
          taps.load(rows[kh], tap);
          for (int kw = 0; kw < K; ++kw)
            acc[kh * K + kw] = _mm512_mask3_fmadd_ps(gy, tap[kw], acc[kh * K + kw], out_mask);
        }
      }
    }
  }
  for (int i = 0; i < K * K; ++i) grad_weight[oc * K * K + i] = _mm512_reduce_add_ps(acc[i]);
}

// Output rows per pass of the row kernels: each input row loaded feeds up to K of them.
constexpr int kRowsPerPass = 4;

using RowsFn = void (*)(const PlaneJob&, int64_t);
using FlatFn = void (*)(const FlatPlan&, const PlaneJob&);
using WeightGradFn = void (*)(const Conv2dGeometry&, const float*, const float*, int64_t, float*);
struct RowKernels {
  int64_t kernel;
  RowsFn pass;  // kRowsPerPass rows
  RowsFn one;   // one row: the last out_h % kRowsPerPass
  FlatFn flat;  // a whole small plane (stride 1 only)
  WeightGradFn weight_grad;
};

template <int K, int S>
constexpr RowKernels row_kernels() {
  return {K, forward_rows<K, S, kRowsPerPass>, forward_rows<K, S, 1>, forward_flat<K>, weight_grad_channel<K, S>};
}

// The row kernels for g's shape: square 3x3, 5x5 or 7x7, stride 1 or 2, dilation 1;
// nullopt for other shapes.
std::optional<RowKernels> find_row_kernels(const Conv2dGeometry& g) {
  if (g.kernel_h != g.kernel_w || g.stride_h != g.stride_w || g.dilation_h != 1 || g.dilation_w != 1)
    return std::nullopt;
  switch (g.kernel_h * 10 + g.stride_h) {
    case 31: return row_kernels<3, 1>();
    case 32: return row_kernels<3, 2>();
    case 51: return row_kernels<5, 1>();
    case 52: return row_kernels<5, 2>();
    case 71: return row_kernels<7, 1>();
    case 72: return row_kernels<7, 2>();
    default: return std::nullopt;
  }
}

// Runs the plane of out_h rows, flat where `flat` is a plan, else by the row kernels;
// `after_rows(oh, n)` sees each finished group of rows while it is in cache (the forward
// epilogue).
template <typename AfterRows>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void run_plane(const RowKernels& k, const PlaneJob& j,
                                                                     int64_t out_h, const std::optional<FlatPlan>& flat,
                                                                     AfterRows&& after_rows) {
  if (flat) {
    k.flat(*flat, j);
    return after_rows(0, out_h);
  }
  int64_t oh = 0;
  for (; oh + kRowsPerPass <= out_h; oh += kRowsPerPass) {
    k.pass(j, oh);
    after_rows(oh, kRowsPerPass);
  }
  for (; oh < out_h; ++oh) {
    k.one(j, oh);
    after_rows(oh, 1);
  }
}

// A zeroed row of at least n floats for this thread.
const float* zero_row(int64_t n) {
  thread_local std::vector<float> zeros;
  if (static_cast<int64_t>(zeros.size()) < n) zeros.assign(n, 0.0f);
  return zeros.data();
}

[[SCALPEL_TARGET_AVX512]] void forward_planes(const Operands& args, const RowKernels& k, int64_t begin,
                                               int64_t end) {
  const Conv2dGeometry& g = args.g;
  const int64_t mult = g.out_channels / g.in_channels;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  const GemmEpilogue<float> epilogue{nullptr, args.epilogue.activation, args.epilogue.residual, 0};
  const bool in_registers = activates_in_registers(epilogue.activation);
  const float* zeros = zero_row(g.in_w);
  const std::optional<FlatPlan> flat =
      flat_plan(k.kernel, g.stride_h, g.in_h, g.in_w, g.out_h, g.out_w, g.pad_top, g.pad_left);
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / g.out_channels, oc = plane % g.out_channels;
    const PlaneJob j{args.a + (n * g.in_channels + oc / mult) * in_plane,
                     zeros,
                     args.b + oc * g.kernel_h * g.kernel_w,
                     args.bias ? args.bias[oc] : 0.0f,
                     args.out + plane * out_plane,
                     g.in_h,
                     g.in_w,
                     g.out_w,
                     g.pad_top,
                     g.pad_left,
                     in_registers && epilogue.residual ? epilogue.residual + plane * out_plane : nullptr,
                     in_registers ? epilogue.activation : EpilogueActivation::none};
    // Otherwise the finished rows are contiguous, as is their residual: one epilogue call over
    // all of them (short 7-28 column rows would spend most of the call in scalar tails).
    run_plane(k, j, g.out_h, flat, [&](int64_t oh, int64_t rows) {
      if (in_registers) return;
      apply_epilogue(epilogue, 0, plane * out_plane + oh * g.out_w, rows * g.out_w, j.y + oh * g.out_w);
    });
  }
}

// Stride 1, multiplier 1: the input gradient is a forward depthwise conv of grad_y with the
// kernel rotated by 180 degrees and padding K - 1 - pad (rows and columns alike), so it runs
// on the forward's row kernels.
[[SCALPEL_TARGET_AVX512]] void input_grad_planes(const Operands& args, const RowKernels& k, int64_t begin,
                                                  int64_t end) {
  const Conv2dGeometry& g = args.g;
  const int64_t taps = k.kernel * k.kernel;
  const float* zeros = zero_row(g.out_w);
  const std::optional<FlatPlan> flat =
      flat_plan(k.kernel, 1, g.out_h, g.out_w, g.in_h, g.in_w, k.kernel - 1 - g.pad_top, k.kernel - 1 - g.pad_left);
  float rotated[7 * 7];
  for (int64_t plane = begin; plane < end; ++plane) {
    const float* w = args.b + (plane % g.in_channels) * taps;
    std::reverse_copy(w, w + taps, rotated);
    const PlaneJob j{args.a + plane * g.out_h * g.out_w,
                     zeros,
                     rotated,
                     0.0f,
                     args.out + plane * g.in_h * g.in_w,
                     g.out_h,
                     g.out_w,
                     g.in_w,
                     k.kernel - 1 - g.pad_top,
                     k.kernel - 1 - g.pad_left,
                     nullptr,
                     EpilogueActivation::none};
    run_plane(k, j, g.in_h, flat, [](int64_t, int64_t) {});
  }
}

// Stride 2, multiplier 1: input row ih gathers the grad_y rows oh = (ih + pad_top - kh) / 2
// where that is a whole number inside the output. Per 32 input columns, the even and the odd
// ones each read every second tap along a stride-1 grad_y row (16 lanes each); the two
// results are interleaved into two stores.
template <int K>
[[SCALPEL_TARGET_AVX512]] void input_grad_plane_stride2(const Conv2dGeometry& g, const float* grad_y,
                                                         const float* weight, float* grad_x) {
  __m512 w[K * K];
  for (int i = 0; i < K * K; ++i) w[i] = _mm512_set1_ps(weight[i]);
  alignas(64) int32_t low[16], high[16];  // lanes of even|odd for columns 0..15 and 16..31
  for (int i = 0; i < 16; ++i) {
    low[i] = i / 2 + (i % 2) * 16;
    high[i] = 8 + i / 2 + (i % 2) * 16;
  }
  const __m512i interleave_low = _mm512_load_si512(low), interleave_high = _mm512_load_si512(high);
  for (int64_t ih = 0; ih < g.in_h; ++ih) {
    const float* rows[K];
    for (int kh = 0; kh < K; ++kh) {
      const int64_t d = ih + g.pad_top - kh;
      rows[kh] = d >= 0 && d % 2 == 0 && d / 2 < g.out_h ? grad_y + d / 2 * g.out_w : nullptr;
    }
    for (int64_t iw0 = 0; iw0 < g.in_w; iw0 += 2 * kLanes) {
      // Tap kw feeds the even columns when pad_left - kw is even, else the odd ones; its
      // lane i reads grad_y column start[kw] + i.
      int64_t start[K];
      __mmask16 mask[K];
      for (int kw = 0; kw < K; ++kw) {
        const int64_t odd = (g.pad_left - kw) & 1;
        start[kw] = (iw0 + odd + g.pad_left - kw) / 2;
        mask[kw] = row_mask(start[kw], g.out_w);
      }
      __m512 sum[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};  // even, odd columns
      for (int kh = 0; kh < K; ++kh) {
        if (!rows[kh]) continue;
        for (int kw = 0; kw < K; ++kw) {
          const int odd = (g.pad_left - kw) & 1;
          sum[odd] = _mm512_fmadd_ps(w[kh * K + kw], load_masked(rows[kh], start[kw], mask[kw]), sum[odd]);
        }
      }
      float* out = grad_x + ih * g.in_w + iw0;
      _mm512_mask_storeu_ps(out, row_mask(iw0, g.in_w), _mm512_permutex2var_ps(sum[0], interleave_low, sum[1]));
      _mm512_mask_storeu_ps(out + kLanes, row_mask(iw0 + kLanes, g.in_w),
                            _mm512_permutex2var_ps(sum[0], interleave_high, sum[1]));
    }
  }
}

}  // namespace

bool covers(const Conv2dGeometry& g) { return find_row_kernels(g).has_value(); }

void forward_planes(const Operands& o, int64_t begin, int64_t end) {
  forward_planes(o, *find_row_kernels(o.g), begin, end);
}

void input_grad_planes(const Operands& o, int64_t begin, int64_t end) {
  const Conv2dGeometry& g = o.g;
  if (g.stride_h == 1) return input_grad_planes(o, *find_row_kernels(g), begin, end);
  const auto stride2 = g.kernel_h == 3 ? input_grad_plane_stride2<3>
                       : g.kernel_h == 5 ? input_grad_plane_stride2<5>
                                         : input_grad_plane_stride2<7>;
  const int64_t taps = g.kernel_h * g.kernel_w;
  for (int64_t plane = begin; plane < end; ++plane)
    stride2(g, o.a + plane * g.out_h * g.out_w, o.b + (plane % g.in_channels) * taps, o.out + plane * g.in_h * g.in_w);
}

void weight_grad_channels(const Operands& o, int64_t begin, int64_t end) {
  const RowKernels k = *find_row_kernels(o.g);
  for (int64_t oc = begin; oc < end; ++oc) k.weight_grad(o.g, o.a, o.b, oc, o.out);
}

}  // namespace scalpel::ops::depthwise_avx512
