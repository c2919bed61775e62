#include "tensor/random.h"

#include <cmath>
#include <numbers>

namespace scalpel {

// PCG32 (O'Neill, pcg-random.org): 64-bit LCG state, xorshift-rotate output.
Generator::Generator(uint64_t seed) { this->seed(seed); }

void Generator::seed(uint64_t seed) {
  state_ = 0;
  inc_ = (seed << 1u) | 1u;
  next_u32();
  state_ += seed ^ 0x853c49e6748fea9bULL;
  next_u32();
  has_spare_ = false;
}

uint32_t Generator::next_u32() {
  uint64_t old = state_;
  state_ = old * 6364136223846793005ULL + inc_;
  uint32_t xorshifted = static_cast<uint32_t>(((old >> 18u) ^ old) >> 27u);
  uint32_t rot = static_cast<uint32_t>(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

double Generator::uniform() {
  uint64_t hi = next_u32() >> 5, lo = next_u32() >> 6;  // 27 + 26 = 53 bits
  return static_cast<double>((hi << 26) | lo) * (1.0 / 9007199254740992.0);
}

double Generator::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  double r = std::sqrt(-2.0 * std::log(u1));
  double theta = 2.0 * std::numbers::pi * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

uint64_t Generator::below(uint64_t n) {
  SCALPEL_CHECK(n > 0, "Generator::below(0)");
  // Rejection sampling on 64 bits keeps the result unbiased.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  while (true) {
    uint64_t r = (static_cast<uint64_t>(next_u32()) << 32) | next_u32();
    if (r < limit) return r % n;
  }
}

Generator::State Generator::get_state() const { return {state_, inc_, has_spare_, spare_}; }
void Generator::set_state(const State& s) {
  state_ = s.state;
  inc_ = s.inc;
  has_spare_ = s.has_spare;
  spare_ = s.spare;
}

Generator& default_generator() {
  static Generator gen;
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().seed(seed); }

template <typename Fill>
static Tensor& fill_random(Tensor& t, Fill draw) {
  SCALPEL_CHECK(t.device().is_cpu(), "random fill of {}: generate on the CPU, then copy", t.str());
  dispatch_floating(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor c = Tensor::empty(t.shape(), t.dtype());
    T* p = c.data<T>();
    for (int64_t i = 0; i < c.numel(); ++i) p[i] = static_cast<T>(draw());
    t.copy_(c);
  });
  return t;
}

Tensor& uniform_(Tensor& t, double lo, double hi, Generator& gen) {
  return fill_random(t, [&] { return gen.uniform(lo, hi); });
}

Tensor& normal_(Tensor& t, double mean, double std, Generator& gen) {
  return fill_random(t, [&] { return mean + std * gen.normal(); });
}

Tensor rand(const Shape& shape, Generator& gen, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  return uniform_(t, 0, 1, gen);
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  return normal_(t, 0, 1, gen);
}

static int64_t receptive_field(const Shape& s) {
  int64_t r = 1;
  for (size_t d = 2; d < s.size(); ++d) r *= s[d];
  return r;
}

int64_t fan_in(const Shape& s) {
  SCALPEL_CHECK(s.size() >= 2, "fan_in needs a weight with at least 2 dimensions, got {}", shape_str(s));
  return s[1] * receptive_field(s);
}

int64_t fan_out(const Shape& s) {
  SCALPEL_CHECK(s.size() >= 2, "fan_out needs a weight with at least 2 dimensions, got {}", shape_str(s));
  return s[0] * receptive_field(s);
}

Tensor& kaiming_uniform_(Tensor& w, double gain, bool fan_mode_in, Generator& gen) {
  double fan = static_cast<double>(fan_mode_in ? fan_in(w.shape()) : fan_out(w.shape()));
  double bound = gain * std::sqrt(3.0 / fan);
  return uniform_(w, -bound, bound, gen);
}

Tensor& kaiming_normal_(Tensor& w, double gain, bool fan_mode_in, Generator& gen) {
  double fan = static_cast<double>(fan_mode_in ? fan_in(w.shape()) : fan_out(w.shape()));
  return normal_(w, 0, gain / std::sqrt(fan), gen);
}

Tensor& xavier_uniform_(Tensor& w, double gain, Generator& gen) {
  double a = gain * std::sqrt(6.0 / static_cast<double>(fan_in(w.shape()) + fan_out(w.shape())));
  return uniform_(w, -a, a, gen);
}

Tensor& xavier_normal_(Tensor& w, double gain, Generator& gen) {
  double s = gain * std::sqrt(2.0 / static_cast<double>(fan_in(w.shape()) + fan_out(w.shape())));
  return normal_(w, 0, s, gen);
}

}  // namespace scalpel
