// conv2d as im2col + GEMM (see layers/ops/conv2d.h). Per sample n and group gi, with
// K = C_in/g * kH * kW and P = OH * OW:
//   forward         y[n, gi]  [C_out/g, P] = W_gi [C_out/g, K] * col [K, P]
//   backward input  col = W_gi^T * gy[n, gi], then col2im adds col back into grad_x
//   backward weight gW_gi    += gy[n, gi] * col^T
// where col = im2col(x[n, gi]); a pointwise (1x1, stride 1, unpadded) conv uses x itself.
// col is built for a block of output rows at a time (a bounded buffer, see rows_per_block);
// each block is a column slice of y / gy, so the GEMMs use ld = P.
#include <immintrin.h>

#include <algorithm>
#include <optional>
#include <type_traits>
#include <vector>

#include "layers/ops/batch_tree.h"
#include "layers/ops/conv2d.h"
#include "tensor/cpu_isa.h"
#include "tensor/gemm.h"
#include "tensor/lanes_avx512.h"
#include "tensor/mapped_scratch.h"
#include "tensor/parallel.h"

namespace scalpel::ops {

namespace {

// Input channels per task for col2im: about 64K column entries, so that threads only start
// for large layers (and parallel_for stays serial inside the parallel-over-samples path).
int64_t channel_grain(const Conv2dGeometry& g) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / (g.kernel_h * g.kernel_w * g.out_h * g.out_w));
}

// dst[i] = src[2 i] for i < n: the stride-2 rows of im2col (the networks' 3-channel stems,
// 27-147 rows of 12544 columns per image), which the baseline build made a scalar loop of.
// With rows spread over threads as well (im2col), conv2d_fused on Zen 4: resnet50's 7x7 stem
// at batch 8 11.5-12.0 vs 13.3 ms, mobilenet_v2's 3x3 1.20-1.23 vs 1.50-1.53.
[[SCALPEL_TARGET_AVX512]] void copy_even_avx512(const float* src, int64_t n, float* dst) {
  using lanes::first;
  const __m512i even = lanes::even();
  int64_t i = 0;
  // Whole loads read src[2 i + 31], one past the 16th value: only while more values follow.
  for (; i + 16 < n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(_mm512_loadu_ps(src + 2 * i), even,
                                                     _mm512_loadu_ps(src + 2 * i + 16)));
  const int64_t read = 2 * (n - i) - 1;  // the values read from src + 2 i on
  const __m512 a = _mm512_maskz_loadu_ps(first(read), src + 2 * i);
  const __m512 b = _mm512_maskz_loadu_ps(first(read - 16), src + 2 * i + 16);
  _mm512_mask_storeu_ps(dst + i, first(n - i), _mm512_permutex2var_ps(a, even, b));
}

template <typename T>
void copy_strided(const T* src, int64_t stride, int64_t n, T* dst) {
  if constexpr (std::is_same_v<T, float>) {
    static const bool avx512 = cpu_supports(Isa::avx512);
    if (stride == 2 && avx512) return copy_even_avx512(src, n, dst);
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i * stride];
}

