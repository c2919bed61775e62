#pragma once
// Internals of tensor/vector_math.h shared by its per-ISA files (vector_math.cpp: the scalar
// level and the dispatch; vector_math_avx2.cpp, vector_math_avx512.cpp). Not a public API.
#include "tensor/vector_math.h"

namespace scalpel::vecmath::detail {

// exp(x) = 2^n e^r (see the header). Outside [kExpLo, kExpHi] the result is already 0 or
// +inf in float: exp(-104) < 2^-150 rounds to 0, exp(89) > FLT_MAX.
inline constexpr float kExpLo = -104.0f;
inline constexpr float kExpHi = 89.0f;
inline constexpr float kLog2e = 1.44269504088896340736f;
// ln2 = kLn2Hi + kLn2Lo: kLn2Hi is ln2 rounded to float, so x - n kLn2Hi is exact in one FMA
// for |n| <= 150 (its bits fit in 24), and kLn2Lo carries the rest.
inline constexpr float kLn2Hi = 0.693147182464599609375f;
inline constexpr float kLn2Lo = -1.904654299957768e-09f;
// e^r ~ 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4) on |r| <= ln2/2: minimax for
// relative error (Lawson iterations over 20001 points, then rounded to float): 3.8e-9.
inline constexpr float kC2 = 4.999999404e-01f;
inline constexpr float kC3 = 1.666652113e-01f;
inline constexpr float kC4 = 4.166838899e-02f;
inline constexpr float kC5 = 8.368710056e-03f;
inline constexpr float kC6 = 1.381460461e-03f;

// Each level's kernels; the vector ones must only run where cpu_supports() says so.
const Kernels& avx2_kernels();
const Kernels& avx512_kernels();

}  // namespace scalpel::vecmath::detail
