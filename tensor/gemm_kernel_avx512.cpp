// AVX-512 micro-kernels for the float GEMM (see gemm.cpp and gemm_internal.h).
// Compiled for the baseline ISA like the rest of the project: only the functions marked
// target("avx512f") use AVX-512, and the driver calls them only when the CPU has it.
#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "tensor/gemm_internal.h"
#include "tensor/gemm_store_avx512.h"

namespace scalpel::gemm_detail {
namespace {

// The lanes of the last of NV vectors that hold one of the first `cols` columns.
template <int NV>
[[SCALPEL_TARGET_AVX512]] __mmask16 last_vector_mask(int64_t cols) {
  return static_cast<__mmask16>((1u << (cols - (NV - 1) * 16)) - 1);
}

// acc += A(:, 0:kc) * B(0:kc, :) over the tile; kMaskedB: the last vector of B under `last`.
// A read in place (row-major) also asks for the next row panel, MR rows down, into L2: one
// line per k step, row by row, so the whole panel (MR rows x kc floats; MR <= 16) is on its
// way before the driver moves to it (with MR < 16, the lines after it too: its next K block). A layer's weights are read once per inference at batch 1 and
// come from memory; waiting for them had cost 2-7 % of resnet50 and densenet121. A prefetch
// never faults, so the last panel may ask for rows past A's end.
template <int MR, int NV, bool kRowMajorA, bool kMaskedB>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void accumulate(
    int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, __mmask16 last,
    __m512 (&acc)[MR][NV]) {
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV - 1; ++j) bv[j] = _mm512_loadu_ps(b + j * 16);
    bv[NV - 1] = kMaskedB ? _mm512_maskz_loadu_ps(last, b + (NV - 1) * 16)
                          : _mm512_loadu_ps(b + (NV - 1) * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(kRowMajorA ? a[i * a_step + k] : a[i]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
    if constexpr (kRowMajorA)
      _mm_prefetch(reinterpret_cast<const char*>(a + (MR + k % MR) * a_step + k / MR * 16), _MM_HINT_T1);
    else
      a += a_step;
    b += b_step;
  }
}

// A zeroed tile, then acc += A(:, 0:kc) * B(0:kc, :) with B's last vector under a mask only on
// a ragged tile (cols < NV * 16).
template <int MR, int NV>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void zero_tile(__m512 (&acc)[MR][NV]) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
}
template <int MR, int NV, bool kRowMajorA>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void accumulate_tile(int64_t kc, const float* a, int64_t a_step,
                                                                         const float* b, int64_t b_step, int64_t cols,
                                                                         __m512 (&acc)[MR][NV]) {
  if (cols == NV * 16)
    accumulate<MR, NV, kRowMajorA, false>(kc, a, a_step, b, b_step, __mmask16(0xFFFF), acc);
  else
    accumulate<MR, NV, kRowMajorA, true>(kc, a, a_step, b, b_step, last_vector_mask<NV>(cols), acc);
}

// MR x (NV*16) tile held in MR*NV zmm accumulators. Each k step loads NV vectors of B and
// broadcasts MR values of A: MR*NV FMAs for MR + NV loads. With 8 x 48 that is 24 FMAs
// (12 cycles on two FMA ports) against 11 loads, and 24 independent accumulators hide the
// 4-cycle FMA latency. kRowMajorA selects how A is addressed (see MicroKernel). A ragged
// right edge is computed in place: the last vector of B and C is loaded and stored under a
// mask of the `cols` columns. Whole-width tiles keep plain loads of B in the k loop (the
// masked load there cost 2-5 % on the large conv GEMMs in bench_gemm). Bias, residual and
// ReLU / ReLU6 / SiLU are applied in registers (store_tile); hardswish to the stored tile.
template <int MR, int NV, bool kRowMajorA>
[[SCALPEL_TARGET_AVX512]] void kernel(int64_t kc, const float* a, int64_t a_step,
                                               const float* b, int64_t b_step, float* c,
                                               int64_t ldc, float alpha, float beta,
                                               int64_t cols, const TileEpilogue* epilogue) {
  __m512 acc[MR][NV];
  zero_tile(acc);

  // Bring the C tile (one 64-byte line per vector) towards L1 while the k loop runs.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + j * 16), _MM_HINT_T0);

  accumulate_tile<MR, NV, kRowMajorA>(kc, a, a_step, b, b_step, cols, acc);
  store_tile(acc, c, ldc, alpha, beta, last_vector_mask<NV>(cols), cols, epilogue);
}

// The transposed kernel (TransposedKernel): the k loop in steps of kPrefetchStep, each followed
// by its share of the next panel's lines, one prefetch (into L2) per line; then the tile stored
// transposed (store_tile_transposed). Bursts of prefetches before the loop, or in a loop of
// their own, measured slower than none; spread like this, 0.88-0.93x of none on layer4's
// weights at batch 1.
template <int MR, int NV>
[[SCALPEL_TARGET_AVX512]] void transposed_kernel(int64_t kc, const float* a, int64_t a_step, const float* b,
                                                 int64_t b_step, const PanelShare& prefetch, float* c, int64_t ldc,
                                                 float alpha, float beta, int64_t cols, const TileEpilogue* epilogue) {
  constexpr int64_t kPrefetchStep = 16;
  __m512 acc[MR][NV];
  zero_tile(acc);
  // This tile's share of the next panel: rows [first_row, end_row), b_step floats (b_step / 16
  // lines) each.
  const int64_t first_row = prefetch.share * kc / prefetch.shares;
  const int64_t end_row = (prefetch.share + 1) * kc / prefetch.shares;
  const int64_t lines = prefetch.panel ? (end_row - first_row) * (b_step / 16) : 0;
  const char* next = reinterpret_cast<const char*>(prefetch.panel + first_row * b_step);
  int64_t line = 0;
  for (int64_t k = 0; k < kc; k += kPrefetchStep) {
    const int64_t steps = std::min(kPrefetchStep, kc - k);
    accumulate_tile<MR, NV, false>(steps, a + k * a_step, a_step, b + k * b_step, b_step, cols, acc);
    for (const int64_t until = lines * (k + steps) / kc; line < until; ++line)
      _mm_prefetch(next + line * 64, _MM_HINT_T1);
  }
  store_tile_transposed(acc, c, ldc, alpha, beta, cols, epilogue);
}

// Dot products of R rows of a with x, 16 columns at a time (the tail under a mask); R
// independent accumulators keep the FMA pipes busy while a streams from memory.
template <int R>
[[SCALPEL_TARGET_AVX512]] void gemv_rows(int64_t K, const float* a, int64_t lda,
                                                  const float* x, float* y, int64_t y_step,
                                                  float alpha, float beta) {
  __m512 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 xv = _mm512_loadu_ps(x + k);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(a + r * lda + k), xv, acc[r]);
  }
  if (k < K) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (K - k)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(tail, x + k);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + r * lda + k), xv, acc[r]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float& out = y[r * y_step];
    const float dot = alpha * _mm512_reduce_add_ps(acc[r]);
    out = beta == 0.0f ? dot : dot + beta * out;
  }
}

