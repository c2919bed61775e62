// Softmax / log-softmax: a reference loop over rows [outer, axis, inner], and the autograd
// wrappers of layers/functional.h.
#include "layers/ops/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/backend.h"
#include "layers/functional.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"

namespace scalpel::ops {
namespace {

// x viewed as [outer, n, inner] around `axis`; one "row" is the n elements at a fixed
// (outer, inner) pair, `inner` apart in memory.
struct Rows {
  int64_t outer = 1, n = 1, inner = 1;
  Rows(const Shape& shape, int64_t axis) {
    for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
    n = shape[axis];
    for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  }
  int64_t count() const { return outer * inner; }
  int64_t base(int64_t row) const { return (row / inner) * n * inner + row % inner; }
};

int64_t grain_for(const Rows& rows) { return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(rows.n, 1)); }

}  // namespace

Tensor softmax_forward(const Tensor& x_in, int64_t axis, bool log) {
  require_cpu("softmax", x_in);
  const Tensor x = x_in.contiguous();
  axis = wrap_axis(axis, x.dim(), "softmax axis");
  const Rows rows(x.shape(), axis);
  return dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(rows.count(), grain_for(rows), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t base = rows.base(r), step = rows.inner;
        T max = -std::numeric_limits<T>::infinity();
        for (int64_t i = 0; i < rows.n; ++i) max = std::max(max, px[base + i * step]);
        T sum = 0;
        for (int64_t i = 0; i < rows.n; ++i) sum += std::exp(px[base + i * step] - max);
        if (log) {
          // (x - max) - log(sum): subtracting max + log(sum) in one go would round away
          // digits when the logits are large (float32 ulp at 1000 is 6e-5).
          const T log_sum = std::log(sum);
          for (int64_t i = 0; i < rows.n; ++i) py[base + i * step] = (px[base + i * step] - max) - log_sum;
        } else {
          for (int64_t i = 0; i < rows.n; ++i) py[base + i * step] = std::exp(px[base + i * step] - max) / sum;
        }
      }
    });
    return y;
  });
}

Tensor softmax_backward(const Tensor& gy_in, const Tensor& y_in, int64_t axis, bool log) {
  require_cpu("softmax backward", y_in);
  SCALPEL_CHECK(gy_in.shape() == y_in.shape() && gy_in.dtype() == y_in.dtype(),
                "softmax backward: gradient {} does not match output {}", gy_in.str(), y_in.str());
  const Tensor y = y_in.contiguous();
  const Tensor gy = gy_in.contiguous();
  axis = wrap_axis(axis, y.dim(), "softmax axis");
  const Rows rows(y.shape(), axis);
  return dispatch_floating(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor gx = Tensor::empty(y.shape(), y.dtype());
    const T* py = y.data<T>();
    const T* pg = gy.data<T>();
    T* out = gx.data<T>();
    parallel_for(rows.count(), grain_for(rows), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t base = rows.base(r), step = rows.inner;
        T dot = 0;  // sum(gy * y) for softmax, sum(gy) for log_softmax
        for (int64_t i = 0; i < rows.n; ++i) {
          const int64_t k = base + i * step;
          dot += log ? pg[k] : pg[k] * py[k];
        }
        for (int64_t i = 0; i < rows.n; ++i) {
          const int64_t k = base + i * step;
          out[k] = log ? pg[k] - std::exp(py[k]) * dot : py[k] * (pg[k] - dot);
        }
      }
    });
    return gx;
  });
}

}  // namespace scalpel::ops

namespace scalpel::nn {

static Tensor softmax_impl(const char* name, const Tensor& x, int64_t axis, bool log) {
  if (x.defined() && !x.device().is_cpu()) {  // device branch (tensor/backend.h)
    SCALPEL_CHECK(x.dim() > 0 && axis >= -x.dim() && axis < x.dim(), "{}: axis {} out of range for {}", name,
                  axis, shape_str(x.shape()));
    // The kernels work on the last axis: another axis is swapped there (a gather on the
    // device) and the result swapped back (a view).
    const int64_t a = axis < 0 ? axis + x.dim() : axis, last = x.dim() - 1;
    Tensor y_last = backend::run<backend::Op::softmax_last>(x.device(), x.transpose(a, last), log);
    return record(name, y_last.transpose(a, last), {x}, [a, last, log, y_last](const Tensor& gy) {
      const Tensor gx_last =
          backend::run<backend::Op::softmax_last_backward>(gy.device(), y_last, gy.transpose(a, last), log);
      return std::vector<Tensor>{gx_last.transpose(a, last)};
    });
  }
  Tensor y = ops::softmax_forward(x, axis, log);
  return record(name, y, {x}, [y = y.detach(), axis, log](const Tensor& gy) {
    return std::vector<Tensor>{ops::softmax_backward(gy, y, axis, log)};
  });
}

Tensor softmax(const Tensor& x, int64_t axis) { return softmax_impl("softmax", x, axis, false); }
Tensor log_softmax(const Tensor& x, int64_t axis) { return softmax_impl("log_softmax", x, axis, true); }

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | softmax, log_softmax | `layers/ops/softmax.cpp` | | `softmax.cu` | |
