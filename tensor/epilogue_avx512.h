#pragma once
// apply_epilogue's activations (tensor/gemm.h) on 16 floats in a zmm register, for the AVX-512
// kernels that finish their outputs before storing them (the GEMM micro-kernels, the depthwise
// row kernels). Applied to the stored values instead, an epilogue reloads what the kernel's
// masked stores have just written, which AMD's store-to-load forwarding does not serve: 7.7 %
// of mobilenet_v2's samples at batch 8 for the GEMM's and 8.4 % for the depthwise rows'.
// The same operations in the same order as apply_epilogue, so the same bits:
//   ReLU   `v > 0 ? v : 0`                      = max_ps(v, 0)
//   ReLU6  std::min(std::max(v, 0), 6)          = min_ps(6, max_ps(0, v))
//   SiLU   vecmath::silu, whose level on a CPU with AVX-512 is silu16 (tensor/vector_math_avx512.h)
// (max_ps / min_ps return their second operand on NaN and on equal values, as std::max /
// std::min return their first: NaN and -0 come out as in C++; a NaN's sign through SiLU
// depends on operand order and is not kept). Hardswish stays with apply_epilogue on the
// stored values.
#include <immintrin.h>

#include "tensor/cpu_isa.h"
#include "tensor/gemm.h"
#include "tensor/vector_math_avx512.h"

namespace scalpel {

constexpr bool activates_in_registers(EpilogueActivation a) {
  return a != EpilogueActivation::hardswish;
}

template <EpilogueActivation kAct>
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline __m512 activate16(__m512 v) {
  static_assert(activates_in_registers(kAct));
  const __m512 zero = _mm512_setzero_ps();
  if constexpr (kAct == EpilogueActivation::relu) return _mm512_max_ps(v, zero);
  if constexpr (kAct == EpilogueActivation::relu6) return _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(zero, v));
  if constexpr (kAct == EpilogueActivation::silu) return vecmath::detail::silu16(v);
  return v;
}

// The same, the activation known at run time (one activates_in_registers covers).
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline __m512 activate16(EpilogueActivation a, __m512 v) {
  switch (a) {
    case EpilogueActivation::relu: return activate16<EpilogueActivation::relu>(v);
    case EpilogueActivation::relu6: return activate16<EpilogueActivation::relu6>(v);
    case EpilogueActivation::silu: return activate16<EpilogueActivation::silu>(v);
    default: return v;
  }
}

}  // namespace scalpel
