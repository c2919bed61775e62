#pragma once
// The name-hashed values of scripts/fixtures/zoo.py (read its docstring): parameters,
// BatchNorm statistics and inputs as a fixed function of the state-dict name and element
// index, so whole-model fixtures need not store weights. Keep the two in step.
#include <cmath>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "layers/module.h"
#include "tensor/io/zip.h"

namespace scalpel::models::test {

// u in [0, 1) with 24 bits, for element i of the tensor named `name`.
inline double hashed_uniform(uint32_t seed, uint64_t i) {
  uint64_t z = uint64_t{seed} * 0x9E3779B97F4A7C15ull + (i + 1) * 0xBF58476D1CE4E5B9ull;
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 40) / static_cast<double>(1 << 24);
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// float32 values (as zoo.py's hashed_values) in a tensor of `dtype`.
inline Tensor hashed_values(const std::string& name, const Shape& shape, DType dtype = DType::F32) {
  const int64_t n = shape_numel(shape);
  const uint32_t seed = crc32(name);
  Tensor t = Tensor::empty(shape, dtype);
  float* f32 = dtype == DType::F32 ? t.data<float>() : nullptr;
  double* f64 = dtype == DType::F64 ? t.data<double>() : nullptr;
  // The rule depends only on the name and shape; the expressions are zoo.py's, term for term
  // (another grouping could round differently).
  enum { input, centered, variance, scale, weight } rule;
  if (name == "input") rule = input;
  else if (ends_with(name, "running_mean") || ends_with(name, ".bias")) rule = centered;
  else if (ends_with(name, "running_var")) rule = variance;
  else if (shape.size() == 1) rule = scale;
  else rule = weight;
  const double bound = shape.size() >= 2 ? std::sqrt(6.0 / static_cast<double>(n / shape[0])) : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double u = hashed_uniform(seed, static_cast<uint64_t>(i));
    double x;
    switch (rule) {
      case input: x = 2.0 * (2.0 * u - 1.0); break;
      case centered: x = 0.2 * (u - 0.5); break;
      case variance: x = 0.5 + u; break;
      case scale: x = 0.75 + 0.5 * u; break;
      default: x = (2.0 * u - 1.0) * bound;
    }
    if (f32) f32[i] = static_cast<float>(x);
    else f64[i] = static_cast<double>(static_cast<float>(x));
  }
  return t;
}

// Overwrites every floating parameter and buffer of `module` with its hashed values.
inline void fill_hashed(nn::Module& module) {
  NoGradGuard no_grad;
  for (const nn::NamedTensor& t : module.state_dict()) {
    Tensor handle = t.tensor;  // shares the module's storage
    if (is_floating(handle.dtype())) handle.copy_(hashed_values(t.name, handle.shape(), handle.dtype()));
  }
}

}  // namespace scalpel::models::test
