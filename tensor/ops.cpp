// Reference implementations of the raw tensor ops (see ops.h for contracts). Each op is a
// readable loop over strided indices; a contiguous fast path sits beside the generic one
// where it is a one-line loop.
#include "tensor/ops.h"

#include <cmath>
#include <limits>

#include "tensor/backend.h"
#include "tensor/gemm.h"

namespace scalpel::ops {

void require_cpu(const char* op, const Tensor& t) {
  SCALPEL_CHECK(t.defined(), "{}: undefined tensor", op);
  SCALPEL_CHECK(t.device().is_cpu(), "{}: tensor {} is on {}, which has no implementation of this op", op,
                t.str(), t.device().str());
}

// A defined tensor off the CPU: the op runs its device backend's kernel.
static bool on_device(const Tensor& t) { return t.defined() && !t.device().is_cpu(); }

static void require_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  SCALPEL_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch {} vs {}", op, dtype_name(a.dtype()),
                dtype_name(b.dtype()));
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SCALPEL_CHECK(da == db || da == 1 || db == 1, "shapes {} and {} cannot be broadcast together", shape_str(a),
                  shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---------------------------------------------------------------- binary

// out[i] = fn(a[i], b[i]) over the broadcast shape; Out is the result element type.
template <typename Out, typename T, typename Fn>
static void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, Fn fn) {
  Out* y = out.data<Out>();
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
    const T* x0 = a.data<T>();
    const T* x1 = b.data<T>();
    parallel_for(out.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) y[i] = static_cast<Out>(fn(x0[i], x1[i]));
    });
    return;
  }
  const Shape sa = detail::broadcast_strides(a, out.shape());
  const Shape sb = detail::broadcast_strides(b, out.shape());
  const T* x0 = static_cast<const T*>(a.storage()->data());
  const T* x1 = static_cast<const T*>(b.storage()->data());
  int64_t i = 0;
  detail::strided_for_each<2>(out.shape(), {&sa, &sb}, {a.offset(), b.offset()},
                              [&](const std::array<int64_t, 2>& o) { y[i++] = static_cast<Out>(fn(x0[o[0]], x1[o[1]])); });
}

// A device tensor goes to its backend's `binary` kernel (tensor/backend.h).
template <typename Fn>
static Tensor arithmetic(const char* op, BinaryOp device_op, const Tensor& a, const Tensor& b, Fn fn) {
  if (on_device(a)) return backend::run<backend::Op::binary>(a.device(), device_op, a, b);
  require_cpu(op, a);
  require_cpu(op, b);
  require_same_dtype(op, a, b);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape()), a.dtype());
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    binary_loop<T, T>(a, b, out, [&](T x, T y) { return fn(x, y); });
  });
  return out;
}

template <typename Fn>
static Tensor comparison(const char* op, const Tensor& a, const Tensor& b, Fn fn) {
  require_cpu(op, a);
  require_cpu(op, b);
  require_same_dtype(op, a, b);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape()), DType::U8);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    binary_loop<uint8_t, T>(a, b, out, [&](T x, T y) { return fn(x, y) ? 1 : 0; });
  });
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) { return arithmetic("add", BinaryOp::Add, a, b, [](auto x, auto y) { return x + y; }); }
Tensor sub(const Tensor& a, const Tensor& b) { return arithmetic("sub", BinaryOp::Sub, a, b, [](auto x, auto y) { return x - y; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return arithmetic("mul", BinaryOp::Mul, a, b, [](auto x, auto y) { return x * y; }); }
Tensor div(const Tensor& a, const Tensor& b) {
  SCALPEL_CHECK(is_floating(a.dtype()), "div: integer division is not supported ({})", a.str());
  return arithmetic("div", BinaryOp::Div, a, b, [](auto x, auto y) { return x / y; });
}
Tensor pow(const Tensor& a, const Tensor& b) {
  SCALPEL_CHECK(is_floating(a.dtype()), "pow: needs float tensors ({})", a.str());
  return arithmetic("pow", BinaryOp::Pow, a, b, [](auto x, auto y) { return std::pow(x, y); });
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return arithmetic("maximum", BinaryOp::Max, a, b, [](auto x, auto y) { return x >= y || std::isnan(double(x)) ? x : y; });
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return arithmetic("minimum", BinaryOp::Min, a, b, [](auto x, auto y) { return x <= y || std::isnan(double(x)) ? x : y; });
}

// A device tensor goes to its backend's `affine` kernel (tensor/backend.h).
Tensor add_scalar(const Tensor& a, double s) {
  if (on_device(a)) return backend::run<backend::Op::affine>(a.device(), a, 1.0, s);
  return map(a, [s](auto x) { return x + s; });
}
Tensor mul_scalar(const Tensor& a, double s) {
  if (on_device(a)) return backend::run<backend::Op::affine>(a.device(), a, s, 0.0);
  return map(a, [s](auto x) { return x * s; });
}
Tensor pow_scalar(const Tensor& a, double e) {
  if (e == 2) return map(a, [](auto x) { return x * x; });
  return map(a, [e](auto x) { return std::pow(x, static_cast<decltype(x)>(e)); });
}

void add_(Tensor& a, const Tensor& b, double alpha) {
  require_cpu("add_", a);
  require_cpu("add_", b);
  require_same_dtype("add_", a, b);
  Tensor src = b.expand(a.shape());
  dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(alpha);
    if (a.is_contiguous() && src.is_contiguous()) {
      T* y = a.data<T>();
      const T* x = src.data<T>();
      parallel_for(a.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) y[i] += al * x[i];
      });
      return;
    }
    T* y = static_cast<T*>(a.storage()->data());
    const T* x = static_cast<const T*>(src.storage()->data());
    detail::strided_for_each<2>(a.shape(), {&a.strides(), &src.strides()}, {a.offset(), src.offset()},
                                [&](const std::array<int64_t, 2>& o) { y[o[0]] += al * x[o[1]]; });
  });
}

