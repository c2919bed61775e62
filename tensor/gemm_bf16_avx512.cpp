// AVX512_BF16 packing and micro-kernels for the bf16 GEMM (tensor/gemm_bf16.cpp; packed
// layout in gemm_internal.h). Only the functions marked SCALPEL_TARGET_AVX512_BF16 use these
// instructions, and the driver calls them only where bf16_gemm_supported() says so.
//
// The kernel is the float 8 x 48 kernel (gemm_kernel_avx512.cpp) with pairs of k: per pair it
// loads 3 vectors of B (48 columns x 2 k), broadcasts 8 pairs of A, and issues 24 vdpbf16ps,
// each 32 multiply-adds into 16 float lanes, so a k step costs half the float kernel's
// instructions. Conversion to bf16 happens while packing (vcvtne2ps2bf16, round to nearest
// even), so every operand value is rounded once per packed block.
#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "tensor/gemm_internal.h"
#include "tensor/gemm_store_avx512.h"
#include "tensor/lanes_avx512.h"

namespace scalpel::gemm_detail {
namespace {

constexpr int kMR = 8, kWidths = 3, kNR = kWidths * 16;


// 16 pairs (x[2p], x[2p+1]) from the first n of 32 floats of x (the rest read as zero).
[[SCALPEL_TARGET_AVX512_BF16]] inline __m512i convert_pairs(const float* x, int64_t n) {
  const __m512 lo = _mm512_maskz_loadu_ps(lanes::first(n), x);
  const __m512 hi = n > 16 ? _mm512_maskz_loadu_ps(lanes::first(n - 16), x + 16) : _mm512_setzero_ps();
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));  // bf16 x[0..31] in order
}

// 16 pairs (r0[j], r1[j]) for the first n <= 16 columns j (the rest zero); r1 null: zero.
[[SCALPEL_TARGET_AVX512_BF16]] inline __m512i interleave_rows(const float* r0, const float* r1, int64_t n) {
  const __mmask16 m = lanes::first(n);
  const __m512 x0 = _mm512_maskz_loadu_ps(m, r0);
  const __m512 x1 = r1 ? _mm512_maskz_loadu_ps(m, r1) : _mm512_setzero_ps();
  // words 0..15: bf16(x0), 16..31: bf16(x1); pick 0, 16, 1, 17, ... so dword j = (x0[j], x1[j])
  const __m512i words = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0));
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(order, words);
}

// The ceil(kc/2) pairs of a row of kc floats to dst[p * stride].
[[SCALPEL_TARGET_AVX512_BF16]] void pack_row_pairs(const float* src, int64_t kc, uint32_t* dst, int64_t stride) {
  const int64_t kp = (kc + 1) / 2;
  const __m512i index = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(static_cast<int>(stride)));
  for (int64_t p = 0; p < kp; p += 16) {
    const __m512i pairs = convert_pairs(src + 2 * p, kc - 2 * p);
    _mm512_mask_i32scatter_epi32(dst + p * stride, lanes::first(kp - p), index, pairs, 4);
  }
}

[[SCALPEL_TARGET_AVX512_BF16]] void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc,
                                           int64_t p0, int64_t kc, uint32_t* Ap) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t ip = 0; ip < mc; ip += kMR, Ap += kMR * kp) {
    const int64_t rows = std::min<int64_t>(kMR, mc - ip);
    if (!trans_a) {  // a row of op(A) is a row of A: its pairs are adjacent floats
      for (int64_t i = 0; i < rows; ++i) pack_row_pairs(A + (i0 + ip + i) * lda + p0, kc, Ap + i, kMR);
      continue;
    }
    for (int64_t p = 0; p < kp; ++p) {  // op(A)[i][k] = A[k][i]: pair rows k, k + 1 of A
      const float* r0 = A + (p0 + 2 * p) * lda + i0 + ip;
      const __m512i pairs = interleave_rows(r0, 2 * p + 1 < kc ? r0 + lda : nullptr, rows);
      _mm512_mask_storeu_epi32(Ap + p * kMR, __mmask16(0xFF), pairs);
    }
  }
}

[[SCALPEL_TARGET_AVX512_BF16]] void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc,
                                           int64_t j0, int64_t nc, uint32_t* Bp) {
  const int64_t kp = (kc + 1) / 2;
  if (trans_b) {  // op(B)[k][j] = B[j][k]: a column of op(B) is a row of B
    for (int64_t jp = 0; jp < nc; jp += kNR, Bp += kNR * kp) {
      const int64_t cols = std::min<int64_t>(kNR, nc - jp);
      for (int64_t j = 0; j < cols; ++j) pack_row_pairs(B + (j0 + jp + j) * ldb + p0, kc, Bp + j, kNR);
      for (int64_t p = 0; p < kp; ++p) std::fill(Bp + p * kNR + cols, Bp + (p + 1) * kNR, 0u);
    }
    return;
  }
  for (int64_t p = 0; p < kp; ++p) {  // row pair (k, k + 1) of B, read sequentially
    const float* r0 = B + (p0 + 2 * p) * ldb + j0;
    const float* r1 = 2 * p + 1 < kc ? r0 + ldb : nullptr;
    uint32_t* dst = Bp + p * kNR;
    for (int64_t jp = 0; jp < nc; jp += kNR, dst += kNR * kp)
      for (int v = 0; v < kWidths; ++v) {
        const int64_t j = jp + 16 * v, n = nc - j;
        const __m512i pairs = n > 0 ? interleave_rows(r0 + j, r1 ? r1 + j : nullptr, n) : _mm512_setzero_si512();
        _mm512_storeu_si512(dst + 16 * v, pairs);
      }
  }
}

// R x (NV*16) tile in R*NV zmm accumulators; per pair of k: NV loads of B, R broadcasts of
// A pairs, R*NV vdpbf16ps. The last vector of C is stored under the mask of `cols`, with the
// epilogue in registers as the float kernel's (tensor/gemm_store_avx512.h).
template <int R, int NV>
[[SCALPEL_TARGET_AVX512_BF16]] void kernel(int64_t kp, const uint32_t* a, int64_t a_step, const uint32_t* b,
                                           int64_t b_step, float* c, int64_t ldc, float alpha, float beta,
                                           int64_t cols, const TileEpilogue* epilogue) {
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + j * 16), _MM_HINT_T0);

#pragma GCC unroll 4
  for (int64_t p = 0; p < kp; ++p) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + j * 16));
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[i])));
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
    }
    a += a_step;
    b += b_step;
  }

  store_tile(acc, c, ldc, alpha, beta, lanes::first(cols - (NV - 1) * 16), cols, epilogue);
}

}  // namespace

[[SCALPEL_TARGET_AVX512_BF16]] void avx512_bf16_convert(const float* x, int64_t n, uint32_t* pairs) {
  _mm512_storeu_si512(pairs, convert_pairs(x, n));
}

Bf16KernelInfo avx512_bf16_kernel() {
  Bf16KernelInfo ki{"avx512_bf16_8x48", kMR, kWidths, 512, 4096, 480, &pack_a, &pack_b, {}};
  [&]<int... R>(std::integer_sequence<int, R...>) {
    ((ki.kernels[R][0] = &kernel<R + 1, 1>, ki.kernels[R][1] = &kernel<R + 1, 2>,
      ki.kernels[R][2] = &kernel<R + 1, 3>),
     ...);
  }(std::make_integer_sequence<int, kMR>{});
  return ki;
}

}  // namespace scalpel::gemm_detail