// Output rows [oh0, oh1) of the column matrix:
// col [(icg * kH + kh) * kW + kw, (oh - oh0) * OW + ow] = xg[icg, ih, iw], zero outside the input.
// One im2col row block (a fixed channel, kh, kw) when both strides are 1 and the output is as
// wide as the input: output row oh reads input row oh + ih_shift at column offset `off`, so the
// block's valid rows are one contiguous shifted copy of the input plane, after which the
// columns outside [lo, hi) (the padding) are zeroed. Row by row, a 7-14 wide plane spent
// most of its time in three library calls per row.
template <typename T>
void shifted_rows(const Conv2dGeometry& g, const T* x_plane, int64_t ih_shift, int64_t off, int64_t lo, int64_t hi,
                  int64_t oh0, int64_t oh1, T* dst) {
  const int64_t W = g.out_w;
  const int64_t a = std::clamp(-ih_shift, oh0, oh1), b = std::clamp(g.in_h - ih_shift, a, oh1);  // valid rows
  std::fill(dst, dst + (a - oh0) * W, T(0));
  std::fill(dst + (b - oh0) * W, dst + (oh1 - oh0) * W, T(0));
  if (a == b) return;
  T* d = dst + (a - oh0) * W;
  const T* s = x_plane + (a + ih_shift) * g.in_w + off;
  const int64_t first = lo, last = (b - a - 1) * W + hi;  // the first and one past the last valid entry
  if (first < last) std::copy(s + first, s + last, d + first);
  for (int64_t r = 0; r < b - a; ++r) {
    T* row = d + r * W;
    for (int64_t ow = 0; ow < lo; ++ow) row[ow] = T(0);
    for (int64_t ow = hi; ow < W; ++ow) row[ow] = T(0);
  }
}

// Small planes at stride 1 with rows as long as the input's (7x7, 14x14): col's row for tap
// (kh, kw) is the input plane read at a constant offset, with the padding's lanes masked off,
// as layers/ops/conv2d_depthwise_avx512.cpp's FlatPlan reads its taps: a few masked vector
// copies per row of col instead of a library call per plane row. `masks` holds the mask of
// each of the plane's 16-pixel vectors for each tap.
constexpr int64_t kFlatColumnsMaxPixels = 256;

struct FlatColumns {
  int64_t pixels = 0, vectors = 0;  // of the block of output rows
  std::vector<__mmask16> masks;  // [tap][vector]
};

bool flat_columns_cover(const Conv2dGeometry& g, int64_t pixels) {
  return g.stride_h == 1 && g.stride_w == 1 && g.out_w == g.in_w && pixels <= kFlatColumnsMaxPixels &&
         cpu_supports(Isa::avx512);
}

std::optional<FlatColumns> flat_columns(const Conv2dGeometry& g, int64_t oh0, int64_t oh1) {
  const int64_t W = g.out_w, pixels = (oh1 - oh0) * W;
  if (!flat_columns_cover(g, pixels)) return std::nullopt;
  FlatColumns f;
  f.pixels = pixels;
  f.vectors = (pixels + 15) / 16;
  f.masks.resize(g.kernel_h * g.kernel_w * f.vectors);
  for (int64_t kh = 0; kh < g.kernel_h; ++kh)
    for (int64_t kw = 0; kw < g.kernel_w; ++kw)
      for (int64_t v = 0; v < f.vectors; ++v)
        f.masks[(kh * g.kernel_w + kw) * f.vectors + v] =
            flat_lanes_inside(v * 16, pixels, W, oh0, kh * g.dilation_h - g.pad_top, kw * g.dilation_w - g.pad_left,
                              g.in_h, g.in_w);
  return f;
}

// col's row for tap (kh, kw) of one input plane, as FlatColumns describes.
[[SCALPEL_TARGET_AVX512]] void flat_column_row(const Conv2dGeometry& g, const FlatColumns& f, const float* x_plane,
                                               int64_t oh0, int64_t kh, int64_t kw, float* dst) {
  const int64_t pixels = f.pixels;
  const float* src = x_plane + (oh0 + kh * g.dilation_h - g.pad_top) * g.in_w + kw * g.dilation_w - g.pad_left;
  const __mmask16* masks = f.masks.data() + (kh * g.kernel_w + kw) * f.vectors;
  int64_t v = 0;
  for (; (v + 1) * 16 <= pixels; ++v) _mm512_storeu_ps(dst + v * 16, _mm512_maskz_loadu_ps(masks[v], src + v * 16));
  if (v < f.vectors)
    _mm512_mask_storeu_ps(dst + v * 16, static_cast<__mmask16>((1u << (pixels - v * 16)) - 1),
                          _mm512_maskz_loadu_ps(masks[v], src + v * 16));
}