Tensor eq(const Tensor& a, const Tensor& b) { return comparison("eq", a, b, [](auto x, auto y) { return x == y; }); }
Tensor ne(const Tensor& a, const Tensor& b) { return comparison("ne", a, b, [](auto x, auto y) { return x != y; }); }
Tensor lt(const Tensor& a, const Tensor& b) { return comparison("lt", a, b, [](auto x, auto y) { return x < y; }); }
Tensor le(const Tensor& a, const Tensor& b) { return comparison("le", a, b, [](auto x, auto y) { return x <= y; }); }
Tensor gt(const Tensor& a, const Tensor& b) { return comparison("gt", a, b, [](auto x, auto y) { return x > y; }); }
Tensor ge(const Tensor& a, const Tensor& b) { return comparison("ge", a, b, [](auto x, auto y) { return x >= y; }); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  require_cpu("where", cond);
  require_cpu("where", a);
  require_cpu("where", b);
  SCALPEL_CHECK(cond.dtype() == DType::U8, "where: condition must be uint8, got {}", dtype_name(cond.dtype()));
  require_same_dtype("where", a, b);
  Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape()));
  Tensor out = Tensor::empty(shape, a.dtype());
  const Shape sc = detail::broadcast_strides(cond, shape);
  const Shape sa = detail::broadcast_strides(a, shape);
  const Shape sb = detail::broadcast_strides(b, shape);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const uint8_t* c = static_cast<const uint8_t*>(cond.storage()->data());
    const T* x = static_cast<const T*>(a.storage()->data());
    const T* y = static_cast<const T*>(b.storage()->data());
    T* z = out.data<T>();
    int64_t i = 0;
    detail::strided_for_each<3>(shape, {&sc, &sa, &sb}, {cond.offset(), a.offset(), b.offset()},
                                [&](const std::array<int64_t, 3>& o) { z[i++] = c[o[0]] ? x[o[1]] : y[o[2]]; });
  });
  return out;
}

// ---------------------------------------------------------------- unary

Tensor neg(const Tensor& a) { return map(a, [](auto x) { return -x; }); }
Tensor exp(const Tensor& a) { return map(a, [](auto x) { return std::exp(x); }); }
Tensor log(const Tensor& a) { return map(a, [](auto x) { return std::log(x); }); }
Tensor sqrt(const Tensor& a) { return map(a, [](auto x) { return std::sqrt(x); }); }
Tensor abs(const Tensor& a) { return map(a, [](auto x) { return std::abs(x); }); }
Tensor sign(const Tensor& a) {
  return map(a, [](auto x) { return static_cast<decltype(x)>((x > 0) - (x < 0)); });
}
Tensor tanh(const Tensor& a) { return map(a, [](auto x) { return std::tanh(x); }); }
Tensor sigmoid(const Tensor& a) {
  return map(a, [](auto x) { return decltype(x)(1) / (decltype(x)(1) + std::exp(-x)); });
}
Tensor clamp(const Tensor& a, double lo, double hi) {
  return map(a, [lo, hi](auto x) {
    using T = decltype(x);
    return x < T(lo) ? T(lo) : (x > T(hi) ? T(hi) : x);
  });
}

// ---------------------------------------------------------------- reductions

