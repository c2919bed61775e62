#pragma once
// Seeded random numbers that are the same on every run, compiler and platform: a PCG32
// engine and our own conversions (no std::*_distribution, whose output is implementation-
// defined). Initializers follow torch.nn.init's formulas.
#include <cstdint>

#include "tensor/tensor.h"

namespace scalpel {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5ca1e1);
  void seed(uint64_t seed);
  uint32_t next_u32();
  double uniform();                      // [0, 1), 53 random bits
  double uniform(double lo, double hi);  // [lo, hi)
  double normal();                       // standard normal (Box-Muller, cached pair)
  uint64_t below(uint64_t n);            // integer in [0, n), unbiased
  // Serializable state (for exact resume).
  struct State { uint64_t state, inc; bool has_spare; double spare; };
  State get_state() const;
  void set_state(const State& s);

 private:
  uint64_t state_ = 0, inc_ = 0;
  bool has_spare_ = false;
  double spare_ = 0;
};

// The process-wide default generator (seeded with manual_seed()).
Generator& default_generator();
void manual_seed(uint64_t seed);

// Fill in place (any floating dtype, CPU).
Tensor& uniform_(Tensor& t, double lo, double hi, Generator& gen = default_generator());
Tensor& normal_(Tensor& t, double mean, double std, Generator& gen = default_generator());
Tensor rand(const Shape& shape, Generator& gen = default_generator(), DType dtype = DType::F32);
Tensor randn(const Shape& shape, Generator& gen = default_generator(), DType dtype = DType::F32);

// fan_in/fan_out as torch.nn.init computes them for a weight of shape [out, in, *kernel].
int64_t fan_in(const Shape& weight_shape);
int64_t fan_out(const Shape& weight_shape);
// gain as torch.nn.init.calculate_gain for "relu" (sqrt 2), "linear" (1), ...
Tensor& kaiming_uniform_(Tensor& w, double gain, bool fan_mode_in = true, Generator& gen = default_generator());
Tensor& kaiming_normal_(Tensor& w, double gain, bool fan_mode_in = true, Generator& gen = default_generator());
Tensor& xavier_uniform_(Tensor& w, double gain = 1.0, Generator& gen = default_generator());
Tensor& xavier_normal_(Tensor& w, double gain = 1.0, Generator& gen = default_generator());

}  // namespace scalpel