// Tasks own rows of col (a channel, kh and kw each), about 64K entries per task: by input
// channel, a stem's 3 split 2 : 1 over two threads.
template <typename T>
void im2col(const Conv2dGeometry& g, const T* xg, int64_t oh0, int64_t oh1, T* col) {
  const int64_t plane = (oh1 - oh0) * g.out_w, taps = g.kernel_h * g.kernel_w;
  const bool same_width = g.stride_h == 1 && g.stride_w == 1 && g.out_w == g.in_w;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / plane);
  std::optional<FlatColumns> flat;
  if constexpr (std::is_same_v<T, float>) flat = flat_columns(g, oh0, oh1);
  parallel_for(g.in_per_group() * taps, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t icg = row / taps, kh = row % taps / g.kernel_w, kw = row % g.kernel_w;
      T* dst = col + row * plane;
      if constexpr (std::is_same_v<T, float>) {
        if (flat) {
          flat_column_row(g, *flat, xg + icg * g.in_h * g.in_w, oh0, kh, kw, dst);
          continue;
        }
      }
      const int64_t off = kw * g.dilation_w - g.pad_left;
      const auto [lo, hi] = conv_valid_range(g.out_w, g.in_w, g.stride_w, off);
      if (same_width) {
        shifted_rows(g, xg + icg * g.in_h * g.in_w, kh * g.dilation_h - g.pad_top, off, lo, hi, oh0, oh1, dst);
        continue;
      }
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        T* d = dst + (oh - oh0) * g.out_w;
        const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
        if (ih < 0 || ih >= g.in_h) {
          std::fill(d, d + g.out_w, T(0));
          continue;
        }
        const T* src = xg + (icg * g.in_h + ih) * g.in_w + off;
        std::fill(d, d + lo, T(0));
        if (g.stride_w == 1)
          std::copy(src + lo, src + hi, d + lo);
        else if (lo < hi)
          copy_strided(src + lo * g.stride_w, g.stride_w, hi - lo, d + lo);
        std::fill(d + hi, d + g.out_w, T(0));
      }
    }
  });
}

// The adjoint of im2col (same rows): gxg[icg, ih, iw] += every col entry copied from there.
// Tasks own whole input channels, so their writes never overlap.
template <typename T>
void col2im(const Conv2dGeometry& g, const T* col, int64_t oh0, int64_t oh1, T* gxg) {
  const int64_t plane = (oh1 - oh0) * g.out_w;
  parallel_for(g.in_per_group(), channel_grain(g), [&](int64_t begin, int64_t end) {
    for (int64_t icg = begin; icg < end; ++icg)
      for (int64_t kh = 0; kh < g.kernel_h; ++kh)
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const T* srcc = col + ((icg * g.kernel_h + kh) * g.kernel_w + kw) * plane;
          const int64_t off = kw * g.dilation_w - g.pad_left;
          const auto [lo, hi] = conv_valid_range(g.out_w, g.in_w, g.stride_w, off);
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
            if (ih < 0 || ih >= g.in_h) continue;
            const T* s = srcc + (oh - oh0) * g.out_w;
            T* d = gxg + (icg * g.in_h + ih) * g.in_w + off;
            for (int64_t ow = lo; ow < hi; ++ow) d[ow * g.stride_w] += s[ow];
          }
        }
  });
}

// Output rows per block of the column matrix: its buffer stays under kColumnBudget entries
// however large the image (a 3x3, 64-channel layer on 512x512 would need 151M otherwise),
// while blocks stay wide enough (>= 2^21 / K columns) for the GEMM to run at full speed.
constexpr int64_t kColumnBudget = int64_t{1} << 21;
int64_t rows_per_block(const Conv2dGeometry& g) {
  const int64_t K = g.in_per_group() * g.kernel_h * g.kernel_w;
  return std::clamp<int64_t>(kColumnBudget / (K * g.out_w), 1, g.out_h);
}

