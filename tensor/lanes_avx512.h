#pragma once
// Lane masks and lane permutes shared by the AVX-512 kernels (the GEMM's bf16 packing, im2col's
// stride-2 rows, the stem's max pool). Only for code compiled for, or marked,
// SCALPEL_TARGET_AVX512.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "tensor/cpu_isa.h"

namespace scalpel::lanes {

// The first n of 16 lanes (n <= 0: none; n >= 16: all).
inline __mmask16 first(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

// vpermt2ps indices that pick x[2 i] (even) or x[2 i + 1] (odd), i < 16, from 32 floats x held
// in two vectors.
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline __m512i even() {
  return _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
}
[[SCALPEL_TARGET_AVX512, gnu::always_inline]] inline __m512i odd() {
  return _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
}

}  // namespace scalpel::lanes
