// Activations: scalar value/derivative pairs, one elementwise loop for all of them, and the
// autograd wrappers of layers/functional.h.
#include "layers/ops/activations.h"

#include <cmath>
#include <type_traits>

#include "tensor/backend.h"
#include "layers/functional.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"
#include "tensor/vector_math.h"

namespace scalpel::ops {
namespace {

template <typename T> T stable_sigmoid(T x) {
  if (x >= 0) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

// Each activation: value(x) = f(x) and backward(x, g) = g * f'(x). `s` is LeakyReLU's
// negative slope. Piecewise ones select g or 0 rather than multiply by a 0/1 derivative:
// a select compiles to a branch-free blend (a data-dependent branch mispredicts on half of
// the elements), and a zero derivative gives 0 even for a non-finite g, as PyTorch.
struct ReLU {
  template <typename T> static T value(T x, T) { return x > 0 ? x : T(0); }
  template <typename T> static T backward(T x, T g, T) { return x > 0 ? g : T(0); }
};
struct ReLU6 {
  template <typename T> static T value(T x, T) { return std::min(std::max(x, T(0)), T(6)); }
  template <typename T> static T backward(T x, T g, T) { return (x > 0 && x < 6) ? g : T(0); }
};
struct LeakyReLU {
  template <typename T> static T value(T x, T s) { return x > 0 ? x : x * s; }
  template <typename T> static T backward(T x, T g, T s) { return x > 0 ? g : g * s; }
};
struct Sigmoid {
  template <typename T> static T value(T x, T) { return stable_sigmoid(x); }
  template <typename T> static T backward(T x, T g, T) {
    const T s = stable_sigmoid(x);
    return g * s * (T(1) - s);
  }
};
struct SiLU {
  template <typename T> static T value(T x, T) { return x * stable_sigmoid(x); }
  template <typename T> static T backward(T x, T g, T) {
    const T s = stable_sigmoid(x);
    return g * s * (T(1) + x * (T(1) - s));
  }
};
struct Tanh {
  template <typename T> static T value(T x, T) { return std::tanh(x); }
  template <typename T> static T backward(T x, T g, T) {
    const T t = std::tanh(x);
    return g * (T(1) - t * t);
  }
};
struct HardSwish {  // x * relu6(x + 3) / 6
  template <typename T> static T value(T x, T) { return x * std::min(std::max(x + T(3), T(0)), T(6)) / T(6); }
  template <typename T> static T backward(T x, T g, T) {
    const T inner = x <= 3 ? g * (x / T(3) + T(0.5)) : g;
    return x < -3 ? T(0) : inner;
  }
};
struct HardSigmoid {  // relu6(x + 3) / 6
  template <typename T> static T value(T x, T) { return std::min(std::max(x + T(3), T(0)), T(6)) / T(6); }
  template <typename T> static T backward(T x, T g, T) { return (x > -3 && x < 3) ? g / T(6) : T(0); }
};
struct GELU {  // x * Phi(x), Phi the standard normal CDF
  template <typename T> static T value(T x, T) { return x * T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2))); }
  template <typename T> static T backward(T x, T g, T) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(0.5 * M_2_SQRTPI * M_SQRT1_2);  // 1/sqrt(2 pi)
    return g * (cdf + x * pdf);
  }
};
struct GELUTanh {  // 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2/pi)
  static constexpr double k = M_SQRT2 * M_2_SQRTPI * 0.5, c = 0.044715;
  template <typename T> static T value(T x, T) { return T(0.5) * x * (T(1) + std::tanh(T(k) * (x + T(c) * x * x * x))); }
  template <typename T> static T backward(T x, T g, T) {
    const T t = std::tanh(T(k) * (x + T(c) * x * x * x));
    return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(k) * (T(1) + T(3 * c) * x * x));
  }
};

// Calls fn(F{}) with the functor of `kind`.
template <typename Fn> decltype(auto) with_activation(ActivationKind kind, Fn&& fn) {
  switch (kind) {
    case ActivationKind::ReLU: return fn(ReLU{});
    case ActivationKind::ReLU6: return fn(ReLU6{});
    case ActivationKind::LeakyReLU: return fn(LeakyReLU{});
    case ActivationKind::SiLU: return fn(SiLU{});
    case ActivationKind::Sigmoid: return fn(Sigmoid{});
    case ActivationKind::Tanh: return fn(Tanh{});
    case ActivationKind::HardSwish: return fn(HardSwish{});
    case ActivationKind::HardSigmoid: return fn(HardSigmoid{});
    case ActivationKind::GELU: return fn(GELU{});
    case ActivationKind::GELUTanh: return fn(GELUTanh{});
  }
  fail("activation: unknown kind {}", static_cast<int>(kind));
}