// Calls fn(oh0, oh1) for consecutive blocks of `rows` output rows.
template <typename Fn>
void for_row_blocks(const Conv2dGeometry& g, int64_t rows, Fn&& fn) {
  for (int64_t oh0 = 0; oh0 < g.out_h; oh0 += rows) fn(oh0, std::min(g.out_h, oh0 + rows));
}

// A per-thread column buffer that only grows: steady-state calls reuse it instead of
// allocating (and page-faulting) up to kColumnBudget fresh entries per conv (tensor/mapped_scratch.h).
template <typename T>
T* column_buffer(int64_t size) {
  thread_local MappedScratch buffer;
  return buffer.get<T>(size);
}

// fn(begin, end, col) gets a scratch buffer of `scratch` elements per chunk of samples
// (never per pixel).
template <typename T, typename Fn>
void for_sample_chunks(const Conv2dGeometry& g, int64_t scratch, Fn&& fn) {
  auto chunk = [&](int64_t begin, int64_t end) { fn(begin, end, scratch > 0 ? column_buffer<T>(scratch) : nullptr); };
  if (parallel_over_samples(g)) {
    parallel_for(g.batch, 1, chunk);
  } else {
    chunk(0, g.batch);
  }
}

// Samples side by side: a pointwise conv on a plane of fewer than kSideBySidePlane pixels
// (resnet50's 14x14 and 7x7) is, per sample, a GEMM too narrow for the kernel's tiles (49
// columns = a 48-wide tile and a 1-wide one) in which each thread streams all the weights once
// per sample. Where the weights are also large (kSideBySideWeights per group and more: 1 MiB,
// a whole Zen L2), the samples are the items of one gemm_items() on all threads, reading x in
// place, with the same bits per sample. bench_gemm on Zen 5: 2048 x 8*49 x 512 as items at 87 %
// of the FMA probe, 2048 x 49 x 512 at 69 %; bench_conv at batch 8: resnet50's 7x7 1x1 convs
// 2.4-2.9 ms vs 3.2-3.3, mobilenet_v2's last conv 0.97 vs 1.20. The input gradient, W^T times
// each sample's gy, likewise. Smaller weights stay in each thread's cache across its samples,
// and side by side measured slower there (efficientnet_b0's 1x1 convs on 28x28 at batch 8,
// bench_models --profile: 3.3-3.7 ms vs 3.0-3.2), except on planes that waste a tile's lanes
// (plane_wastes_lanes). Convs through im2col keep one sample per
// GEMM on larger planes: a chunk of samples' columns side by side measured slower there
// (resnet50's 14x14 3x3 at batch 8: 8.6-9.6 ms vs 6.5-6.8), their columns no longer in a
// thread's cache when packed; under 64 pixels, where a sample's last tile is mostly empty,
// they go side by side (im2col_samples_per_gemm; its 7x7 3x3 at batch 8: 10.9-13.1 vs 12.8-13.5).
// Planes of one pixel (squeeze-excite) stay matrix-vector products.
constexpr int64_t kSideBySidePlane = 1024, kSideBySideWeights = int64_t{1} << 18;

// A plane under 64 pixels that is not whole vectors leaves most of a sample's last 16-wide tile
// empty (49 columns computed as 64). Pointwise convs on such planes go side by side whatever
// their weights: mobilenet_v2's 160 -> 960 and 960 -> 160 on 7x7 at batch 8, bench of
// conv2d_fused on Zen 4, 0.65 / 0.67 ms vs 0.76 / 0.80 one sample per GEMM.
bool plane_wastes_lanes(int64_t P) { return P % 16 != 0 && P < 64; }

