// Losses: fused reference kernels for cross entropy and BCE-with-logits (forward and
// backward per row / element), the other losses composed from differentiable ops.
#include "layers/loss.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "tensor/backend.h"
#include "layers/functional.h"
#include "tensor/parallel.h"

namespace scalpel::nn {
namespace {

using V = std::vector<Tensor>;

Tensor reduce(const Tensor& losses, Reduction reduction) {
  switch (reduction) {
    case Reduction::None: return losses;
    case Reduction::Sum: return sum(losses);
    case Reduction::Mean: return mean(losses);
  }
  fail("loss: unknown reduction {}", static_cast<int>(reduction));
}

// A constant operand (target, weights) in the logits' dtype, contiguous, without history.
Tensor constant_like(const Tensor& t, const Tensor& logits) { return t.detach().to(logits.dtype()).contiguous(); }

void check_logits(const char* loss, const Tensor& logits, int64_t min_dim) {
  SCALPEL_CHECK(logits.defined() && logits.dim() >= min_dim && is_floating(logits.dtype()),
                "{}: expected float logits with at least {} dimensions, got {}", loss, min_dim,
                logits.defined() ? logits.str() : "an undefined tensor");
}

void check_same_shape(const char* loss, const Tensor& logits, const Tensor& target) {
  SCALPEL_CHECK(target.defined() && target.shape() == logits.shape(), "{}: target {} does not match logits {}", loss,
                target.defined() ? shape_str(target.shape()) : "(undefined)", shape_str(logits.shape()));
}

// ---------------------------------------------------------------- cross entropy kernel

// Logits viewed as [N, C, S] (S = product of the trailing axes); row (n, s) holds the C
// logits of one target, `S` apart in memory. Targets are [N, S] (contiguous int64).
struct ClassRows {
  int64_t n, c, s;
  explicit ClassRows(const Tensor& logits)
      : n(logits.size(0)), c(logits.size(1)), s(logits.numel() / std::max<int64_t>(logits.size(0) * logits.size(1), 1)) {}
  int64_t rows() const { return n * s; }
  int64_t base(int64_t row) const { return (row / s) * c * s + row % s; }
};

struct CrossEntropyRows {
  Tensor losses;              // per target, in the target's shape
  double weight_sum = 0;      // sum of w[t_i] over non-ignored targets (their count without weights)
};

// Per-target losses (before reduction), see cross_entropy() in loss.h.
CrossEntropyRows cross_entropy_rows(const Tensor& x, const Tensor& target, const Tensor& weight, double eps,
                                    int64_t ignore_index) {
  const ClassRows R(x);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    CrossEntropyRows out{Tensor::empty(target.shape(), x.dtype())};
    const T* px = x.data<T>();
    const int64_t* pt = target.data<int64_t>();
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    T* pl = out.losses.data<T>();
    for (int64_t r = 0; r < R.rows(); ++r)
      if (pt[r] != ignore_index) out.weight_sum += pw ? pw[pt[r]] : 1.0;
    parallel_for(R.rows(), std::max<int64_t>(1, 4096 / std::max<int64_t>(R.c, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t t = pt[r];
        if (t == ignore_index) {
          pl[r] = 0;
          continue;
        }
        const T* row = px + R.base(r);
        T max = -std::numeric_limits<T>::infinity();
        for (int64_t c = 0; c < R.c; ++c) max = std::max(max, row[c * R.s]);
        T sum = 0;
        for (int64_t c = 0; c < R.c; ++c) sum += std::exp(row[c * R.s] - max);
        // -log p_c = log(sum) - (x_c - max), grouped so that large logits keep their digits.
        const T log_sum = std::log(sum);
        T smooth = 0;
        if (eps > 0)
          for (int64_t c = 0; c < R.c; ++c) smooth += (pw ? pw[c] : T(1)) * (log_sum - (row[c * R.s] - max));
        const T wt = pw ? pw[t] : T(1);
        pl[r] = T(1 - eps) * wt * (log_sum - (row[t * R.s] - max)) + T(eps / R.c) * smooth;
      }
    });
    return out;
  });
}

