// conv2d as Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016); the contract is in layers/ops/conv2d.h.
//
// The output is cut into 4x4 tiles; tile (th, tw) reads the 6x6 input patch whose top-left
// corner is (4*th - pad_top, 4*tw - pad_left). Per tile, input channel ic and output channel oc:
//   V = B^T d B  (6x6, per ic)   U = G g G^T  (6x6, per oc and ic)   Y = A^T M A  (4x4)
//   M[e] = sum over ic of U[e][oc][ic] * V[e][ic]      for each of the 36 elements e,
// so the channel sums are 36 independent GEMMs M[e] [C_out, T] = U[e] [C_out, C_in] *
// V[e] [C_in, T] over T tiles: 36 multiplies per tile and channel pair instead of 16 * 9.
//
// Tiles are numbered row-major over (sample, tile row, tile column), so the GEMMs run over
// tiles of the whole batch. They are processed in chunks of whole tile rows whose V and M fit
// in about 1 MiB (kChunkBytes; the GEMM operands stay in L2): transform the chunk's input,
// 36 GEMMs, inverse-transform with the bias, write the cropped 4x4 tiles, then the residual
// and activation per output row (apply_epilogue). Threads split the tile rows when there are
// enough tiles; otherwise the chunks run one after another with threaded transforms and GEMMs.
//
// The transforms are vectorized across the tiles of one tile row: the input rows are first
// split into four phases (column 4*tw + phase), so the 6 columns a tile reads are contiguous
// over tw in the phase buffers, and every step is a loop over up to kLanes tiles.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "layers/ops/batch_tree.h"
#include "layers/ops/conv2d.h"
#include "tensor/constants.h"
#include "tensor/error.h"
#include "tensor/gemm.h"
#include "tensor/mapped_scratch.h"
#include "tensor/parallel.h"

namespace scalpel::ops {

namespace {

// ---------------------------------------------------------------- the transform matrices

constexpr int kIn = 6;    // input tile side: kOut + 3 - 1
constexpr int kOut = 4;   // output tile side
constexpr int kTaps = 3;  // kernel side

// F(m, r) from its interpolation points (Cook-Toom, as in Lavin's wincnn): with finite points
// p_0..p_4 and the point at infinity,
//   A^T[i][j] = p_j^i                 (A^T[i][inf] = 1 only for i = m - 1)
//   G[j][k]   = p_j^k / prod_{l != j} (p_j - p_l)             (G[inf] = [0, 0, 1])
//   B^T[j]    = coefficients of prod_{l != j} (x - p_l)        (B^T[inf]: of prod_l (x - p_l))
// Derived in constexpr code so that another point set is a one-line change.
struct WinogradMatrices {
  double AT[kOut][kIn];
  double G[kIn][kTaps];
  double BT[kIn][kIn];
  double A[kIn][kOut];    // AT's transpose, for the weight gradient
  double GT[kTaps][kIn];  // G's transpose, likewise
};

constexpr WinogradMatrices winograd_matrices(const std::array<double, kIn - 1>& p) {
  WinogradMatrices m{};
  for (int j = 0; j < kIn - 1; ++j) {
    double power = 1;
    for (int i = 0; i < kOut; ++i, power *= p[j]) m.AT[i][j] = power;
  }
  m.AT[kOut - 1][kIn - 1] = 1;
  // poly[0..kIn) ascending coefficients of prod (x - p_l) over the chosen l.
  auto product_except = [&](int skip, double* poly) {
    for (int i = 0; i < kIn; ++i) poly[i] = i == 0 ? 1 : 0;
    for (int l = 0; l < kIn - 1; ++l) {
      if (l == skip) continue;
      for (int i = kIn - 1; i > 0; --i) poly[i] = poly[i - 1] - p[l] * poly[i];
      poly[0] = -p[l] * poly[0];
    }
  };
  for (int j = 0; j < kIn - 1; ++j) {
    double denominator = 1;
    for (int l = 0; l < kIn - 1; ++l)
      if (l != j) denominator *= p[j] - p[l];
    double power = 1;
    for (int k = 0; k < kTaps; ++k, power *= p[j]) m.G[j][k] = power / denominator;
    product_except(j, m.BT[j]);
  }
  m.G[kIn - 1][kTaps - 1] = 1;
  product_except(-1, m.BT[kIn - 1]);
  for (int i = 0; i < kIn; ++i) {
    for (int j = 0; j < kOut; ++j) m.A[i][j] = m.AT[j][i];
    for (int k = 0; k < kTaps; ++k) m.GT[k][i] = m.G[i][k];
  }
  return m;
}

// Points 0, -1, 1, 1/2, -2: the most accurate of the sets tried (a point and its reciprocal
// mixed, as Barabasz et al. 2020 suggest). float32 error / max |y| on resnet50's 3x3 layers:
// 1.5e-6 to 3.0e-6 with these, 4.3e-6 to 7.3e-6 with Lavin's 0, +-1, +-2 and 3.8e-6 to 8.6e-6
// with 0, +-1, +-1/2.
constexpr WinogradMatrices kMatrices = winograd_matrices({0.0, -1.0, 1.0, 0.5, -2.0});

// ---------------------------------------------------------------- vectorized transforms

constexpr int kLanes = 16;  // tiles per vector step (one AVX-512 float register)

// kLanes values of T in one GCC vector: a register or a few of whichever instruction set a
// variant is compiled for. (Arrays of T with loops over the lanes, left to the vectorizer,
// compiled mostly to scalar code: half of the input transform's samples were xmm
// instructions.)
template <typename T>
struct LanesOf {
  typedef T type __attribute__((vector_size(kLanes * sizeof(T))));
};
template <typename T>
using Lanes = typename LanesOf<T>::type;

// (Vectors pass by reference: the baseline build has no register for them to return in.)
template <typename T>
[[gnu::always_inline]] inline void load_lanes(const T* src, Lanes<T>& v) {
  std::memcpy(&v, src, sizeof v);
}

// The first `lanes` values of src, the rest zero.
template <typename T>
[[gnu::always_inline]] inline void load_lanes(const T* src, int64_t lanes, Lanes<T>& v) {
  if (lanes == kLanes) return load_lanes(src, v);
  T part[kLanes] = {};
  std::copy(src, src + lanes, part);
  load_lanes(part, v);
}

// out = sum_k coeffs[k] * in(k), skipping zero coefficients and multiplications by one (the
// loops are unrolled, so the tests fold at compile time).
template <int K, typename T, typename Row, typename Input>
[[gnu::always_inline]] inline void combine(const Row& coeffs, Input in, Lanes<T>& out) {
  Lanes<T> acc = {};
#pragma GCC unroll 8
  for (int k = 0; k < K; ++k) {
    if (coeffs[k] == 0) continue;
    const Lanes<T>& x = in(k);
    if (coeffs[k] == 1) acc += x;
    else if (coeffs[k] == -1) acc -= x;
    else acc += static_cast<T>(coeffs[k]) * x;
  }
  out = acc;
}

// out[r][c] = sum_k M[r][k] * in[k][c]: the left multiplication by M.
template <int R, int K, int C, typename T, typename Matrix>
[[gnu::always_inline]] inline void left_multiply(const Matrix& matrix, const Lanes<T> (&in)[K][C],
                                                 Lanes<T> (&out)[R][C]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      auto column = [&](int k) -> const Lanes<T>& { return in[k][c]; };
      combine<K, T>(matrix[r], column, out[r][c]);
    }
}

// out[r][c] = sum_k in[r][k] * M[c][k]: the right multiplication by M^T.
template <int R, int K, int C, typename T, typename Matrix>
[[gnu::always_inline]] inline void right_multiply_transposed(const Matrix& matrix, const Lanes<T> (&in)[R][K],
                                                             Lanes<T> (&out)[R][C]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      auto row = [&](int k) -> const Lanes<T>& { return in[r][k]; };
      combine<K, T>(matrix[c], row, out[r][c]);
    }
}