template <typename T>
void backward_input_side_by_side(const Conv2dGeometry& g, const T* grad_y, const T* weight, T* grad_x) {
  const int64_t ipg = g.in_per_group(), opg = g.out_per_group(), P = g.out_h * g.out_w;
  const ColumnItems samples{g.batch, P, g.out_channels * P, g.in_channels * P};
  for (int64_t gi = 0; gi < g.groups; ++gi)
    gemm_items(true, ipg, opg, samples, T(1), weight + gi * opg * ipg, ipg, grad_y + gi * opg * P, P, T(0),
               grad_x + gi * ipg * P, P);
}

// Shifted products: a stride-1 conv with few output channels (DenseNet's 3x3 -> 32) gains
// little from im2col's copy of kH * kW shifted inputs per sample (K = 1152 values per pixel for
// 32 outputs). On the input padded once, with output rows as wide as the padded rows, tap
// (kh, kw)'s input is the padded plane itself read from offset kh * Wp + kw, a plain strided
// matrix: y = sum over taps of W_tap [C_out, C_in] * shifted plane [C_in, OH * Wp], then the
// kW - 1 extra columns per row are dropped as y is written with the epilogue. bench_conv on
// Zen 5, DenseNet's 3x3 (128 -> 32) at batch 8 on 56/28/14: 6.5 / 1.73-1.77 / 0.49-0.58 ms vs
// im2col's 8.0-8.2 / 2.0-2.1 / 0.66; densenet121 b8 inference 208-221 vs 236-241 ms. Planes
// the flat columns cover go through im2col instead: at batch 1 on Zen 4, 7x7 0.050 vs 0.155 ms
// and 14x14 0.142-0.147 vs 0.251-0.255 (session 12).
constexpr int64_t kShiftedMaxOutChannels = 32;

template <typename T>
void forward_shifted(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias, T* y,
                     const ConvEpilogue<T>& epilogue) {
  const int64_t C = g.in_channels, O = g.out_channels, taps = g.kernel_h * g.kernel_w;
  const int64_t Hp = g.out_h + g.kernel_h - 1, Wp = g.out_w + g.kernel_w - 1, padded = Hp * Wp;
  const int64_t cols = g.out_h * Wp, P = g.out_h * g.out_w;
  std::vector<T> tap_weights(taps * O * C);  // [tap][o][c]
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < taps; ++t) tap_weights[(t * O + o) * C + c] = weight[(o * C + c) * taps + t];
  for_sample_chunks<T>(g, C * padded + g.kernel_w, [&](int64_t begin, int64_t end, T* xpad) {
    thread_local MappedScratch result_buffer;
    T* result = result_buffer.get<T>(O * cols);
    for (int64_t n = begin; n < end; ++n) {
      const T* xn = x + n * C * g.in_h * g.in_w;
      std::fill(xpad, xpad + C * padded + g.kernel_w, T(0));
      for (int64_t c = 0; c < C; ++c)
        for (int64_t ih = 0; ih < g.in_h; ++ih) {
          const int64_t r = ih + g.pad_top;
          if (r < 0 || r >= Hp) continue;
          const int64_t lo = std::max<int64_t>(0, -g.pad_left), hi = std::min<int64_t>(g.in_w, Wp - g.pad_left);
          if (lo < hi) std::copy(xn + (c * g.in_h + ih) * g.in_w + lo, xn + (c * g.in_h + ih) * g.in_w + hi,
                                 xpad + c * padded + r * Wp + lo + g.pad_left);
        }
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t offset = (t / g.kernel_w) * Wp + t % g.kernel_w;
        gemm(false, false, O, cols, C, T(1), tap_weights.data() + t * O * C, C, xpad + offset, padded,
             T(t == 0 ? 0 : 1), result, cols);
      }
      const int64_t first = n * O * P;
      const GemmEpilogue<T> e{bias, epilogue.activation, epilogue.residual ? epilogue.residual + first : nullptr, P};
      for (int64_t o = 0; o < O; ++o)
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          T* dst = y + first + (o * g.out_h + oh) * g.out_w;
          std::copy(result + o * cols + oh * Wp, result + o * cols + oh * Wp + g.out_w, dst);
          apply_epilogue(e, o, oh * g.out_w, g.out_w, dst);
        }
    }
  });
}

}  // namespace

