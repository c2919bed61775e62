// Dropout and stochastic depth: a seeded mask and a differentiable multiplication.
#include "layers/ops/dropout.h"

#include "tensor/backend.h"
#include "layers/functional.h"

namespace scalpel::ops {

Tensor dropout_mask(const Shape& shape, double p, DType dtype, Generator& gen) {
  SCALPEL_CHECK(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got {}", p);
  return dispatch_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    Tensor mask = Tensor::empty(shape, dtype);
    T* m = mask.data<T>();
    const T keep = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
    // Sequential on purpose: the mask depends only on the generator's state, not on threads.
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = gen.uniform() < p ? T(0) : keep;
    return mask;
  });
}

}  // namespace scalpel::ops

namespace scalpel::nn {

// On a CUDA device the mask comes from the dropout kernel's counter-based hash, seeded from
// `gen` (so a seed still fixes the run, but the mask differs from the CPU's for that seed).
static uint64_t device_seed(Generator& gen) {
  return (static_cast<uint64_t>(gen.next_u32()) << 32) | gen.next_u32();
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  SCALPEL_CHECK(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got {}", p);
  if (!training || p == 0) return x;
  if (!x.device().is_cpu()) {
    backend::DropoutOutput r = backend::run<backend::Op::dropout>(x.device(), x, p, device_seed(gen));
    return record("dropout", r.y, {x}, [mask = r.mask, p](const Tensor& gy) {
      return std::vector<Tensor>{backend::run<backend::Op::dropout_backward>(gy.device(), gy, mask, p)};
    });
  }
  return mul(x, ops::dropout_mask(x.shape(), p, x.dtype(), gen));
}

Tensor drop_path(const Tensor& x, double p, bool training, Generator& gen) {
  SCALPEL_CHECK(p >= 0 && p <= 1, "drop_path: probability must be in [0, 1], got {}", p);
  SCALPEL_CHECK(x.dim() >= 1, "drop_path: expected an input [N, ...], got {}", shape_str(x.shape()));
  if (!training || p == 0) return x;
  Shape mask_shape(x.dim(), 1);  // one draw per sample, broadcast over the rest
  mask_shape[0] = x.size(0);
  if (!x.device().is_cpu()) {
    const Tensor scale = backend::run<backend::Op::drop_path_scale>(x.device(), x.size(0), p, device_seed(gen), x.device());
    return mul(x, scale.reshape(mask_shape));
  }
  return mul(x, ops::dropout_mask(mask_shape, p, x.dtype(), gen));
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | dropout, drop_path | `layers/ops/dropout.cpp` | | `dropout.cu` | |