// The shapes of one call, derived once.
struct WinogradPlan {
  int64_t tiles_h, tiles_w;  // tiles per image: ceil(OH / 4) x ceil(OW / 4)
  int64_t tile_rows;         // batch * tiles_h: the unit of chunks and threads
  int64_t phase_width;       // row length of the phase buffers (whole kLanes steps + 1)
  int64_t chunk_rows;        // tile rows per chunk

  explicit WinogradPlan(const Conv2dGeometry& g, int64_t element_bytes) {
    tiles_h = (g.out_h + kOut - 1) / kOut;
    tiles_w = (g.out_w + kOut - 1) / kOut;
    tile_rows = g.batch * tiles_h;
    phase_width = (tiles_w + kLanes - 1) / kLanes * kLanes + 1;
    // V and M of a chunk in about 1 MiB, but at least 128 tiles: every chunk's GEMMs read all
    // of U (2.4-9.4 MiB for 128-256 channels), so fewer, wider chunks pay once V and M outgrow
    // L2 (measured: resnet50 layer3 at batch 8, 0.86 of im2col's time with 128, 1.32 with the
    // 12 tiles 1 MiB alone allows).
    constexpr int64_t kChunkBytes = int64_t{1} << 20, kMinChunkTiles = 128;
    const int64_t bytes_per_tile = kIn * kIn * (g.in_channels + g.out_channels) * element_bytes;
    const int64_t tiles = std::max(kMinChunkTiles, kChunkBytes / bytes_per_tile);
    chunk_rows = std::clamp<int64_t>(tiles / tiles_w, 1, tile_rows);
  }
};

// dst[0, lanes) = src[0, lanes); a whole vector as one fixed-length loop, which vectorizes.
template <typename T>
[[gnu::always_inline]] inline void store_lanes(const Lanes<T>& src, int64_t lanes, T* dst) {
  if (lanes == kLanes) {
    std::memcpy(dst, &src, sizeof src);
  } else {
    for (int64_t t = 0; t < lanes; ++t) dst[t] = src[t];
  }
}