// gx[i, c] = g_i * (p_c * A_i - a_c), where loss_i = sum_c a_c * -log p_c with
// a_c = (1 - eps) w[t] [c == t] + eps / C * w[c] and A_i = sum_c a_c. Ignored rows get 0.
Tensor cross_entropy_rows_backward(const Tensor& g_rows, const Tensor& x, const Tensor& target, const Tensor& weight,
                                   double eps, int64_t ignore_index) {
  const ClassRows R(x);
  const Tensor g = g_rows.contiguous();
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor gx = Tensor::empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    const T* pg = g.data<T>();
    const int64_t* pt = target.data<int64_t>();
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    T* out = gx.data<T>();
    T weight_total = 0;
    for (int64_t c = 0; c < R.c; ++c) weight_total += pw ? pw[c] : T(1);
    parallel_for(R.rows(), std::max<int64_t>(1, 4096 / std::max<int64_t>(R.c, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t t = pt[r];
        const T* row = px + R.base(r);
        T* grow = out + R.base(r);
        if (t == ignore_index) {
          for (int64_t c = 0; c < R.c; ++c) grow[c * R.s] = 0;
          continue;
        }
        T max = -std::numeric_limits<T>::infinity();
        for (int64_t c = 0; c < R.c; ++c) max = std::max(max, row[c * R.s]);
        T sum = 0;
        for (int64_t c = 0; c < R.c; ++c) sum += std::exp(row[c * R.s] - max);
        const T wt = pw ? pw[t] : T(1);
        const T A = T(1 - eps) * wt + T(eps / R.c) * weight_total;
        for (int64_t c = 0; c < R.c; ++c) {
          const T p = std::exp(row[c * R.s] - max) / sum;
          const T a = (c == t ? T(1 - eps) * wt : T(0)) + T(eps / R.c) * (pw ? pw[c] : T(1));
          grow[c * R.s] = pg[r] * (p * A - a);
        }
      }
    });
    return gx;
  });
}

// ---------------------------------------------------------------- BCE with logits kernel

// softplus(-x) = log(1 + exp(-x)), stable for large |x|.
template <typename T> T softplus_neg(T x) { return std::log1p(std::exp(-std::abs(x))) + std::max(-x, T(0)); }

// Elementwise losses; t, pos_weight and weight are contiguous and already of x's shape.
Tensor bce_elements(const Tensor& x, const Tensor& t, const Tensor& pos_weight, const Tensor& weight) {
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor out = Tensor::empty(x.shape(), x.dtype());
    const T *px = x.data<T>(), *pt = t.data<T>();
    const T* pp = pos_weight.defined() ? pos_weight.data<T>() : nullptr;
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    T* pl = out.data<T>();
    parallel_for(x.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T lw = pp ? T(1) + (pp[i] - T(1)) * pt[i] : T(1);
        pl[i] = (pw ? pw[i] : T(1)) * ((T(1) - pt[i]) * px[i] + lw * softplus_neg(px[i]));
      }
    });
    return out;
  });
}

// d loss / dx = w * ((1 - t) - lw * sigmoid(-x)), lw = 1 + (pos_weight - 1) t.
Tensor bce_elements_backward(const Tensor& g_in, const Tensor& x, const Tensor& t, const Tensor& pos_weight,
                             const Tensor& weight) {
  const Tensor g = g_in.contiguous();
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor gx = Tensor::empty(x.shape(), x.dtype());
    const T *px = x.data<T>(), *pt = t.data<T>(), *pg = g.data<T>();
    const T* pp = pos_weight.defined() ? pos_weight.data<T>() : nullptr;
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    T* out = gx.data<T>();
    parallel_for(x.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T lw = pp ? T(1) + (pp[i] - T(1)) * pt[i] : T(1);
        const T sig_neg = px[i] >= 0 ? std::exp(-px[i]) / (T(1) + std::exp(-px[i])) : T(1) / (T(1) + std::exp(px[i]));
        out[i] = pg[i] * (pw ? pw[i] : T(1)) * ((T(1) - pt[i]) - lw * sig_neg);
      }
    });
    return gx;
  });
}

