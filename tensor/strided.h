#pragma once
// Strided iteration shared by the reference ops: visits every multi-index of `shape` in
// row-major order and hands the body the element offsets of K operands (each with its own
// strides, in elements). Size-0 strides express broadcasting.
#include <array>
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace scalpel::detail {

template <size_t K, typename Body>
void strided_for_each(const Shape& shape, const std::array<const Shape*, K>& strides,
                      std::array<int64_t, K> offsets, Body&& body) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  for (int64_t d = 0; d < ndim; ++d)
    if (shape[d] == 0) return;
  if (ndim == 0) {
    body(offsets);
    return;
  }
  std::vector<int64_t> index(ndim, 0);
  const int64_t inner = shape[ndim - 1];
  std::array<int64_t, K> inner_stride;
  for (size_t k = 0; k < K; ++k) inner_stride[k] = (*strides[k])[ndim - 1];
  while (true) {
    std::array<int64_t, K> o = offsets;
    for (int64_t i = 0; i < inner; ++i) {
      body(o);
      for (size_t k = 0; k < K; ++k) o[k] += inner_stride[k];
    }
    // Advance the outer index (odometer style), updating offsets incrementally.
    int64_t d = ndim - 2;
    for (; d >= 0; --d) {
      for (size_t k = 0; k < K; ++k) offsets[k] += (*strides[k])[d];
      if (++index[d] < shape[d]) break;
      for (size_t k = 0; k < K; ++k) offsets[k] -= (*strides[k])[d] * shape[d];
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

// Strides of `t` as seen through a broadcast to `shape` (0 on broadcast axes).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

}  // namespace scalpel::detail