// Per-thread scratch that only grows (no allocation per call in steady state; tensor/mapped_scratch.h).
template <typename T, int kSlot>
T* scratch(int64_t size) {
  thread_local MappedScratch buffer;
  return buffer.get<T>(size);
}

// The 36 planes U[e], V[e] and M[e] lie this many elements apart: their size plus one cache
// line. Unpadded they were multiples of 4 KiB apart (U of 256 x 256 channels: 256 KiB), so a
// transform's 36 stores of one step all mapped to the same L1 and L2 sets and evicted each
// other.
template <typename T>
constexpr int64_t padded_plane(int64_t elements) {
  return elements + 64 / static_cast<int64_t>(sizeof(T));
}

// U[e][oc][ic] = (G g G^T)[e] for output channels [oc0, oc1); vectorized over ic.
template <typename T>
[[gnu::always_inline]] inline void transform_weights(const Conv2dGeometry& g, const T* weight, int64_t oc0,
                                                     int64_t oc1, T* U) {
  const int64_t cin = g.in_channels, stride_e = padded_plane<T>(g.out_channels * cin);
  for (int64_t oc = oc0; oc < oc1; ++oc)
    for (int64_t ic0 = 0; ic0 < cin; ic0 += kLanes) {
      const int64_t lanes = std::min<int64_t>(kLanes, cin - ic0);
      // Gathered into plain arrays first: inserting lanes into vectors one by one was 20 % of
      // a call on resnet50's layer3.
      T taps[kTaps][kTaps][kLanes] = {};
      for (int64_t t = 0; t < lanes; ++t)
        for (int a = 0; a < kTaps; ++a)
          for (int b = 0; b < kTaps; ++b) taps[a][b][t] = weight[((oc * cin + ic0 + t) * kTaps + a) * kTaps + b];
      Lanes<T> w[kTaps][kTaps], gw[kIn][kTaps], u[kIn][kIn];
      for (int a = 0; a < kTaps; ++a)
        for (int b = 0; b < kTaps; ++b) load_lanes(taps[a][b], w[a][b]);
      left_multiply<kIn, kTaps, kTaps, T>(kMatrices.G, w, gw);
      right_multiply_transposed<kIn, kTaps, kIn, T>(kMatrices.G, gw, u);
      for (int e = 0; e < kIn * kIn; ++e) store_lanes(u[e / kIn][e % kIn], lanes, U + e * stride_e + oc * cin + ic0);
    }
}

// One chunk: tile rows [row0, row1) of the global numbering (sample n = row / tiles_h),
// whose tiles are numbered from 0 in V[e][ic][tile] (row stride v_stride()) and M[e][oc][tile].
struct Chunk {
  int64_t row0, row1, tiles;
  // Row stride of V[e][ic]: kLanes entries of slack, so the input transform stores whole
  // vectors; a ragged store spills into the next run of tiles, which is written after it, or into
  // the slack. (Masked or rep-movs stores of the ragged lanes were a quarter of the transform.)
  int64_t v_stride() const { return tiles + kLanes; }
  // Row stride of the input transform's patch planes: a run of the chunk's tiles (at most all
  // of them) and a vector of slack for the last step's loads.
  int64_t patch_stride() const { return tiles + kLanes; }
  // Row stride of the weight gradient's dM[e][oc]: slack as V's, so that a thread's whole-vector
  // stores stay within its own channels.
  int64_t grad_stride() const { return tiles + kLanes; }
};

