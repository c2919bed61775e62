// Differentiable wrappers around tensor/ops.h: forward with the raw op, backward as a
// closure over detached saved tensors (see autograd.h).
#include "autograd/functions.h"

#include <cmath>

namespace scalpel {

using V = std::vector<Tensor>;

// ---------------------------------------------------------------- elementwise

Tensor add(const Tensor& a, const Tensor& b) {
  return record("add", ops::add(a, b), {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return V{ops::sum_to(g, sa), ops::sum_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return record("sub", ops::sub(a, b), {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return V{ops::sum_to(g, sa), ops::sum_to(ops::neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return record("mul", ops::mul(a, b), {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    return V{ops::sum_to(ops::mul(g, b), a.shape()), ops::sum_to(ops::mul(g, a), b.shape())};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  return record("div", ops::div(a, b), {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    Tensor ga = ops::div(g, b);
    Tensor gb = ops::neg(ops::div(ops::mul(ga, a), b));  // -g a / b^2
    return V{ops::sum_to(ga, a.shape()), ops::sum_to(gb, b.shape())};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor y = ops::pow(a, b);
  return record("pow", y, {a, b}, [a = a.detach(), b = b.detach(), y = y.detach()](const Tensor& g) {
    // d/da = b a^(b-1); d/db = y log a (only where a > 0, as PyTorch's masked form)
    Tensor ga = ops::mul(g, ops::mul(b, ops::pow(a, ops::add_scalar(b, -1))));
    Tensor log_a = ops::map(a, [](auto x) { return x > 0 ? std::log(x) : decltype(x)(0); });
    Tensor gb = ops::mul(g, ops::mul(y, log_a));
    return V{ops::sum_to(ga, a.shape()), ops::sum_to(gb, b.shape())};
  });
}

Tensor pow(const Tensor& a, double e) {
  return record("pow_scalar", ops::pow_scalar(a, e), {a}, [a = a.detach(), e](const Tensor& g) {
    return V{ops::mul(g, ops::mul_scalar(ops::pow_scalar(a, e - 1), e))};
  });
}

Tensor add(const Tensor& a, double s) {
  return record("add_scalar", ops::add_scalar(a, s), {a}, [](const Tensor& g) { return V{g}; });
}

Tensor mul(const Tensor& a, double s) {
  return record("mul_scalar", ops::mul_scalar(a, s), {a}, [s](const Tensor& g) { return V{ops::mul_scalar(g, s)}; });
}

// Routes the gradient to `a` where pick_a (uint8) is set, else to `b`.
static V route(const Tensor& g, const Tensor& pick_a, const Shape& sa, const Shape& sb) {
  Tensor zero = Tensor::zeros({}, g.dtype());
  return V{ops::sum_to(ops::where(pick_a, g, zero), sa), ops::sum_to(ops::where(pick_a, zero, g), sb)};
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  return record("maximum", ops::maximum(a, b), {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    return route(g, ops::ge(a, b), a.shape(), b.shape());
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  return record("minimum", ops::minimum(a, b), {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    return route(g, ops::le(a, b), a.shape(), b.shape());
  });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return record("where", ops::where(cond, a, b), {a, b}, [c = cond.detach(), sa = a.shape(), sb = b.shape()](const Tensor& g) {
    Shape full = ops::broadcast_shapes(g.shape(), c.shape());
    return route(g.expand(full), c.expand(full), sa, sb);
  });
}

Tensor neg(const Tensor& a) {
  return record("neg", ops::neg(a), {a}, [](const Tensor& g) { return V{ops::neg(g)}; });
}

Tensor exp(const Tensor& a) {
  Tensor y = ops::exp(a);
  return record("exp", y, {a}, [y = y.detach()](const Tensor& g) { return V{ops::mul(g, y)}; });
}

Tensor log(const Tensor& a) {
  return record("log", ops::log(a), {a}, [a = a.detach()](const Tensor& g) { return V{ops::div(g, a)}; });
}

Tensor sqrt(const Tensor& a) {
  Tensor y = ops::sqrt(a);
  return record("sqrt", y, {a}, [y = y.detach()](const Tensor& g) {
    return V{ops::div(g, ops::mul_scalar(y, 2))};
  });
}

Tensor abs(const Tensor& a) {
  return record("abs", ops::abs(a), {a}, [a = a.detach()](const Tensor& g) { return V{ops::mul(g, ops::sign(a))}; });
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  return record("clamp", ops::clamp(a, lo, hi), {a}, [a = a.detach(), lo, hi](const Tensor& g) {
    Tensor inside = ops::map(a, [lo, hi](auto x) { return decltype(x)(x >= lo && x <= hi ? 1 : 0); });
    return V{ops::mul(g, inside)};
  });
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }

// ---------------------------------------------------------------- reductions

// Shape of a reduction's output with keepdim, so gradients broadcast back to the input.
static Shape keepdim_shape(const Tensor& a, const std::vector<int64_t>& axes) {
  Shape s = a.shape();
  if (axes.empty()) {
    std::fill(s.begin(), s.end(), 1);
    return s;
  }
  for (int64_t ax : axes) s[wrap_axis(ax, a.dim())] = 1;
  return s;
}

Tensor sum(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  return record("sum", ops::sum(a, axes, keepdim), {a}, [sa = a.shape(), ks = keepdim_shape(a, axes)](const Tensor& g) {
    return V{g.reshape(ks).expand(sa).contiguous()};
  });
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  Tensor y = ops::mean(a, axes, keepdim);
  const double count = static_cast<double>(a.numel()) / static_cast<double>(std::max<int64_t>(y.numel(), 1));
  return record("mean", y, {a}, [sa = a.shape(), ks = keepdim_shape(a, axes), count](const Tensor& g) {
    return V{ops::mul_scalar(g.reshape(ks).expand(sa), 1.0 / count)};
  });
}

// max/min: gradient shared evenly among the positions equal to the extreme.
static Tensor extreme(const char* name, const Tensor& a, const std::vector<int64_t>& axes, bool keepdim, bool is_max) {
  Tensor y = is_max ? ops::max(a, axes, keepdim) : ops::min(a, axes, keepdim);
  return record(name, y, {a}, [a = a.detach(), y = y.detach(), axes](const Tensor& g) {
    Shape ks = keepdim_shape(a, axes);
    Tensor hit = ops::eq(a, y.reshape(ks)).to(a.dtype());
    Tensor count = ops::sum(hit, axes, /*keepdim=*/true);
    return V{ops::div(ops::mul(hit, g.reshape(ks)), count)};
  });
}

Tensor max(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) { return extreme("max", a, axes, keepdim, true); }
Tensor min(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) { return extreme("min", a, axes, keepdim, false); }

Tensor var(const Tensor& a, const std::vector<int64_t>& axes, int64_t correction, bool keepdim) {
  Tensor y = ops::var(a, axes, correction, keepdim);
  const double n = static_cast<double>(a.numel()) / static_cast<double>(std::max<int64_t>(y.numel(), 1));
  return record("var", y, {a}, [a = a.detach(), axes, n, correction](const Tensor& g) {
    // d var / d a_i = 2 (a_i - mean) / (n - correction)
    Tensor centered = ops::sub(a, ops::mean(a, axes, true));
    Tensor scale = ops::mul_scalar(g.reshape(keepdim_shape(a, axes)), 2.0 / (n - static_cast<double>(correction)));
    return V{ops::mul(centered, scale)};
  });
}

// ---------------------------------------------------------------- matmul

Tensor matmul(const Tensor& a, const Tensor& b) {
  return record("matmul", ops::matmul(a, b), {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    // Promote 1-D operands as the forward did, then reduce broadcast batch axes.
    Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
    Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
    Tensor g2 = g;
    if (a.dim() == 1) g2 = g2.unsqueeze(-2);
    if (b.dim() == 1) g2 = g2.unsqueeze(-1);
    Tensor ga = ops::matmul(g2, b2.transpose(-1, -2));
    Tensor gb = ops::matmul(a2.transpose(-1, -2), g2);
    return V{ops::sum_to(ga, a2.shape()).reshape(a.shape()), ops::sum_to(gb, b2.shape()).reshape(b.shape())};
  });
}

// ---------------------------------------------------------------- shape

Tensor reshape(const Tensor& a, const Shape& shape) {
  return record("reshape", a.reshape(shape), {a}, [sa = a.shape()](const Tensor& g) { return V{g.reshape(sa)}; });
}

Tensor permute(const Tensor& a, const Shape& order) {
  Shape inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[wrap_axis(order[i], a.dim())] = static_cast<int64_t>(i);
  return record("permute", a.permute(order), {a}, [inverse](const Tensor& g) { return V{g.permute(inverse)}; });
}

Tensor transpose(const Tensor& a, int64_t axis0, int64_t axis1) {
  return record("transpose", a.transpose(axis0, axis1), {a},
                [axis0, axis1](const Tensor& g) { return V{g.transpose(axis0, axis1)}; });
}

Tensor slice(const Tensor& a, int64_t axis, int64_t start, int64_t end, int64_t step) {
  return record("slice", a.slice(axis, start, end, step), {a}, [sa = a.shape(), axis, start, end, step](const Tensor& g) {
    Tensor ga = Tensor::zeros(sa, g.dtype());
    ga.slice(axis, start, end, step).copy_(g);
    return V{ga};
  });
}

Tensor select(const Tensor& a, int64_t axis, int64_t index) {
  return record("select", a.select(axis, index), {a}, [sa = a.shape(), axis, index](const Tensor& g) {
    Tensor ga = Tensor::zeros(sa, g.dtype());
    ga.select(axis, index).copy_(g);
    return V{ga};
  });
}

Tensor squeeze(const Tensor& a, int64_t axis) {
  return record("squeeze", a.squeeze(axis), {a}, [sa = a.shape()](const Tensor& g) { return V{g.reshape(sa)}; });
}

Tensor unsqueeze(const Tensor& a, int64_t axis) {
  return record("unsqueeze", a.unsqueeze(axis), {a}, [sa = a.shape()](const Tensor& g) { return V{g.reshape(sa)}; });
}

Tensor expand(const Tensor& a, const Shape& shape) {
  return record("expand", a.expand(shape), {a}, [sa = a.shape()](const Tensor& g) { return V{ops::sum_to(g, sa)}; });
}

Tensor flatten(const Tensor& a, int64_t start_axis, int64_t end_axis) {
  return record("flatten", a.flatten(start_axis, end_axis), {a}, [sa = a.shape()](const Tensor& g) { return V{g.reshape(sa)}; });
}

Tensor contiguous(const Tensor& a) {
  return record("contiguous", a.contiguous(), {a}, [](const Tensor& g) { return V{g}; });
}

Tensor concat(const std::vector<Tensor>& tensors, int64_t axis) {
  Tensor y = ops::concat(tensors, axis);
  std::vector<int64_t> sizes;
  const int64_t ax = wrap_axis(axis, tensors[0].dim());
  for (const Tensor& t : tensors) sizes.push_back(t.shape()[ax]);
  return record("concat", y, tensors, [sizes, ax](const Tensor& g) {
    V grads;
    int64_t at = 0;
    for (int64_t s : sizes) {
      grads.push_back(g.slice(ax, at, at + s).contiguous());
      at += s;
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t axis) {
  SCALPEL_CHECK(!tensors.empty(), "stack: no tensors");
  const int64_t ax = wrap_axis(axis, tensors[0].dim() + 1);
  std::vector<Tensor> expanded;
  for (const Tensor& t : tensors) expanded.push_back(unsqueeze(t, ax));
  return concat(expanded, ax);
}

Tensor to_dtype(const Tensor& a, DType dtype) {
  return record("to_dtype", a.to(dtype), {a}, [src = a.dtype()](const Tensor& g) { return V{g.to(src)}; });
}

}  // namespace scalpel