// `t` (optional) broadcast to `shape`, contiguous, in the logits' dtype.
Tensor broadcast_constant(const char* loss, const char* what, const Tensor& t, const Tensor& logits) {
  if (!t.defined()) return Tensor();
  bool fits = false;
  try {
    fits = ops::broadcast_shapes(t.shape(), logits.shape()) == logits.shape();
  } catch (const Error&) {  // incompatible shapes: reported below with the loss's name
  }
  SCALPEL_CHECK(fits, "{}: {} of shape {} does not broadcast to the logits {}", loss, what, shape_str(t.shape()),
                shape_str(logits.shape()));
  return constant_like(t, logits).expand(logits.shape()).contiguous();
}

}  // namespace

Reduction parse_reduction(const std::string& text) {
  if (text == "none") return Reduction::None;
  if (text == "mean") return Reduction::Mean;
  if (text == "sum") return Reduction::Sum;
  fail("unknown loss reduction '{}' (none, mean or sum)", text);
}

// ---------------------------------------------------------------- cross entropy

// The device branch (tensor/backend.h): logits [N, C] and targets [N] on the device, without
// class weights, label smoothing or ignored targets.
static Tensor device_cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  if (logits.dim() != 2 || o.weight.defined() || o.label_smoothing != 0)
    backend::not_implemented("cross_entropy with class weights, label smoothing or spatial targets", logits.device());
  // Checks every target is in [0, C) (an ignored target is refused there too).
  Tensor rows = backend::run<backend::Op::cross_entropy_rows>(logits.device(), logits, target);
  Tensor losses = record("cross_entropy", rows, {logits}, [x = logits.detach(), target](const Tensor& g) {
    return V{backend::run<backend::Op::cross_entropy_rows_backward>(g.device(), g, x, target)};
  });
  return reduce(losses, o.reduction);  // no ignored targets: the mean is over all N
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target_in, const CrossEntropyOptions& o) {
  check_logits("cross_entropy", logits, 2);
  const int64_t C = logits.size(1);
  Shape target_shape = logits.shape();
  target_shape.erase(target_shape.begin() + 1);
  SCALPEL_CHECK(target_in.defined() && target_in.dtype() == DType::I64 && target_in.shape() == target_shape,
                "cross_entropy: expected int64 targets of shape {} for logits {}, got {}", shape_str(target_shape),
                shape_str(logits.shape()), target_in.defined() ? target_in.str() : "an undefined tensor");
  SCALPEL_CHECK(o.label_smoothing >= 0 && o.label_smoothing <= 1,
                "cross_entropy: label_smoothing must be in [0, 1], got {}", o.label_smoothing);
  SCALPEL_CHECK(!o.weight.defined() || (o.weight.dim() == 1 && o.weight.size(0) == C),
                "cross_entropy: class weight has shape {} but the logits {} have {} classes",
                shape_str(o.weight.shape()), shape_str(logits.shape()), C);
  if (!logits.device().is_cpu()) return device_cross_entropy(logits, target_in, o);
  const Tensor x = logits.detach().contiguous();
  const Tensor target = target_in.contiguous();
  const Tensor weight = o.weight.defined() ? constant_like(o.weight, logits) : Tensor();
  {
    const int64_t* pt = target.data<int64_t>();
    for (int64_t i = 0; i < target.numel(); ++i)
      SCALPEL_CHECK(pt[i] == o.ignore_index || (pt[i] >= 0 && pt[i] < C),
                    "cross_entropy: target {} at flat position {} is outside [0, {}) (logits {})", pt[i], i, C,
                    shape_str(logits.shape()));
  }
  CrossEntropyRows rows = cross_entropy_rows(x, target, weight, o.label_smoothing, o.ignore_index);
  const double eps = o.label_smoothing;
  const int64_t ignore = o.ignore_index;
  Tensor losses = record("cross_entropy", rows.losses, {logits}, [x, target, weight, eps, ignore](const Tensor& g) {
    return V{cross_entropy_rows_backward(g, x, target, weight, eps, ignore)};
  });
  if (o.reduction == Reduction::Mean) return mul(sum(losses), 1.0 / rows.weight_sum);
  return reduce(losses, o.reduction);
}

