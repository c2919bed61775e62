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

}  // namespace scalpel::gemm_detail
