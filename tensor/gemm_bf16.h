#pragma once
// The bf16 GEMM: the float GEMM's contract (tensor/gemm.h), with A and B rounded to bfloat16
// (8 significant bits) and the products summed in float, as AVX512_BF16's vdpbf16ps does.
// It is what `--precision bf16` runs the float GEMMs of inference with: half the bytes per
// operand and twice the multiply-adds per instruction, for about 3 significant digits in
// each operand (logits typically move by 1e-2 relative; docs/performance.md has the figures).
//
//   set_float32_matmul_precision(MatmulPrecision::bf16);  // every float gemm() from now on
//
// As torch.set_float32_matmul_precision("medium"): process-wide, applies to every float
// gemm() (convolutions by im2col or 1x1 GEMM, Winograd's products, linear layers), not to
// the depthwise convs or elementwise ops, which are not GEMMs. Matrix-vector shapes (N = 1,
// or M = 1 with B transposed) stay float: they are memory-bound and their operands are read
// once, so converting them costs what it saves.
//
// bf16 here: the upper 16 bits of a float, rounded to nearest even from the float (as
// vcvtne2ps2bf16: NaN stays NaN, and this kernel's CPUs treat float denormals as zero).
#include <cstdint>
#include <cstring>

#include "tensor/gemm.h"

namespace scalpel {

enum class MatmulPrecision { fp32, bf16 };

// Whether this CPU runs the bf16 kernel: AVX-512F/BW and AVX512_BF16 (vdpbf16ps).
bool bf16_gemm_supported();

// Sets what float gemm() computes with. bf16 on a CPU without bf16_gemm_supported() is an
// error (scalpel::Error): callers decide how to fall back (the CLI notes it and runs fp32).
void set_float32_matmul_precision(MatmulPrecision precision);
MatmulPrecision float32_matmul_precision();

// float -> bf16, round to nearest even; denormals become signed zero, NaN stays a quiet NaN.
inline uint16_t float_to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu))  // NaN: keep it one
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  if ((bits & 0x7f800000u) == 0) return static_cast<uint16_t>((bits >> 16) & 0x8000u);  // 0, denormal
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

// The plain loops the fast kernel is tested against: each operand rounded with
// float_to_bf16, and per output the products added in float in vdpbf16ps's order (k pairs
// (2p, 2p+1) in turn, the odd product first; products of two bf16 values are exact in
// float), then C = alpha * sum + beta * C. K blocks of the fast kernel restart the sum, so
// it matches this to rounding, not bit for bit, once K exceeds one block.
void gemm_bf16_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                         float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                         float beta, float* C, int64_t ldc);

// The packed, blocked, threaded bf16 GEMM (tensor/gemm_bf16.cpp), epilogue as gemm()'s.
// Requires bf16_gemm_supported(). threads <= 0: scalpel::num_threads().
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc, const GemmEpilogue<float>& epilogue = {}, int threads = 0);

}  // namespace scalpel