// V for input channels [ic0, ic1) of the chunk. For each sample's run of tile rows, the input
// rows they read are split into phases: phase[p][r][tw] = x[r - pad_top][4 tw + p - pad_left]
// (zero outside the image), so the patch column j of tile tw is phase[j % 4][r][tw + j / 4].
// The runs of those columns are copied into 36 planes patch[i * 6 + j][t], t numbering the
// run's tiles across its tile rows, so that each vector step transforms kLanes tiles
// whatever the width of a tile row (a 14x14 plane has 4 tiles per row: a step over one row
// left 12 of 16 lanes idle). `patch` holds 36 planes of patch_stride() values.
template <typename T>
[[gnu::always_inline]] inline void transform_input(const Conv2dGeometry& g, const WinogradPlan& plan,
                                                   const T* x, const Chunk& chunk, int64_t ic0, int64_t ic1,
                                                   T* V, T* phase, T* patch) {
  const int64_t pw = plan.phase_width, v_stride = chunk.v_stride(), patch_stride = chunk.patch_stride();
  const int64_t stride_e = padded_plane<T>(g.in_channels * v_stride);
  for (int64_t ic = ic0; ic < ic1; ++ic) {
    int64_t tile0 = 0;  // first tile of the current run within the chunk
    for (int64_t row = chunk.row0; row < chunk.row1;) {
      const int64_t n = row / plan.tiles_h, th0 = row % plan.tiles_h;
      const int64_t th1 = std::min(plan.tiles_h, th0 + (chunk.row1 - row));
      const T* plane = x + (n * g.in_channels + ic) * g.in_h * g.in_w;
      // Input rows 4*th0 - pad_top + [0, rows) of this sample, split into phases.
      const int64_t first = kOut * th0 - g.pad_top, rows = kOut * (th1 - th0) + kIn - kOut;
      const int64_t phase_stride = rows * pw;
      for (int p = 0; p < kOut; ++p) {
        const auto [lo, hi] = conv_valid_range(pw, g.in_w, kOut, p - g.pad_left);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t ih = first + r;
          T* dst = phase + p * phase_stride + r * pw;
          if (ih < 0 || ih >= g.in_h) {
            std::fill(dst, dst + pw, T(0));
            continue;
          }
          const T* src = plane + ih * g.in_w + p - g.pad_left;
          std::fill(dst, dst + lo, T(0));
          for (int64_t tw = lo; tw < hi; ++tw) dst[tw] = src[kOut * tw];
          std::fill(dst + hi, dst + pw, T(0));
        }
      }
      // Whole vectors, in increasing th: a row's lanes past tiles_w are overwritten by the next.
      const int64_t tiles_w = plan.tiles_w, run_tiles = (th1 - th0) * tiles_w;
      for (int i = 0; i < kIn; ++i)
        for (int j = 0; j < kIn; ++j)
          for (int64_t th = 0; th < th1 - th0; ++th) {
            const T* src = phase + (j % kOut) * phase_stride + (kOut * th + i) * pw + j / kOut;
            T* dst = patch + (i * kIn + j) * patch_stride + th * tiles_w;
            for (int64_t k = 0; k < tiles_w; k += kLanes) std::memcpy(dst + k, src + k, kLanes * sizeof(T));
          }
      // The last step's lanes past run_tiles hold stale values; their stores land on the next
      // run's tiles, written after them, or in V's slack.
      for (int64_t t0 = 0; t0 < run_tiles; t0 += kLanes) {
        Lanes<T> d[kIn][kIn], bd[kIn][kIn], v[kIn][kIn];
        for (int i = 0; i < kIn; ++i)
          for (int j = 0; j < kIn; ++j) load_lanes(patch + (i * kIn + j) * patch_stride + t0, d[i][j]);
        left_multiply<kIn, kIn, kIn, T>(kMatrices.BT, d, bd);
        right_multiply_transposed<kIn, kIn, kIn, T>(kMatrices.BT, bd, v);
        for (int e = 0; e < kIn * kIn; ++e)
          store_lanes(v[e / kIn][e % kIn], kLanes, V + e * stride_e + ic * v_stride + tile0 + t0);
      }
      tile0 += run_tiles;
      row += th1 - th0;
    }
  }
}

// y for output channels [oc0, oc1) of the chunk: Y = A^T M A + bias, cropped to the image,
// then residual and activation over each tile row's output rows.
template <typename T>
[[gnu::always_inline]] inline void transform_output(const Conv2dGeometry& g, const WinogradPlan& plan,
                                                    const T* M, const Chunk& chunk, int64_t oc0, int64_t oc1,
                                                    const T* bias, const ConvEpilogue<T>& epilogue, T* y) {
  const int64_t stride_e = padded_plane<T>(g.out_channels * chunk.tiles), out_plane = g.out_h * g.out_w;
  for (int64_t oc = oc0; oc < oc1; ++oc) {
    const T b = bias ? bias[oc] : T(0);
    for (int64_t row = chunk.row0, tile0 = 0; row < chunk.row1; ++row, tile0 += plan.tiles_w) {
      const int64_t n = row / plan.tiles_h, th = row % plan.tiles_h;
      const int64_t first = (n * g.out_channels + oc) * out_plane;
      T* out = y + first;
      const int64_t oh0 = kOut * th, oh1 = std::min(g.out_h, oh0 + kOut);
      for (int64_t tw0 = 0; tw0 < plan.tiles_w; tw0 += kLanes) {
        // M is allocated with kLanes elements of slack, so full-width loads stay inside it.
        Lanes<T> m[kIn][kIn], am[kOut][kIn], yt[kOut][kOut];
        for (int e = 0; e < kIn * kIn; ++e)
          load_lanes(M + e * stride_e + oc * chunk.tiles + tile0 + tw0, m[e / kIn][e % kIn]);
        left_multiply<kOut, kIn, kIn, T>(kMatrices.AT, m, am);
        right_multiply_transposed<kOut, kIn, kOut, T>(kMatrices.AT, am, yt);
        const int64_t tw1 = std::min<int64_t>(plan.tiles_w, tw0 + kLanes);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          T* dst = out + oh * g.out_w;
          for (int64_t tw = tw0; tw < tw1; ++tw) {
            const int64_t ow0 = kOut * tw, cols = std::min<int64_t>(kOut, g.out_w - ow0);
            for (int64_t c = 0; c < cols; ++c) dst[ow0 + c] = yt[oh - oh0][c][tw - tw0] + b;
          }
        }
      }
      const GemmEpilogue<T> e{nullptr, epilogue.activation, epilogue.residual ? epilogue.residual + first : nullptr,
                              0};
      const int64_t begin = oh0 * g.out_w, count = (oh1 - oh0) * g.out_w;
      apply_epilogue(e, 0, begin, count, out + begin);
    }
  }
}

