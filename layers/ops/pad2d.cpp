// nn::pad2d: constant padding of the last two axes, a filled output and a strided copy of the
// input into its interior.
#include "layers/ops/pad2d.h"

#include "tensor/backend.h"
#include "tensor/ops.h"

namespace scalpel::ops {
namespace {
// The interior of a padded tensor t (a view into t).
Tensor interior(const Tensor& t, const nn::Padding2d& p) {
  const int64_t h = t.size(-2), w = t.size(-1);
  return t.slice(t.dim() - 2, p.top, h - p.bottom).slice(t.dim() - 1, p.left, w - p.right);
}
}  // namespace

Tensor pad2d_forward(const Tensor& x, const nn::Padding2d& p, double value) {
  require_cpu("pad2d", x);
  Shape shape = x.shape();
  shape[shape.size() - 2] += p.top + p.bottom;
  shape[shape.size() - 1] += p.left + p.right;
  Tensor y = Tensor::full(shape, value, x.dtype());
  interior(y, p).copy_(x);
  return y;
}

Tensor pad2d_backward(const Tensor& gy, const nn::Padding2d& p) { return interior(gy, p).contiguous(); }

}  // namespace scalpel::ops

namespace scalpel::nn {

Tensor pad2d(const Tensor& x, const Padding2d& padding, double value) {
  SCALPEL_CHECK(x.defined() && x.dim() >= 2, "pad2d: expected an input [..., H, W], got {}",
                x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  SCALPEL_CHECK(padding.top >= 0 && padding.bottom >= 0 && padding.left >= 0 && padding.right >= 0,
                "pad2d: padding (top {}, bottom {}, left {}, right {}) must not be negative for input {}", padding.top,
                padding.bottom, padding.left, padding.right, shape_str(x.shape()));
  // On a device its padding kernel runs (tensor/backend.h); backward is the same interior view either way.
  Tensor y = x.device().is_cpu() ? ops::pad2d_forward(x, padding, value)
                                 : backend::run<backend::Op::pad2d>(x.device(), x, padding.top, padding.bottom,
                                                                    padding.left, padding.right, value);
  return record("pad2d", y, {x}, [padding](const Tensor& gy) {
    return std::vector<Tensor>{ops::pad2d_backward(gy, padding)};
  });
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | pad2d (constant padding of the last two axes) | `layers/ops/pad2d.cpp` | | `pad2d.cu` | |