namespace {

struct ReducePlan {
  std::vector<bool> reduced;  // per input axis
  Shape out_shape;            // with keepdim
  Shape out_shape_final;      // as returned
  Shape out_strides;          // strides of the output as seen from the input (0 on reduced axes)
  int64_t count = 1;          // elements reduced into each output
};

ReducePlan plan_reduce(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  ReducePlan p;
  const int64_t nd = a.dim();
  p.reduced.assign(nd, axes.empty());
  for (int64_t ax : axes) {
    int64_t w = wrap_axis(ax, nd, "reduction axis");
    if (nd > 0) {
      SCALPEL_CHECK(!p.reduced[w] || axes.empty(), "reduction axis {} repeated", ax);
      p.reduced[w] = true;
    }
  }
  for (int64_t d = 0; d < nd; ++d) {
    p.out_shape.push_back(p.reduced[d] ? 1 : a.shape()[d]);
    if (p.reduced[d]) p.count *= a.shape()[d];
    else p.out_shape_final.push_back(a.shape()[d]);
    if (keepdim && p.reduced[d]) p.out_shape_final.push_back(1);
  }
  if (keepdim) p.out_shape_final = p.out_shape;
  p.out_strides = contiguous_strides(p.out_shape);
  for (int64_t d = 0; d < nd; ++d)
    if (p.reduced[d]) p.out_strides[d] = 0;
  return p;
}

// Folds every input element into acc[out index] with fold(acc, x); returns the accumulators.
template <typename T, typename Acc, typename Fold>
std::vector<Acc> reduce_loop(const Tensor& a, const ReducePlan& p, Acc init, Fold fold) {
  std::vector<Acc> acc(shape_numel(p.out_shape), init);
  const T* x = static_cast<const T*>(a.storage()->data());
  detail::strided_for_each<2>(a.shape(), {&a.strides(), &p.out_strides}, {a.offset(), 0},
                              [&](const std::array<int64_t, 2>& o) { fold(acc[o[1]], x[o[0]]); });
  return acc;
}

template <typename Finish>
Tensor reduce_sum_like(const char* op, const Tensor& a, const std::vector<int64_t>& axes, bool keepdim, Finish finish) {
  require_cpu(op, a);
  ReducePlan p = plan_reduce(a, axes, keepdim);
  Tensor out = Tensor::empty(p.out_shape_final, a.dtype());
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // Accumulate in double: the reference favours accuracy over speed.
    auto acc = reduce_loop<T, double>(a, p, 0.0, [](double& s, T x) { s += static_cast<double>(x); });
    T* y = out.data<T>();
    for (size_t i = 0; i < acc.size(); ++i) y[i] = static_cast<T>(finish(acc[i], p.count));
  });
  return out;
}

template <bool IsMax>
Tensor reduce_extreme(const char* op, const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  require_cpu(op, a);
  SCALPEL_CHECK(a.numel() > 0, "{}: empty tensor {} has no {}", op, a.str(), op);
  ReducePlan p = plan_reduce(a, axes, keepdim);
  SCALPEL_CHECK(p.count > 0, "{}: reducing an empty axis of {}", op, a.str());
  Tensor out = Tensor::empty(p.out_shape_final, a.dtype());
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T init = IsMax ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
    auto acc = reduce_loop<T, T>(a, p, init, [](T& m, T x) {
      if (std::isnan(double(x)) || (IsMax ? x > m : x < m)) m = x;  // NaN propagates
    });
    std::copy(acc.begin(), acc.end(), out.data<T>());
  });
  return out;
}

}  // namespace

// A device tensor goes to its backend's `reduce` and `argmax` kernels (tensor/backend.h).
Tensor sum(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  if (on_device(a)) return backend::run<backend::Op::reduce>(a.device(), ReduceOp::Sum, a, axes, keepdim);
  return reduce_sum_like("sum", a, axes, keepdim, [](double s, int64_t) { return s; });
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  SCALPEL_CHECK(is_floating(a.dtype()), "mean: needs a float tensor, got {}", a.str());
  if (on_device(a)) return backend::run<backend::Op::reduce>(a.device(), ReduceOp::Mean, a, axes, keepdim);
  return reduce_sum_like("mean", a, axes, keepdim, [](double s, int64_t n) { return s / static_cast<double>(n); });
}

Tensor max(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  if (on_device(a)) return backend::run<backend::Op::reduce>(a.device(), ReduceOp::Max, a, axes, keepdim);
  return reduce_extreme<true>("max", a, axes, keepdim);
}
Tensor min(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  return reduce_extreme<false>("min", a, axes, keepdim);
}