// ---------------------------------------------------------------- the weight gradient
//
// Per tile the forward is linear in U = G g G^T: Y = A^T M A with M[e] = sum over ic of
// U[e][oc][ic] V[e][ic]. Its adjoint: dM = A dY A^T per tile and output channel (dY zero
// past the image's edge, where the forward crops), dU[e] = sum over the tiles of
// dM[e][oc][tile] V[e][ic][tile] (36 GEMMs, C_out x C_in, over the tiles), then
// grad_weight = G^T dU G.

// dM[e][oc][tile] = (A dY A^T)[e] for output channels [oc0, oc1) of the chunk (row stride
// grad_stride()), vectorized over kLanes tiles of the chunk, across tile rows.
template <typename T>
[[gnu::always_inline]] inline void transform_grad_output(const Conv2dGeometry& g, const WinogradPlan& plan,
                                                         const T* grad_y, const Chunk& chunk, int64_t oc0,
                                                         int64_t oc1, T* dM) {
  const int64_t m_stride = chunk.grad_stride(), stride_e = padded_plane<T>(g.out_channels * m_stride);
  const int64_t out_plane = g.out_h * g.out_w;
  for (int64_t oc = oc0; oc < oc1; ++oc)
    for (int64_t t0 = 0; t0 < chunk.tiles; t0 += kLanes) {
      // The tiles' 4x4 blocks of dY, gathered into plain arrays (zero past the image).
      T block[kOut][kOut][kLanes] = {};
      const int64_t lanes = std::min<int64_t>(kLanes, chunk.tiles - t0);
      for (int64_t t = 0; t < lanes; ++t) {
        const int64_t row = chunk.row0 + (t0 + t) / plan.tiles_w, tw = (t0 + t) % plan.tiles_w;
        const int64_t n = row / plan.tiles_h, oh0 = kOut * (row % plan.tiles_h), ow0 = kOut * tw;
        const T* src = grad_y + (n * g.out_channels + oc) * out_plane + oh0 * g.out_w + ow0;
        const int64_t rows = std::min<int64_t>(kOut, g.out_h - oh0), cols = std::min<int64_t>(kOut, g.out_w - ow0);
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j) block[i][j][t] = src[i * g.out_w + j];
      }
      Lanes<T> d[kOut][kOut], ad[kIn][kOut], m[kIn][kIn];
      for (int i = 0; i < kOut; ++i)
        for (int j = 0; j < kOut; ++j) load_lanes(block[i][j], d[i][j]);
      left_multiply<kIn, kOut, kOut, T>(kMatrices.A, d, ad);
      right_multiply_transposed<kIn, kOut, kIn, T>(kMatrices.A, ad, m);
      for (int e = 0; e < kIn * kIn; ++e)
        store_lanes(m[e / kIn][e % kIn], kLanes, dM + e * stride_e + oc * m_stride + t0);
    }
}

// grad_weight[oc][ic] = G^T dU[.][oc][ic] G for output channels [oc0, oc1); vectorized over ic.
template <typename T>
[[gnu::always_inline]] inline void transform_weight_gradient(const Conv2dGeometry& g, const T* dU, int64_t oc0,
                                                             int64_t oc1, T* grad_weight) {
  const int64_t cin = g.in_channels, stride_e = padded_plane<T>(g.out_channels * cin);
  for (int64_t oc = oc0; oc < oc1; ++oc)
    for (int64_t ic0 = 0; ic0 < cin; ic0 += kLanes) {
      const int64_t lanes = std::min<int64_t>(kLanes, cin - ic0);
      Lanes<T> u[kIn][kIn], gu[kTaps][kIn], w[kTaps][kTaps];
      for (int e = 0; e < kIn * kIn; ++e) load_lanes(dU + e * stride_e + oc * cin + ic0, lanes, u[e / kIn][e % kIn]);
      left_multiply<kTaps, kIn, kIn, T>(kMatrices.GT, u, gu);
      right_multiply_transposed<kTaps, kIn, kTaps, T>(kMatrices.GT, gu, w);
      // Scattered to [oc][ic][kh][kw] from plain arrays, as transform_weights gathers.
      T taps[kTaps][kTaps][kLanes];
      std::memcpy(taps, w, sizeof taps);
      for (int64_t t = 0; t < lanes; ++t)
        for (int a = 0; a < kTaps; ++a)
          for (int b = 0; b < kTaps; ++b) grad_weight[((oc * cin + ic0 + t) * kTaps + a) * kTaps + b] = taps[a][b][t];
    }
}

// ---------------------------------------------------------------- SIMD variants

// The transforms compiled for AVX-512 and AVX2 besides the baseline build; the widest the CPU
// supports runs unless a test forces another. Only the vector width changes: the AVX2 variant
// is compiled without FMA, so the arithmetic is the same.
std::atomic<Isa> g_isa{best_isa()};