[[SCALPEL_TARGET_AVX512]] void gemv(int64_t m, int64_t K, const float* a, int64_t lda,
                                             const float* x, float* y, int64_t y_step,
                                             float alpha, float beta) {
  int64_t i = 0;
  for (; i + 8 <= m; i += 8) gemv_rows<8>(K, a + i * lda, lda, x, y + i * y_step, y_step, alpha, beta);
  for (; i < m; ++i) gemv_rows<1>(K, a + i * lda, lda, x, y + i * y_step, y_step, alpha, beta);
}

// table[r][v] = make.operator()<r + 1, v + 1>(): the kernel for r + 1 rows and v + 1 vectors.
template <typename Kernel, typename Make>
void fill_table(Kernel (&table)[kMaxRows][kMaxWidths], Make make) {
  [&]<int... R>(std::integer_sequence<int, R...>) {
    ((table[R][0] = make.template operator()<R + 1, 1>(), table[R][1] = make.template operator()<R + 1, 2>(),
      table[R][2] = make.template operator()<R + 1, 3>()),
     ...);
  }(std::make_integer_sequence<int, 8>{});
}

}  // namespace

[[SCALPEL_TARGET_AVX512]] void epilogue_tile(const GemmEpilogue<float>& e, int64_t row, int64_t rows, int64_t j0,
                                             int64_t cols, float* c, int64_t ldc) {
  for (int64_t i = 0; i < rows; ++i) apply_epilogue(e, row + i, j0, cols, c + i * ldc);
}

KernelInfo avx512_kernel() {
  KernelInfo ki{"avx512_8x48", 8, 16, 3, 512, 4096, 480, true, {}, {}, &gemv, &epilogue_tile};
  fill_table(ki.k_major, []<int R, int V>() { return &kernel<R, V, false>; });
  fill_table(ki.row_major, []<int R, int V>() { return &kernel<R, V, true>; });
  fill_table(ki.transposed, []<int R, int V>() { return &transposed_kernel<R, V>; });
  return ki;
}

}  // namespace scalpel::gemm_detail