bool im2col_uses_shifted_products(const Conv2dGeometry& g) {
  const int64_t padded_input = g.in_channels * (g.out_h + g.kernel_h - 1) * (g.out_w + g.kernel_w - 1);
  return g.groups == 1 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 &&
         !g.is_pointwise() && g.out_channels <= kShiftedMaxOutChannels && g.out_h > 0 && g.out_w > 0 &&
         !flat_columns_cover(g, g.out_h * g.out_w) &&
         padded_input <= kColumnBudget;  // a sample's padded input within im2col's scratch budget
}

int64_t im2col_samples_per_gemm(const Conv2dGeometry& g) {
  const int64_t P = g.out_h * g.out_w, K = g.in_per_group() * g.kernel_h * g.kernel_w;
  if (g.groups != 1 || g.is_pointwise() || g.batch < 2 || !plane_wastes_lanes(P) ||
      g.out_channels * K < kSideBySideWeights)
    return 1;
  return std::clamp<int64_t>(kColumnBudget / (K * P), 1, g.batch);
}

bool im2col_runs_samples_side_by_side(const Conv2dGeometry& g) {
  const int64_t P = g.out_h * g.out_w;
  return g.is_pointwise() && g.batch > 1 && P > 1 && P < kSideBySidePlane &&
         (g.in_per_group() * g.out_per_group() >= kSideBySideWeights || plane_wastes_lanes(P));
}

// A pointwise conv is a GEMM on x itself: W_gi times each sample's [C_in/g, P] plane, the
// samples side by side (im2col_runs_samples_side_by_side) or one GEMM each; an input
// transform is the GEMM's prologue, applied as it packs x.
template <typename T>
void conv2d_forward_pointwise(const Conv2dGeometry& g, const T* x, int64_t x_sample_stride, const T* weight,
                              const T* bias, T* y, const ConvEpilogue<T>& epilogue,
                              const GemmPrologue<T>& input_transform) {
  SCALPEL_CHECK(g.is_pointwise(), "conv2d_forward_pointwise: a {}x{} conv with stride {} is not pointwise", g.kernel_h,
                g.kernel_w, g.stride_h);
  SCALPEL_CHECK(x_sample_stride >= g.in_channels * g.in_h * g.in_w,
                "conv2d_forward_pointwise: samples {} apart overlap their {} values", x_sample_stride,
                g.in_channels * g.in_h * g.in_w);
  const int64_t ipg = g.in_per_group(), opg = g.out_per_group(), P = g.out_h * g.out_w;
  auto epilogue_at = [&](int64_t gi, int64_t first) {  // first: y's element y[n, gi * opg]
    return GemmEpilogue<T>{bias ? bias + gi * opg : nullptr, epilogue.activation,
                           epilogue.residual ? epilogue.residual + first : nullptr, P};
  };
  if (im2col_runs_samples_side_by_side(g)) {
    const ColumnItems samples{g.batch, P, x_sample_stride, g.out_channels * P};
    for (int64_t gi = 0; gi < g.groups; ++gi)
      gemm_items(false, opg, ipg, samples, T(1), weight + gi * opg * ipg, ipg, x + gi * ipg * P, P, T(0),
                 y + gi * opg * P, P, epilogue_at(gi, gi * opg * P), input_transform.from_row(gi * ipg));
    return;
  }
  for_sample_chunks<T>(g, 0, [&](int64_t begin, int64_t end, T*) {
    for (int64_t n = begin; n < end; ++n)
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const int64_t first = (n * g.out_channels + gi * opg) * P;
        gemm_items(false, opg, ipg, ColumnItems{1, P, 0, 0}, T(1), weight + gi * opg * ipg, ipg,
                   x + n * x_sample_stride + gi * ipg * P, P, T(0), y + first, P, epilogue_at(gi, first),
                   input_transform.from_row(gi * ipg).for_item(n));
      }
  });
}