template <typename T>
struct Transforms {
  void (*weights)(const Conv2dGeometry&, const T*, int64_t, int64_t, T*);
  void (*input)(const Conv2dGeometry&, const WinogradPlan&, const T*, const Chunk&, int64_t, int64_t, T*, T*, T*);
  void (*output)(const Conv2dGeometry&, const WinogradPlan&, const T*, const Chunk&, int64_t, int64_t, const T*,
                 const ConvEpilogue<T>&, T*);
  void (*grad_output)(const Conv2dGeometry&, const WinogradPlan&, const T*, const Chunk&, int64_t, int64_t, T*);
  void (*weight_gradient)(const Conv2dGeometry&, const T*, int64_t, int64_t, T*);
};

#define SCALPEL_WINOGRAD_VARIANT(suffix, attribute)                                                              \
  template <typename T>                                                                                          \
  attribute void transform_weights_##suffix(const Conv2dGeometry& g, const T* w, int64_t oc0, int64_t oc1,      \
                                            T* U) {                                                              \
    transform_weights(g, w, oc0, oc1, U);                                                                        \
  }                                                                                                              \
  template <typename T>                                                                                          \
  attribute void transform_input_##suffix(const Conv2dGeometry& g, const WinogradPlan& plan, const T* x,         \
                                          const Chunk& chunk, int64_t ic0, int64_t ic1, T* V, T* phase,          \
                                          T* patch) {                                                            \
    transform_input(g, plan, x, chunk, ic0, ic1, V, phase, patch);                                               \
  }                                                                                                              \
  template <typename T>                                                                                          \
  attribute void transform_output_##suffix(const Conv2dGeometry& g, const WinogradPlan& plan, const T* M,        \
                                           const Chunk& chunk, int64_t oc0, int64_t oc1, const T* bias,          \
                                           const ConvEpilogue<T>& epilogue, T* y) {                              \
    transform_output(g, plan, M, chunk, oc0, oc1, bias, epilogue, y);                                            \
  }                                                                                                              \
  template <typename T>                                                                                          \
  attribute void transform_grad_output_##suffix(const Conv2dGeometry& g, const WinogradPlan& plan,               \
                                                const T* grad_y, const Chunk& chunk, int64_t oc0, int64_t oc1,   \
                                                T* dM) {                                                         \
    transform_grad_output(g, plan, grad_y, chunk, oc0, oc1, dM);                                                 \
  }                                                                                                              \
  template <typename T>                                                                                          \
  attribute void transform_weight_gradient_##suffix(const Conv2dGeometry& g, const T* dU, int64_t oc0,           \
                                                    int64_t oc1, T* grad_weight) {                               \
    transform_weight_gradient(g, dU, oc0, oc1, grad_weight);                                                     \
  }
SCALPEL_WINOGRAD_VARIANT(avx512, [[SCALPEL_TARGET_AVX512]])
SCALPEL_WINOGRAD_VARIANT(avx2, [[SCALPEL_TARGET_AVX2_NO_FMA]])
SCALPEL_WINOGRAD_VARIANT(baseline, )
#undef SCALPEL_WINOGRAD_VARIANT

template <typename T>
Transforms<T> transforms() {
  switch (g_isa.load()) {
#define SCALPEL_WINOGRAD_TRANSFORMS(suffix)                                                              \
  Transforms<T> {                                                                                        \
    transform_weights_##suffix<T>, transform_input_##suffix<T>, transform_output_##suffix<T>,            \
        transform_grad_output_##suffix<T>, transform_weight_gradient_##suffix<T>                         \
  }
    case Isa::avx512: return SCALPEL_WINOGRAD_TRANSFORMS(avx512);
    case Isa::avx2: return SCALPEL_WINOGRAD_TRANSFORMS(avx2);
    default: return SCALPEL_WINOGRAD_TRANSFORMS(baseline);
#undef SCALPEL_WINOGRAD_TRANSFORMS
  }
}

// Channels per task of the threaded transforms: enough work that starting threads pays.
int64_t channel_grain(int64_t tiles) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, tiles)); }
// Values a task of the input transform should write at least (phase rows, then V).
constexpr int64_t kTaskValues = int64_t{1} << 14;

// U for weights declared constant (tensor/constants.h: a fused model's), transformed on the
// first call and kept with the weights; null for other weights and for U too large to keep.
template <typename T>
const T* constant_transformed_weights(const Conv2dGeometry& g, const T* weight, const Transforms<T>& fn) {
  if (!winograd_keeps_weights(g) || !is_declared_constant(weight)) return nullptr;
  const std::string key = fmt::format("winograd F(4x4, 3x3) U {} {}x{} {}", sizeof(T) * 8, g.out_channels,
                                      g.in_channels, isa_name(g_isa.load()));
  return static_cast<const T*>(derived_from_constant(weight, key, [&] {
    auto U = std::make_shared<std::vector<T>>(kIn * kIn * padded_plane<T>(g.out_channels * g.in_channels));
    parallel_for(g.out_channels, channel_grain(g.in_channels),
                 [&](int64_t begin, int64_t end) { fn.weights(g, weight, begin, end, U->data()); });
    return std::shared_ptr<void>(U, U->data());
  }));
}

