#pragma once
// Dropout masks (no autograd; see dropout() and drop_path() in layers/functional.h).
// A mask holds 0 (dropped) or 1 / (1 - p) (kept, rescaled so the expectation is unchanged);
// the layer output is x * mask. Masks are drawn from `gen` in row-major order, one uniform
// number per element (dropout) or per sample (drop_path): same seed, same mask.
#include "tensor/random.h"

namespace scalpel::ops {

// Mask of `shape`: each element kept with probability 1 - p. p in [0, 1]; p == 1 drops all.
Tensor dropout_mask(const Shape& shape, double p, DType dtype, Generator& gen);

}  // namespace scalpel::ops
