#pragma once
// The store of an AVX-512 GEMM micro-kernel's register tile (tensor/gemm_kernel_avx512.cpp and
// the bf16 kernels of tensor/gemm_bf16_avx512.cpp, whose accumulators are the same float
// lanes): C = alpha * acc (+ beta * C), with the tile's epilogue (TileEpilogue,
// tensor/gemm_internal.h) applied to the registers before the one store. Only for code compiled
// for, or marked, SCALPEL_TARGET_AVX512.
#include <immintrin.h>

#include "tensor/epilogue_avx512.h"
#include "tensor/gemm_internal.h"

namespace scalpel::gemm_detail {

// Stores the tile: alpha * acc (+ beta * C), then with kEpilogue the epilogue's bias, residual
// and activation in registers before the store, in apply_epilogue's order (its bits; see
// tensor/epilogue_avx512.h).
template <int MR, int NV, bool kEpilogue, EpilogueActivation kAct>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void store_tile(const __m512 (&acc)[MR][NV], float* c,
                                                                    int64_t ldc, float alpha, float beta,
                                                                    __mmask16 last, const TileEpilogue* t) {
  const float* bias = kEpilogue && t->e.row_bias ? t->e.row_bias + t->row : nullptr;
  const float* residual = kEpilogue && t->e.residual ? t->e.residual + t->row * t->e.ldr + t->col : nullptr;
  const int64_t ldr = kEpilogue ? t->e.ldr : 0;
  const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const __m512 vbias = bias ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* p = c + i * ldc + j * 16;
      const __mmask16 m = j == NV - 1 ? last : __mmask16(0xFFFF);
      __m512 v = _mm512_mul_ps(valpha, acc[i][j]);
      if (beta != 0.0f) v = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m, p), v);
      if constexpr (kEpilogue) {
        if (bias) v = _mm512_add_ps(v, vbias);
        if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual + i * ldr + j * 16));
        v = activate16<kAct>(v);
      }
      _mm512_mask_storeu_ps(p, m, v);
    }
  }
}

// store_tile for the epilogue `epilogue` holds (null: none); hardswish, not
// activates_in_registers, runs on the stored tile. `last` masks the columns of the last vector
// of the `cols`.
template <int MR, int NV>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void store_tile(const __m512 (&acc)[MR][NV], float* c,
                                                                    int64_t ldc, float alpha, float beta,
                                                                    __mmask16 last, int64_t cols,
                                                                    const TileEpilogue* epilogue) {
  using enum EpilogueActivation;
  if (!epilogue) return store_tile<MR, NV, false, none>(acc, c, ldc, alpha, beta, last, nullptr);
  switch (epilogue->e.activation) {
    case none: return store_tile<MR, NV, true, none>(acc, c, ldc, alpha, beta, last, epilogue);
    case relu: return store_tile<MR, NV, true, relu>(acc, c, ldc, alpha, beta, last, epilogue);
    case relu6: return store_tile<MR, NV, true, relu6>(acc, c, ldc, alpha, beta, last, epilogue);
    case silu: return store_tile<MR, NV, true, silu>(acc, c, ldc, alpha, beta, last, epilogue);
    case hardswish:  // not activates_in_registers
      store_tile<MR, NV, false, none>(acc, c, ldc, alpha, beta, last, nullptr);
      apply_tile_epilogue<MR>(*epilogue, c, ldc, cols);
  }
}