// V for every input channel of the chunk, the channels split across the threads.
template <typename T>
void transform_chunk_input(const Transforms<T>& fn, const Conv2dGeometry& g, const WinogradPlan& plan, const T* x,
                           const Chunk& chunk, T* V) {
  // The phase buffer covers the chunk's input rows of one sample at a time.
  const int64_t phase_rows = kOut * std::min(chunk.row1 - chunk.row0, plan.tiles_h) + kIn - kOut;
  // Per input channel the transform first fills kOut phase rows of phase_width values each
  // (padded to whole vectors): on small planes that, not the tile count, is its work.
  const int64_t phase_values = kOut * phase_rows * plan.phase_width;
  parallel_for(g.in_channels, std::max<int64_t>(1, kTaskValues / std::max(phase_values, chunk.tiles * kIn * kIn)),
               [&](int64_t ic0, int64_t ic1) {
                 T* phase = scratch<T, 2>(kOut * phase_rows * plan.phase_width);
                 T* patch = scratch<T, 5>(kIn * kIn * chunk.patch_stride());
                 fn.input(g, plan, x, chunk, ic0, ic1, V, phase, patch);
               });
}

// gemm_of(e) for the 36 elements, split across the threads, each GEMM on one: on few tiles
// (DenseNet's 7x7 at batch 1: 32 x 4 x 128) each is far too small to thread, and the other
// thread waited.
template <typename GemmOf>
void for_each_element(const GemmOf& gemm_of) {
  parallel_for(kIn * kIn, 1, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) gemm_of(e);
  });
}

void check_supported(const Conv2dGeometry& g) {
  SCALPEL_CHECK(cpu_conv_algorithm_supports(CpuConvAlgorithm::Winograd, g),
                "winograd conv: needs a 3x3 kernel, stride 1, dilation 1 and groups 1 (got {}x{}, stride [{}, {}], "
                "dilation [{}, {}], groups {})",
                g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.dilation_h, g.dilation_w, g.groups);
}

}  // namespace

void set_winograd_isa(Isa level) {
  SCALPEL_CHECK(cpu_supports(level), "winograd conv: this CPU cannot run the {} variant", isa_name(level));
  g_isa = level;
}

void reset_winograd_isa() { g_isa = best_isa(); }

template <typename T>
void conv2d_forward_winograd(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias, T* y,
                             const ConvEpilogue<T>& epilogue) {
  check_supported(g);
  const Transforms<T> fn = transforms<T>();
  const WinogradPlan plan(g, sizeof(T));
  const int64_t cin = g.in_channels, cout = g.out_channels;

  const T* U = constant_transformed_weights(g, weight, fn);
  if (!U) {
    T* per_call = scratch<T, 3>(kIn * kIn * padded_plane<T>(cout * cin));
    parallel_for(cout, channel_grain(cin),
                 [&](int64_t begin, int64_t end) { fn.weights(g, weight, begin, end, per_call); });
    U = per_call;
  }

  // Runs tile rows [begin, end) chunk by chunk with this thread's buffers.
  auto run_rows = [&](int64_t begin, int64_t end) {
    const int64_t max_tiles = plan.chunk_rows * plan.tiles_w;
    T* V = scratch<T, 0>(kIn * kIn * padded_plane<T>(cin * (max_tiles + kLanes)));
    T* M = scratch<T, 1>(kIn * kIn * padded_plane<T>(cout * max_tiles) + kLanes);
    for (int64_t row0 = begin; row0 < end; row0 += plan.chunk_rows) {
      const int64_t row1 = std::min(end, row0 + plan.chunk_rows);
      const Chunk chunk{row0, row1, (row1 - row0) * plan.tiles_w};
      transform_chunk_input(fn, g, plan, x, chunk, V);
      const int64_t v_stride = chunk.v_stride();
      for_each_element([&](int64_t e) {
        gemm(false, false, cout, chunk.tiles, cin, T(1), U + e * padded_plane<T>(cout * cin), cin,
             V + e * padded_plane<T>(cin * v_stride), v_stride, T(0), M + e * padded_plane<T>(cout * chunk.tiles),
             chunk.tiles);
      });
      parallel_for(cout, channel_grain(chunk.tiles), [&](int64_t oc0, int64_t oc1) {
        fn.output(g, plan, M, chunk, oc0, oc1, bias, epilogue, y);
      });
    }
  };
  // Threads split the tile rows when each gets enough tiles of its own; inside that parallel
  // region the transforms and GEMMs run single-threaded (parallel_for and gemm stay serial).
  // Fewer tiles (small planes at batch 1) run one chunk after another, its transforms and its
  // 36 GEMMs split across the threads.
  constexpr int64_t kMinTilesPerThread = 16;
  const int64_t threads = num_threads();
  if (threads > 1 && plan.tile_rows >= threads &&
      plan.tile_rows * plan.tiles_w >= threads * kMinTilesPerThread) {
    parallel_for(plan.tile_rows, 1, run_rows);
  } else {
    run_rows(0, plan.tile_rows);
  }
}

