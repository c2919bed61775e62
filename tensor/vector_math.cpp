// Kernels of tensor/vector_math.h: the scalar level over libm here, the AVX2 and AVX-512
// levels with our own exp in vector_math_avx2.cpp and vector_math_avx512.cpp, and the choice
// between them (tensor/cpu_isa.h).
#include "tensor/vector_math.h"

#include <cmath>

#include "tensor/error.h"
#include "tensor/vector_math_internal.h"

namespace scalpel::vecmath {
namespace {

// ---------------------------------------------------------------- scalar (libm)

// s = sigmoid(x) and q = 1 - sigmoid(x) from e = exp(-|x|) <= 1 (the header's formulas).
struct SigmoidParts {
  float s, q;
};
SigmoidParts sigmoid_parts(float x) {
  const float e = std::exp(-std::abs(x));
  const float d = 1.0f / (1.0f + e);
  return x >= 0.0f ? SigmoidParts{d, e * d} : SigmoidParts{e * d, d};
}

void exp_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}
void sigmoid_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = sigmoid_parts(x[i]).s;
}
void silu_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_parts(x[i]).s;
}
void sigmoid_backward_scalar(const float* x, const float* gy, float* gx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const SigmoidParts p = sigmoid_parts(x[i]);
    gx[i] = gy[i] * (p.s * p.q);
  }
}
void silu_backward_scalar(const float* x, const float* gy, float* gx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const SigmoidParts p = sigmoid_parts(x[i]);
    gx[i] = gy[i] * (p.s * (1.0f + x[i] * p.q));
  }
}

const Kernels kScalar{&exp_scalar, &sigmoid_scalar, &silu_scalar, &sigmoid_backward_scalar,
                      &silu_backward_scalar};

}  // namespace

const Kernels& kernels(Isa level) {
  SCALPEL_CHECK(cpu_supports(level), "vector math: this CPU cannot run the {} kernels", isa_name(level));
  switch (level) {
    case Isa::baseline: return kScalar;
    case Isa::avx2: return detail::avx2_kernels();
    case Isa::avx512: return detail::avx512_kernels();
  }
  fail("vector math: unknown level {}", static_cast<int>(level));
}

const Kernels& best_kernels() {
  static const Kernels& best = kernels(best_isa());
  return best;
}

}  // namespace scalpel::vecmath