Tensor var(const Tensor& a, const std::vector<int64_t>& axes, int64_t correction, bool keepdim) {
  SCALPEL_CHECK(is_floating(a.dtype()), "var: needs a float tensor, got {}", a.str());
  Tensor m = mean(a, axes, /*keepdim=*/true);
  Tensor d = sub(a, m);
  ReducePlan p = plan_reduce(a, axes, keepdim);
  const double denom = static_cast<double>(p.count - correction);
  return reduce_sum_like("var", mul(d, d), axes, keepdim, [denom](double s, int64_t) { return s / denom; });
}

template <bool IsMax>
static Tensor arg_extreme(const char* op, const Tensor& a, int64_t axis, bool keepdim) {
  require_cpu(op, a);
  axis = wrap_axis(axis, a.dim());
  const int64_t n = a.dim() == 0 ? 1 : a.shape()[axis];
  SCALPEL_CHECK(n > 0, "{}: axis {} of {} is empty", op, axis, a.str());
  // Move the axis last and iterate rows.
  Tensor moved = a.dim() == 0 ? a.reshape({1}) : a.transpose(axis, -1).contiguous();
  const int64_t rows = moved.numel() / n;
  Shape out_shape = a.shape();
  if (a.dim() > 0) {
    if (keepdim) out_shape[axis] = 1;
    else out_shape.erase(out_shape.begin() + axis);
  }
  Shape moved_out_shape(moved.shape().begin(), moved.shape().end() - 1);
  Tensor idx = Tensor::empty(moved_out_shape, DType::I64);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = moved.data<T>();
    int64_t* out = idx.data<int64_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = x + r * n;
      int64_t best = 0;
      for (int64_t i = 1; i < n; ++i)
        if (IsMax ? row[i] > row[best] : row[i] < row[best]) best = i;
      out[r] = best;
    }
  });
  if (a.dim() == 0) return idx.reshape({});
  // Undo the transpose on the remaining axes.
  Tensor back = idx.unsqueeze(-1).transpose(axis, -1).contiguous();
  return back.reshape(out_shape);
}

Tensor argmax(const Tensor& a, int64_t axis, bool keepdim) {
  if (on_device(a)) return backend::run<backend::Op::argmax>(a.device(), a, axis, keepdim);
  return arg_extreme<true>("argmax", a, axis, keepdim);
}
Tensor argmin(const Tensor& a, int64_t axis, bool keepdim) { return arg_extreme<false>("argmin", a, axis, keepdim); }

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const int64_t lead = t.dim() - static_cast<int64_t>(shape.size());
  SCALPEL_CHECK(lead >= 0, "sum_to: cannot reduce {} to {}", shape_str(t.shape()), shape_str(shape));
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d < lead) axes.push_back(d);
    else if (shape[d - lead] == 1 && t.shape()[d] != 1) axes.push_back(d);
    else SCALPEL_CHECK(shape[d - lead] == t.shape()[d], "sum_to: cannot reduce {} to {}", shape_str(t.shape()),
                       shape_str(shape));
  }
  if (axes.empty()) return t.reshape(shape);
  return sum(t, axes, /*keepdim=*/true).reshape(shape);
}

// ---------------------------------------------------------------- matmul

namespace {
// A matrix operand: its inner two axes are row-major (trans=false) or column-major (trans=true).
struct MatrixView {
  Tensor t;
  bool trans = false;
  int64_t ld = 0;
};

MatrixView as_matrix(const Tensor& t) {
  const int64_t r = t.size(-2), c = t.size(-1);
  const int64_t s0 = t.strides()[t.dim() - 2], s1 = t.strides()[t.dim() - 1];
  if (s1 == 1 && s0 >= std::max<int64_t>(c, 1)) return {t, false, s0};
  if (s0 == 1 && s1 >= std::max<int64_t>(r, 1)) return {t, true, s1};
  Tensor c2 = t.contiguous();
  return {c2, false, std::max<int64_t>(c, 1)};
}
}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  require_cpu("matmul", a_in);
  require_cpu("matmul", b_in);
  require_same_dtype("matmul", a_in, b_in);
  SCALPEL_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: scalars are not matrices ({} x {})",
                shape_str(a_in.shape()), shape_str(b_in.shape()));
  Tensor a = a_in.dim() == 1 ? a_in.unsqueeze(0) : a_in;
  Tensor b = b_in.dim() == 1 ? b_in.unsqueeze(1) : b_in;
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  SCALPEL_CHECK(b.size(-2) == K, "matmul: shapes {} and {} do not match (inner sizes {} vs {})",
                shape_str(a_in.shape()), shape_str(b_in.shape()), K, b.size(-2));
  Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(batch_a, batch_b);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Shape full_a = batch, full_b = batch;
  full_a.insert(full_a.end(), {M, K});
  full_b.insert(full_b.end(), {K, N});
  MatrixView ma = as_matrix(a.expand(full_a));
  MatrixView mb = as_matrix(b.expand(full_b));
  Tensor out = Tensor::empty(out_shape, a.dtype());
  Shape batch_sa(ma.t.strides().begin(), ma.t.strides().end() - 2);
  Shape batch_sb(mb.t.strides().begin(), mb.t.strides().end() - 2);
  Shape batch_so = contiguous_strides(batch);
  for (auto& s : batch_so) s *= M * N;
  dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(ma.t.storage()->data());
    const T* pb = static_cast<const T*>(mb.t.storage()->data());
    T* pc = out.data<T>();
    detail::strided_for_each<3>(batch, {&batch_sa, &batch_sb, &batch_so}, {ma.t.offset(), mb.t.offset(), 0},
                                [&](const std::array<int64_t, 3>& o) {
                                  gemm(ma.trans, mb.trans, M, N, K, T(1), pa + o[0], ma.ld, pb + o[1], mb.ld, T(0),
                                       pc + o[2], std::max<int64_t>(N, 1));
                                });
  });
  if (a_in.dim() == 1) out = out.squeeze(-2);
  if (b_in.dim() == 1) out = out.squeeze(-1);
  return out;
}

