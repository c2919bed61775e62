#pragma once
// What this CPU can run, detected once with CPUID (and XGETBV: the OS must save the wider
// registers), and the one vocabulary every fast path uses to pick its code: GEMM micro-kernels
// (tensor/gemm_kernel_*.cpp), vector math (tensor/vector_math*.cpp), the depthwise and
// Winograd conv engines (layers/ops/conv2d_depthwise*.cpp, conv2d_winograd.cpp).
//
// The levels are ordered, each includes the one below:
//   baseline  x86-64 (SSE2), what the project is compiled for
//   avx2      AVX2 and FMA (code marked SCALPEL_TARGET_AVX2)
//   avx512    AVX-512F on top of avx2 (code marked SCALPEL_TARGET_AVX512)
// Code for a level lives in functions marked with that level's target attribute, in files
// of their own (`*_avx2.cpp`, `*_avx512.cpp`) where it uses intrinsics, and runs only after
// cpu_supports(level) said yes. Further features are reported by `cpu_features()`:
// AVX512-BF16 runs the bf16 GEMM (tensor/gemm_bf16.h), AMX is detected only.
#include <cstdint>
#include <string>
#include <string_view>

#define SCALPEL_TARGET_AVX2 gnu::target("avx2,fma")
#define SCALPEL_TARGET_AVX512 gnu::target("avx512f")
// The bf16 GEMM kernel (tensor/gemm_bf16_avx512.cpp): vdpbf16ps, vcvtne2ps2bf16 and vpermw.
#define SCALPEL_TARGET_AVX512_BF16 gnu::target("avx512f,avx512bw,avx512bf16")
// Portable loops compiled for the avx2 level (the depthwise and Winograd engines): without
// FMA, so that the compiler does not contract a * b + c and every level rounds alike.
#define SCALPEL_TARGET_AVX2_NO_FMA gnu::target("avx2")

namespace scalpel {

enum class Isa { baseline, avx2, avx512 };
inline constexpr Isa kAllIsas[] = {Isa::baseline, Isa::avx2, Isa::avx512};

struct CpuFeatures {
  bool avx2 = false, fma = false;                 // with the OS saving the ymm registers
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;  // and zmm, k0-7
  bool avx512_bf16 = false;                       // vdpbf16ps
  bool amx_tile = false, amx_bf16 = false;        // CPUID only: Linux needs arch_prctl to use them
  std::string vendor;                             // "GenuineIntel", "AuthenticAMD", ...
  std::string model_name;                         // the brand string, e.g. "AMD EPYC"
  int family = 0, model = 0;                      // display family and model
  // Data cache sizes in bytes (CPUID's deterministic cache leaves: 4 on Intel, 0x8000001D on
  // AMD, else AMD's legacy 0x80000005/6); 0 where the CPU does not say. L1d and L2 per core,
  // L3 as one core sees it (shared with others). The GEMM sizes its B block from the L2
  // (tensor/gemm.cpp); inverted residual blocks decide from the L3 whether a batch's expanded
  // activations stay in cache (layers/blocks.cpp).
  int64_t l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;
};

const CpuFeatures& cpu_features();  // detected on first use
bool cpu_supports(Isa level);
Isa best_isa();  // the widest level this CPU runs
std::string_view isa_name(Isa level);  // "baseline", "avx2", "avx512"

}  // namespace scalpel