// ---------------------------------------------------------------- BCE with logits

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const Tensor& pos_weight_in,
                                        Reduction reduction, const Tensor& weight_in) {
  const char* name = "binary_cross_entropy_with_logits";
  check_logits(name, logits, 0);
  check_same_shape(name, logits, target);
  const Tensor x = logits.detach().contiguous();
  const Tensor t = constant_like(target, logits);
  const Tensor pos_weight = broadcast_constant(name, "pos_weight", pos_weight_in, logits);
  const Tensor weight = broadcast_constant(name, "weight", weight_in, logits);
  Tensor losses = record("binary_cross_entropy_with_logits", bce_elements(x, t, pos_weight, weight), {logits},
                         [x, t, pos_weight, weight](const Tensor& g) {
                           return V{bce_elements_backward(g, x, t, pos_weight, weight)};
                         });
  return reduce(losses, reduction);
}

// ---------------------------------------------------------------- focal

Tensor focal_loss(const Tensor& logits, const Tensor& target, double gamma, const Tensor& alpha, Reduction reduction) {
  check_logits("focal_loss", logits, 2);
  SCALPEL_CHECK(logits.dim() == 2, "focal_loss: expected logits [N, C], got {}", shape_str(logits.shape()));
  const int64_t N = logits.size(0), C = logits.size(1);
  SCALPEL_CHECK(target.defined() && target.dtype() == DType::I64 && target.shape() == Shape{N},
                "focal_loss: expected int64 targets [{}] for logits {}, got {}", N, shape_str(logits.shape()),
                target.defined() ? target.str() : "an undefined tensor");
  SCALPEL_CHECK(gamma >= 0, "focal_loss: gamma must be >= 0, got {}", gamma);
  SCALPEL_CHECK(!alpha.defined() || alpha.shape() == Shape{C}, "focal_loss: alpha has shape {} but the logits {} have {} classes",
                shape_str(alpha.shape()), shape_str(logits.shape()), C);
  const Tensor one_hot = ops::one_hot(target, C, logits.dtype());  // Error names a bad label
  const Tensor logp_t = sum(mul(log_softmax(logits, 1), one_hot), {1});
  Tensor losses = neg(logp_t);
  if (gamma != 0) losses = mul(losses, pow(neg(exp(logp_t)) + 1.0, gamma));
  if (alpha.defined()) losses = mul(losses, ops::sum(ops::mul(one_hot, constant_like(alpha, logits)), {1}));
  return reduce(losses, reduction);
}

Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& target_in, double alpha, double gamma,
                          Reduction reduction) {
  check_logits("sigmoid_focal_loss", logits, 0);
  check_same_shape("sigmoid_focal_loss", logits, target_in);
  SCALPEL_CHECK(gamma >= 0, "sigmoid_focal_loss: gamma must be >= 0, got {}", gamma);
  const Tensor t = constant_like(target_in, logits);
  const Tensor not_t = ops::add_scalar(ops::neg(t), 1.0);
  const Tensor p = sigmoid(logits);
  const Tensor p_t = mul(p, t) + mul(neg(p) + 1.0, not_t);
  Tensor losses = binary_cross_entropy_with_logits(logits, t, {}, Reduction::None);
  if (gamma != 0) losses = mul(losses, pow(neg(p_t) + 1.0, gamma));
  if (alpha >= 0) losses = mul(losses, ops::add(ops::mul_scalar(t, alpha), ops::mul_scalar(not_t, 1 - alpha)));
  return reduce(losses, reduction);
}

// ---------------------------------------------------------------- Dice

namespace {
// 1 - mean over classes of (2 sum(p t) + smooth) / (sum p + sum t + smooth), sums over `axes`.
Tensor dice_from_probabilities(const Tensor& p, const Tensor& t, const std::vector<int64_t>& axes, double smooth) {
  const Tensor intersection = sum(mul(p, t), axes);
  const Tensor dice = div(mul(intersection, 2.0) + smooth, sum(p, axes) + ops::add_scalar(ops::sum(t, axes), smooth));
  return neg(mean(dice)) + 1.0;
}
}  // namespace