// grad_x = conv2d's adjoint = a stride-1 3x3 conv of grad_y with the weights transposed
// (C_in <-> C_out) and flipped, padded by 2 - pad (output pixel ih reads grad_y rows
// ih + pad_top - 2 + kh', kh' = 2 - kh), so the forward engine runs it.
template <typename T>
void conv2d_backward_input_winograd(const Conv2dGeometry& g, const T* grad_y, const T* weight, T* grad_x) {
  check_supported(g);
  Conv2dGeometry adjoint = g;
  adjoint.in_channels = g.out_channels;
  adjoint.out_channels = g.in_channels;
  adjoint.in_h = g.out_h;
  adjoint.in_w = g.out_w;
  adjoint.out_h = g.in_h;
  adjoint.out_w = g.in_w;
  adjoint.pad_top = kTaps - 1 - g.pad_top;
  adjoint.pad_left = kTaps - 1 - g.pad_left;
  T* flipped = scratch<T, 4>(g.out_channels * g.in_channels * kTaps * kTaps);
  for (int64_t oc = 0; oc < g.out_channels; ++oc)
    for (int64_t ic = 0; ic < g.in_channels; ++ic)
      for (int kh = 0; kh < kTaps; ++kh)
        for (int kw = 0; kw < kTaps; ++kw)
          flipped[((ic * g.out_channels + oc) * kTaps + kTaps - 1 - kh) * kTaps + kTaps - 1 - kw] =
              weight[((oc * g.in_channels + ic) * kTaps + kh) * kTaps + kw];
  conv2d_forward_winograd(adjoint, grad_y, flipped, static_cast<const T*>(nullptr), grad_x);
}

// Each sample's gradient alone (its tiles' GEMMs accumulate over its chunks), the samples
// added as layers/ops/batch_tree.h's tree, as im2col's: the same bits whatever the thread count
// and however a batch is split across data-parallel ranks.
template <typename T>
void conv2d_backward_weight_winograd(const Conv2dGeometry& g, const T* x, const T* grad_y, T* grad_weight) {
  check_supported(g);
  const int64_t cin = g.in_channels, cout = g.out_channels, wsize = cout * cin * kTaps * kTaps;
  if (g.batch == 0) {
    std::fill(grad_weight, grad_weight + wsize, T(0));
    return;
  }
  const Transforms<T> fn = transforms<T>();
  const WinogradPlan plan(g, sizeof(T));
  const int64_t chunk_rows = std::min(plan.chunk_rows, plan.tiles_h), max_tiles = chunk_rows * plan.tiles_w;
  auto sample_gradient = [&](int64_t n, T* gw) {
    T* V = scratch<T, 0>(kIn * kIn * padded_plane<T>(cin * (max_tiles + kLanes)));
    T* dM = scratch<T, 1>(kIn * kIn * padded_plane<T>(cout * (max_tiles + kLanes)));
    T* dU = scratch<T, 6>(kIn * kIn * padded_plane<T>(cout * cin));
    const int64_t first_row = n * plan.tiles_h, end_row = first_row + plan.tiles_h;
    for (int64_t row0 = first_row; row0 < end_row; row0 += chunk_rows) {
      const int64_t row1 = std::min(end_row, row0 + chunk_rows);
      const Chunk chunk{row0, row1, (row1 - row0) * plan.tiles_w};
      transform_chunk_input(fn, g, plan, x, chunk, V);
      parallel_for(cout, channel_grain(chunk.tiles),
                   [&](int64_t oc0, int64_t oc1) { fn.grad_output(g, plan, grad_y, chunk, oc0, oc1, dM); });
      const int64_t v_stride = chunk.v_stride(), m_stride = chunk.grad_stride();
      for_each_element([&](int64_t e) {
        gemm(false, true, cout, cin, chunk.tiles, T(1), dM + e * padded_plane<T>(cout * m_stride), m_stride,
             V + e * padded_plane<T>(cin * v_stride), v_stride, T(row0 == first_row ? 0 : 1),
             dU + e * padded_plane<T>(cout * cin), cin);
      });
    }
    parallel_for(cout, channel_grain(cin), [&](int64_t oc0, int64_t oc1) { fn.weight_gradient(g, dU, oc0, oc1, gw); });
  };
  batch_tree_sum_threaded(g.batch, wsize, grad_weight, parallel_over_samples(g), kBatchTreePartialBudget,
                          sample_gradient);
}

template void conv2d_forward_winograd<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*,
                                             const ConvEpilogue<float>&);
template void conv2d_forward_winograd<double>(const Conv2dGeometry&, const double*, const double*, const double*,
                                              double*, const ConvEpilogue<double>&);
template void conv2d_backward_input_winograd<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_backward_input_winograd<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void conv2d_backward_weight_winograd<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_backward_weight_winograd<double>(const Conv2dGeometry&, const double*, const double*, double*);

}  // namespace scalpel::ops