// The transposed store (MicroKernel's kTransposed form, gemm_internal.h): the tile's row i is C's
// column i and its column j C's row j. Each vector's 8 x 16 block (rows past MR zero) is
// transposed in registers (two in-lane shuffle stages, then one cross-lane permute per pair of
// C rows); each resulting vector holds 8 values of C's row j in its low half and 8 of row j + 4
// in its high half, finished with store_tile's operations in store_tile's order (its bits) and
// stored as two masked halves.
template <int MR, int NV, bool kEpilogue, EpilogueActivation kAct>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void store_tile_transposed(const __m512 (&acc)[MR][NV], float* c,
                                                                               int64_t ldc, float alpha, float beta,
                                                                               int64_t cols, const TileEpilogue* t) {
  static_assert(MR <= 8, "the transposed store takes 8 rows at most");
  const float* bias = kEpilogue && t->e.row_bias ? t->e.row_bias + t->row : nullptr;
  const float* residual = kEpilogue && t->e.residual ? t->e.residual + t->row * t->e.ldr + t->col : nullptr;
  const int64_t ldr = kEpilogue ? t->e.ldr : 0;
  const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
  const __mmask16 low = static_cast<__mmask16>((1u << MR) - 1), high = static_cast<__mmask16>(low << 8);
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    __m512 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = i < MR ? acc[i < MR ? i : 0][j] : _mm512_setzero_ps();
    __m512 u[8], s[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {  // u[2i], u[2i+1]: rows 2i and 2i+1 interleaved, per 128-bit lane
      u[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      u[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {  // s[m + 4h], lane q: column 4q + m of rows 4h .. 4h + 3
      s[4 * h + 0] = _mm512_shuffle_ps(u[4 * h], u[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
      s[4 * h + 1] = _mm512_shuffle_ps(u[4 * h], u[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
      s[4 * h + 2] = _mm512_shuffle_ps(u[4 * h + 1], u[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
      s[4 * h + 3] = _mm512_shuffle_ps(u[4 * h + 1], u[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      // Lanes 0-7: column 8h + m, rows 0-7; lanes 8-15: column 8h + 4 + m.
      const __m512i pick = _mm512_setr_epi32(8 * h, 8 * h + 1, 8 * h + 2, 8 * h + 3, 16 + 8 * h, 17 + 8 * h,
                                             18 + 8 * h, 19 + 8 * h, 8 * h + 4, 8 * h + 5, 8 * h + 6, 8 * h + 7,
                                             20 + 8 * h, 21 + 8 * h, 22 + 8 * h, 23 + 8 * h);
#pragma GCC unroll 4
      for (int m = 0; m < 4; ++m) {
        const int64_t lo = 16 * j + 8 * h + m, hi = lo + 4;  // the tile's columns = C's rows
        if (lo >= cols) continue;
        const __mmask16 mask = hi < cols ? __mmask16(low | high) : low;
        float* p = c + lo * ldc;
        float* q = c + hi * ldc - 8;  // its lanes 8-15 are row hi's first 8
        __m512 v = _mm512_mul_ps(valpha, _mm512_permutex2var_ps(s[m], pick, s[m + 4]));
        if (beta != 0.0f)
          v = _mm512_fmadd_ps(vbeta, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(low, p), mask & high, q), v);
        if constexpr (kEpilogue) {
          if (bias)
            v = _mm512_add_ps(v, _mm512_mask_blend_ps(high, _mm512_set1_ps(bias[lo]),
                                                      _mm512_set1_ps(hi < cols ? bias[hi] : 0.0f)));
          if (residual) {
            const float* rp = residual + lo * ldr;
            const float* rq = residual + hi * ldr - 8;
            v = _mm512_add_ps(v, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(low, rp), mask & high, rq));
          }
          v = activate16<kAct>(v);
        }
        _mm512_mask_storeu_ps(p, low, v);
        _mm512_mask_storeu_ps(q, mask & high, v);
      }
    }
  }
}

// store_tile_transposed for the epilogue `epilogue` holds (null: none); hardswish runs on the
// stored rows of C, as in store_tile.
template <int MR, int NV>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline void store_tile_transposed(const __m512 (&acc)[MR][NV], float* c,
                                                                               int64_t ldc, float alpha, float beta,
                                                                               int64_t cols,
                                                                               const TileEpilogue* epilogue) {
  using enum EpilogueActivation;
  if (!epilogue) return store_tile_transposed<MR, NV, false, none>(acc, c, ldc, alpha, beta, cols, nullptr);
  switch (epilogue->e.activation) {
    case none: return store_tile_transposed<MR, NV, true, none>(acc, c, ldc, alpha, beta, cols, epilogue);
    case relu: return store_tile_transposed<MR, NV, true, relu>(acc, c, ldc, alpha, beta, cols, epilogue);
    case relu6: return store_tile_transposed<MR, NV, true, relu6>(acc, c, ldc, alpha, beta, cols, epilogue);
    case silu: return store_tile_transposed<MR, NV, true, silu>(acc, c, ldc, alpha, beta, cols, epilogue);
    case hardswish:
      store_tile_transposed<MR, NV, false, none>(acc, c, ldc, alpha, beta, cols, nullptr);
      for (int64_t i = 0; i < cols; ++i) apply_epilogue(epilogue->e, epilogue->row + i, epilogue->col, MR, c + i * ldc);
  }
}

}  // namespace scalpel::gemm_detail