// Bias, activation and residual are the GEMM's epilogue (tensor/gemm.h): applied to each
// tile of y as it is stored, not in passes of their own.
template <typename T>
void conv2d_forward_im2col(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                           T* y, const ConvEpilogue<T>& epilogue) {
  if (g.is_pointwise())
    return conv2d_forward_pointwise(g, x, g.in_channels * g.in_h * g.in_w, weight, bias, y, epilogue, {});
  if (im2col_uses_shifted_products(g)) return forward_shifted(g, x, weight, bias, y, epilogue);
  const int64_t ipg = g.in_per_group(), opg = g.out_per_group();
  const int64_t K = ipg * g.kernel_h * g.kernel_w, P = g.out_h * g.out_w;
  const int64_t samples_per_gemm = im2col_samples_per_gemm(g);
  if (samples_per_gemm > 1) {
    T* col = column_buffer<T>(samples_per_gemm * K * P);
    for (int64_t n0 = 0; n0 < g.batch; n0 += samples_per_gemm) {
      const int64_t count = std::min(samples_per_gemm, g.batch - n0);
      for (int64_t s = 0; s < count; ++s)
        im2col(g, x + (n0 + s) * g.in_channels * g.in_h * g.in_w, 0, g.out_h, col + s * K * P);
      const int64_t first = n0 * g.out_channels * P;
      const GemmEpilogue<T> e{bias, epilogue.activation, epilogue.residual ? epilogue.residual + first : nullptr, P};
      gemm_items(false, g.out_channels, K, ColumnItems{count, P, K * P, g.out_channels * P}, T(1), weight, K, col, P,
                 T(0), y + first, P, e);
    }
    return;
  }
  const int64_t rows = rows_per_block(g);
  for_sample_chunks<T>(g, K * rows * g.out_w, [&](int64_t begin, int64_t end, T* col) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const T* xg = x + (n * g.in_channels + gi * ipg) * g.in_h * g.in_w;
        const T* wg = weight + gi * opg * K;
        const int64_t first = (n * g.out_channels + gi * opg) * P;  // y[n, gi * opg]
        T* yg = y + first;
        const T* rg = epilogue.residual ? epilogue.residual + first : nullptr;
        for_row_blocks(g, rows, [&](int64_t oh0, int64_t oh1) {
          const int64_t cols = (oh1 - oh0) * g.out_w;
          const GemmEpilogue<T> e{bias ? bias + gi * opg : nullptr, epilogue.activation,
                                  rg ? rg + oh0 * g.out_w : nullptr, P};
          im2col(g, xg, oh0, oh1, col);
          gemm(false, false, opg, cols, K, T(1), wg, K, col, cols, T(0), yg + oh0 * g.out_w, P, e);
        });
      }
    }
  });
}

template <typename T>
void conv2d_backward_input_im2col(const Conv2dGeometry& g, const T* grad_y, const T* weight,
                                  T* grad_x) {
  if (im2col_runs_samples_side_by_side(g)) return backward_input_side_by_side(g, grad_y, weight, grad_x);
  const int64_t ipg = g.in_per_group(), opg = g.out_per_group();
  const int64_t K = ipg * g.kernel_h * g.kernel_w, P = g.out_h * g.out_w;
  const int64_t in_plane = g.in_h * g.in_w;
  const bool direct = g.is_pointwise();
  const int64_t rows = rows_per_block(g);
  for_sample_chunks<T>(g, direct ? 0 : K * rows * g.out_w, [&](int64_t begin, int64_t end, T* col) {
    for (int64_t n = begin; n < end; ++n)
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const T* gyg = grad_y + (n * g.out_channels + gi * opg) * P;
        const T* wg = weight + gi * opg * K;
        T* gxg = grad_x + (n * g.in_channels + gi * ipg) * in_plane;
        if (direct) {
          gemm(true, false, K, P, opg, T(1), wg, K, gyg, P, T(0), gxg, P);
          continue;
        }
        std::fill(gxg, gxg + ipg * in_plane, T(0));
        for_row_blocks(g, rows, [&](int64_t oh0, int64_t oh1) {
          const int64_t cols = (oh1 - oh0) * g.out_w;
          gemm(true, false, K, cols, opg, T(1), wg, K, gyg + oh0 * g.out_w, P, T(0), col, cols);
          col2im(g, col, oh0, oh1, gxg);
        });
      }
  });
}