// ---------------------------------------------------------------- joining and filling

Tensor concat(const std::vector<Tensor>& tensors, int64_t axis) {
  SCALPEL_CHECK(!tensors.empty(), "concat: no tensors");
  const Tensor& first = tensors[0];
  axis = wrap_axis(axis, first.dim());
  Shape shape = first.shape();
  shape[axis] = 0;
  for (const Tensor& t : tensors) {
    SCALPEL_CHECK(t.defined() && t.device() == first.device(), "concat: tensors on {} and {}",
                  first.device().str(), t.defined() ? t.device().str() : "(undefined)");
    require_same_dtype("concat", first, t);
    SCALPEL_CHECK(t.dim() == first.dim(), "concat: {} and {} differ in rank", shape_str(first.shape()),
                  shape_str(t.shape()));
    for (int64_t d = 0; d < t.dim(); ++d)
      SCALPEL_CHECK(d == axis || t.shape()[d] == first.shape()[d], "concat along axis {}: shapes {} and {} differ",
                    axis, shape_str(first.shape()), shape_str(t.shape()));
    shape[axis] += t.shape()[axis];
  }
  if (!first.device().is_cpu()) return backend::run<backend::Op::concat>(first.device(), tensors, axis);
  require_cpu("concat", first);
  Tensor out = Tensor::empty(shape, first.dtype());
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    Tensor dst = out.slice(axis, at, at + t.shape()[axis]);
    dst.copy_(t);
    at += t.shape()[axis];
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t axis) {
  SCALPEL_CHECK(!tensors.empty(), "stack: no tensors");
  axis = wrap_axis(axis, tensors[0].dim() + 1);
  std::vector<Tensor> expanded;
  for (const Tensor& t : tensors) {
    SCALPEL_CHECK(t.shape() == tensors[0].shape(), "stack: shapes {} and {} differ", shape_str(tensors[0].shape()),
                  shape_str(t.shape()));
    expanded.push_back(t.unsqueeze(axis));
  }
  return concat(expanded, axis);
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  require_cpu("one_hot", labels);
  SCALPEL_CHECK(labels.dtype() == DType::I64, "one_hot: labels must be int64, got {}", dtype_name(labels.dtype()));
  Shape shape = labels.shape();
  shape.push_back(num_classes);
  Tensor out = Tensor::zeros(shape, dtype);
  auto values = labels.values<int64_t>();
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* y = out.data<T>();
    for (size_t i = 0; i < values.size(); ++i) {
      SCALPEL_CHECK(values[i] >= 0 && values[i] < num_classes, "one_hot: label {} out of range [0, {})", values[i],
                    num_classes);
      y[i * num_classes + values[i]] = T(1);
    }
  });
  return out;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  SCALPEL_CHECK(a.shape() == b.shape(), "max_abs_diff: shapes {} and {} differ", shape_str(a.shape()),
                shape_str(b.shape()));
  auto va = a.to_vector(), vb = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    double d = std::abs(va[i] - vb[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    m = std::max(m, d);
  }
  return m;
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return false;
  auto va = a.to_vector(), vb = b.to_vector();
  for (size_t i = 0; i < va.size(); ++i)
    if (!(std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i]))) return false;
  return true;
}

}  // namespace scalpel::ops