// The float activations built on exp run tensor/vector_math.h's kernels (same formulas, a
// vectorized exp); the functors above stay the reference and the float64 path.
using VectorForward = void (*)(const float* x, float* y, int64_t n);
using VectorBackward = void (*)(const float* x, const float* grad_y, float* grad_x, int64_t n);
VectorForward vector_forward(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::SiLU: return &vecmath::silu;
    case ActivationKind::Sigmoid: return &vecmath::sigmoid;
    default: return nullptr;
  }
}
VectorBackward vector_backward(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::SiLU: return &vecmath::silu_backward;
    case ActivationKind::Sigmoid: return &vecmath::sigmoid_backward;
    default: return nullptr;
  }
}

constexpr int64_t kGrain = 1 << 14;

}  // namespace

Tensor activation_forward(ActivationKind kind, const Tensor& x_in, double slope) {
  require_cpu("activation", x_in);
  const Tensor x = x_in.contiguous();
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    if constexpr (std::is_same_v<T, float>) {
      if (const VectorForward kernel = vector_forward(kind)) {
        parallel_for(x.numel(), kGrain, [&](int64_t begin, int64_t end) { kernel(px + begin, py + begin, end - begin); });
        return y;
      }
    }
    const T s = static_cast<T>(slope);
    with_activation(kind, [&](auto f) {
      using F = decltype(f);
      parallel_for(x.numel(), kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) py[i] = F::value(px[i], s);
      });
    });
    return y;
  });
}

Tensor activation_backward(ActivationKind kind, const Tensor& gy_in, const Tensor& x_in, double slope) {
  require_cpu("activation backward", x_in);
  SCALPEL_CHECK(gy_in.shape() == x_in.shape() && gy_in.dtype() == x_in.dtype(),
                "activation backward: gradient {} does not match input {}", gy_in.str(), x_in.str());
  const Tensor x = x_in.contiguous();
  const Tensor gy = gy_in.contiguous();
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor gx = Tensor::empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    const T* pg = gy.data<T>();
    T* out = gx.data<T>();
    if constexpr (std::is_same_v<T, float>) {
      if (const VectorBackward kernel = vector_backward(kind)) {
        parallel_for(x.numel(), kGrain, [&](int64_t begin, int64_t end) {
          kernel(px + begin, pg + begin, out + begin, end - begin);
        });
        return gx;
      }
    }
    const T s = static_cast<T>(slope);
    with_activation(kind, [&](auto f) {
      using F = decltype(f);
      parallel_for(x.numel(), kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) out[i] = F::backward(px[i], pg[i], s);
      });
    });
    return gx;
  });
}

}  // namespace scalpel::ops