Tensor dice_loss(const Tensor& logits, const Tensor& target, double smooth) {
  check_logits("dice_loss", logits, 2);
  Shape target_shape = logits.shape();
  target_shape.erase(target_shape.begin() + 1);
  SCALPEL_CHECK(target.defined() && target.dtype() == DType::I64 && target.shape() == target_shape,
                "dice_loss: expected int64 targets of shape {} for logits {}, got {}", shape_str(target_shape),
                shape_str(logits.shape()), target.defined() ? target.str() : "an undefined tensor");
  SCALPEL_CHECK(smooth >= 0, "dice_loss: smooth must be >= 0, got {}", smooth);
  const int64_t nd = logits.dim();
  // one_hot appends the class axis; move it to position 1 to match the logits.
  Shape order{0, nd - 1};
  for (int64_t d = 1; d < nd - 1; ++d) order.push_back(d);
  const Tensor t = ops::one_hot(target, logits.size(1), logits.dtype()).permute(order).contiguous();
  std::vector<int64_t> axes{0};
  for (int64_t d = 2; d < nd; ++d) axes.push_back(d);
  return dice_from_probabilities(softmax(logits, 1), t, axes, smooth);
}

Tensor binary_dice_loss(const Tensor& logits, const Tensor& target, double smooth) {
  check_logits("binary_dice_loss", logits, 0);
  check_same_shape("binary_dice_loss", logits, target);
  SCALPEL_CHECK(smooth >= 0, "binary_dice_loss: smooth must be >= 0, got {}", smooth);
  return dice_from_probabilities(sigmoid(logits), constant_like(target, logits), {}, smooth);
}

// ---------------------------------------------------------------- MSE

Tensor mse_loss(const Tensor& x, const Tensor& target, Reduction reduction) {
  check_logits("mse_loss", x, 0);
  check_same_shape("mse_loss", x, target);
  const Tensor d = sub(x, constant_like(target, x));
  return reduce(mul(d, d), reduction);
}

// ---------------------------------------------------------------- class weights

std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts) {
  SCALPEL_CHECK(!counts.empty(), "balanced class weights: no classes");
  double n = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    SCALPEL_CHECK(counts[c] > 0, "balanced class weights: class {} has {} samples (every class needs at least one)", c,
                  counts[c]);
    n += static_cast<double>(counts[c]);
  }
  std::vector<double> w(counts.size());
  for (size_t c = 0; c < counts.size(); ++c) w[c] = n / (static_cast<double>(counts.size()) * counts[c]);
  return w;
}

namespace {
double parse_weight(const std::string& spec, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  SCALPEL_CHECK(used > 0 && used == text.size() && std::isfinite(v) && v >= 0,
                "class weights '{}': '{}' is not a non-negative number", spec, text);
  return v;
}
}  // namespace

std::vector<double> parse_class_weights(const std::string& spec, const std::vector<std::string>& class_names,
                                        const std::vector<int64_t>& counts) {
  const size_t k = class_names.size();
  if (spec == "balanced") {
    SCALPEL_CHECK(counts.size() == k, "class weights 'balanced': got {} class counts for {} classes", counts.size(), k);
    try {
      return balanced_class_weights(counts);
    } catch (const Error& e) {
      fail("class weights 'balanced': {}", e.what());
    }
  }
  std::vector<std::string> parts;
  std::stringstream stream(spec);
  for (std::string part; std::getline(stream, part, ',');) parts.push_back(part);
  SCALPEL_CHECK(!parts.empty(), "class weights: empty specification");
  const bool by_name = spec.find('=') != std::string::npos;
  if (!by_name) {
    SCALPEL_CHECK(parts.size() == k, "class weights '{}': {} values for {} classes", spec, parts.size(), k);
    std::vector<double> w;
    for (const std::string& p : parts) w.push_back(parse_weight(spec, p));
    return w;
  }
  std::vector<double> w(k, 1.0);
  for (const std::string& p : parts) {
    const size_t eq = p.find('=');
    SCALPEL_CHECK(eq != std::string::npos, "class weights '{}': '{}' is not NAME=WEIGHT", spec, p);
    const std::string name = p.substr(0, eq);
    size_t c = 0;
    while (c < k && class_names[c] != name) ++c;
    SCALPEL_CHECK(c < k, "class weights '{}': unknown class '{}' (classes: {})", spec, name, fmt::join(class_names, ", "));
    w[c] = parse_weight(spec, p.substr(eq + 1));
  }
  return w;
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | losses: cross entropy (weights, smoothing, ignore index), BCE with logits, focal, soft Dice, MSE | `layers/loss.cpp` |
//   | cross entropy without weights or smoothing (`softmax.cu`) | |