// The weight gradient is the sum over the samples of each sample's gradient (computed from
// zero), added as layers/ops/batch_tree.h's tree: the same bits whatever the thread count, and
// 2^k data-parallel ranks get one process's bits. Adding a partial of grad_weight's size per
// sample costs 1 / P of that sample's GEMM.
template <typename T>
void conv2d_backward_weight_im2col(const Conv2dGeometry& g, const T* x, const T* grad_y,
                                   T* grad_weight) {
  const int64_t ipg = g.in_per_group(), opg = g.out_per_group();
  const int64_t K = ipg * g.kernel_h * g.kernel_w, P = g.out_h * g.out_w;
  const int64_t wsize = g.out_channels * K;
  const bool direct = g.is_pointwise();
  const int64_t rows = rows_per_block(g);
  if (g.batch == 0) {
    std::fill(grad_weight, grad_weight + wsize, T(0));
    return;
  }
  const int64_t scratch = direct ? 0 : K * rows * g.out_w;
  // gw = sample n's gradient (its first GEMM overwrites: beta 0).
  auto sample_gradient = [&](int64_t n, T* gw) {
    T* col = scratch > 0 ? column_buffer<T>(scratch) : nullptr;
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      const T* xg = x + (n * g.in_channels + gi * ipg) * g.in_h * g.in_w;
      const T* gyg = grad_y + (n * g.out_channels + gi * opg) * P;
      T* gwg = gw + gi * opg * K;
      if (direct) {
        gemm(false, true, opg, K, P, T(1), gyg, P, xg, P, T(0), gwg, K);
        continue;
      }
      for_row_blocks(g, rows, [&](int64_t oh0, int64_t oh1) {
        const int64_t cols = (oh1 - oh0) * g.out_w;
        im2col(g, xg, oh0, oh1, col);
        gemm(false, true, opg, K, cols, T(1), gyg + oh0 * g.out_w, P, col, cols, T(oh0 == 0 ? 0 : 1), gwg, K);
      });
    }
  };
  batch_tree_sum_threaded(g.batch, wsize, grad_weight, parallel_over_samples(g), kBatchTreePartialBudget,
                          sample_gradient);
}

#define SCALPEL_IM2COL_INSTANTIATE(T)                                                        \
  template void conv2d_forward_im2col<T>(const Conv2dGeometry&, const T*, const T*, const T*, \
                                         T*, const ConvEpilogue<T>&);                        \
  template void conv2d_forward_pointwise<T>(const Conv2dGeometry&, const T*, int64_t, const T*, const T*, T*, \
                                            const ConvEpilogue<T>&, const GemmPrologue<T>&);                 \
  template void conv2d_backward_input_im2col<T>(const Conv2dGeometry&, const T*, const T*,    \
                                                T*);                                         \
  template void conv2d_backward_weight_im2col<T>(const Conv2dGeometry&, const T*, const T*,   \
                                                 T*);
SCALPEL_IM2COL_INSTANTIATE(float)
SCALPEL_IM2COL_INSTANTIATE(double)
#undef SCALPEL_IM2COL_INSTANTIATE

}  // namespace scalpel::ops