namespace scalpel::nn {
namespace {

// The device kernel of an activation; GELU's tanh form has none.
UnaryOp device_unary(const char* name, ops::ActivationKind kind, Device device) {
  switch (kind) {
    case ops::ActivationKind::ReLU: return UnaryOp::Relu;
    case ops::ActivationKind::ReLU6: return UnaryOp::Relu6;
    case ops::ActivationKind::LeakyReLU: return UnaryOp::LeakyRelu;
    case ops::ActivationKind::SiLU: return UnaryOp::Silu;
    case ops::ActivationKind::Sigmoid: return UnaryOp::Sigmoid;
    case ops::ActivationKind::Tanh: return UnaryOp::Tanh;
    case ops::ActivationKind::HardSwish: return UnaryOp::HardSwish;
    case ops::ActivationKind::HardSigmoid: return UnaryOp::HardSigmoid;
    case ops::ActivationKind::GELU: return UnaryOp::Gelu;
    default: backend::not_implemented(name, device);
  }
}

Tensor activate(const char* name, ops::ActivationKind kind, const Tensor& x, double slope = 0.0) {
  if (x.defined() && !x.device().is_cpu()) {  // device branch (tensor/backend.h)
    const UnaryOp op = device_unary(name, kind, x.device());
    Tensor y = backend::run<backend::Op::unary>(x.device(), op, x, slope);
    return record(name, y, {x}, [op, slope, x = x.detach()](const Tensor& gy) {
      return std::vector<Tensor>{backend::run<backend::Op::unary_backward>(x.device(), op, x, gy, slope)};
    });
  }
  return record(name, ops::activation_forward(kind, x, slope), {x}, [kind, slope, x = x.detach()](const Tensor& gy) {
    return std::vector<Tensor>{ops::activation_backward(kind, gy, x, slope)};
  });
}

}  // namespace

using ops::ActivationKind;

Tensor relu(const Tensor& x) {
  // Already rectified, by a batch norm that applied the ReLU itself (batch_norm_relu): a
  // second ReLU would be an identity pass over the whole tensor.
  if (x.defined() && x.grad_fn() && x.grad_fn()->name == "batch_norm_relu") return x;
  return activate("relu", ActivationKind::ReLU, x);
}
Tensor relu6(const Tensor& x) { return activate("relu6", ActivationKind::ReLU6, x); }
Tensor leaky_relu(const Tensor& x, double slope) { return activate("leaky_relu", ActivationKind::LeakyReLU, x, slope); }
Tensor silu(const Tensor& x) { return activate("silu", ActivationKind::SiLU, x); }
Tensor sigmoid(const Tensor& x) { return activate("sigmoid", ActivationKind::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return activate("tanh", ActivationKind::Tanh, x); }
Tensor hardswish(const Tensor& x) { return activate("hardswish", ActivationKind::HardSwish, x); }
Tensor hardsigmoid(const Tensor& x) { return activate("hardsigmoid", ActivationKind::HardSigmoid, x); }
Tensor gelu(const Tensor& x) { return activate("gelu", ActivationKind::GELU, x); }
Tensor gelu_tanh(const Tensor& x) { return activate("gelu_tanh", ActivationKind::GELUTanh, x); }

// ---------------------------------------------------------------- Activation (by name)

Activation Activation::parse(const std::string& text) {
  Activation a;
  const std::string prefix = "leaky_relu";
  if (text.rfind(prefix, 0) == 0) {
    a.kind = prefix;
    if (text.size() == prefix.size()) return a;  // default slope 0.01, as PyTorch
    SCALPEL_CHECK(text[prefix.size()] == ':', "unknown activation '{}' (expected leaky_relu:<slope>)", text);
    const std::string number = text.substr(prefix.size() + 1);
    size_t used = 0;
    try {
      a.slope = std::stod(number, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SCALPEL_CHECK(used > 0 && used == number.size() && std::isfinite(a.slope),
                  "activation '{}': slope '{}' is not a number", text, number);
    return a;
  }
  static const char* const known[] = {"relu",        "relu6", "silu", "swish", "sigmoid", "tanh", "hardswish",
                                      "hardsigmoid", "gelu",  "gelu_tanh", "identity"};
  for (const char* k : known) {
    if (text == k) {
      a.kind = text == "swish" ? "silu" : text;
      return a;
    }
  }
  fail("unknown activation '{}' (known: relu, relu6, leaky_relu:<slope>, silu, swish, sigmoid, tanh, hardswish, "
       "hardsigmoid, gelu, gelu_tanh, identity)",
       text);
}

Tensor Activation::operator()(const Tensor& x) const {
  if (kind == "relu") return relu(x);
  if (kind == "relu6") return relu6(x);
  if (kind == "leaky_relu") return leaky_relu(x, slope);
  if (kind == "silu" || kind == "swish") return silu(x);
  if (kind == "sigmoid") return sigmoid(x);
  if (kind == "tanh") return tanh(x);
  if (kind == "hardswish") return hardswish(x);
  if (kind == "hardsigmoid") return hardsigmoid(x);
  if (kind == "gelu") return gelu(x);
  if (kind == "gelu_tanh") return gelu_tanh(x);
  if (kind == "identity") return x;
  fail("unknown activation '{}'", kind);
}

std::string Activation::str() const {
  if (kind == "leaky_relu") return fmt::format("leaky_relu:{}", slope);
  return kind;
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | relu, relu6, leaky_relu, silu, sigmoid, tanh, hardswish, hardsigmoid, gelu |
//   `layers/ops/activations.cpp` | | `elementwise.cu` | |
