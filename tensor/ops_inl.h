#pragma once
// Template definitions for tensor/ops.h.
#include "tensor/parallel.h"
#include "tensor/strided.h"

namespace scalpel::ops {

void require_cpu(const char* op, const Tensor& t);

template <typename Fn>
Tensor map(const Tensor& a, Fn fn) {
  require_cpu("map", a);
  return dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor out = Tensor::empty(a.shape(), a.dtype());
    T* y = out.data<T>();
    if (a.is_contiguous()) {
      const T* x = a.data<T>();
      parallel_for(a.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) y[i] = static_cast<T>(fn(x[i]));
      });
    } else {
      const T* x = static_cast<const T*>(a.storage()->data());
      int64_t i = 0;
      detail::strided_for_each<1>(a.shape(), {&a.strides()}, {a.offset()},
                                  [&](const std::array<int64_t, 1>& o) { y[i++] = static_cast<T>(fn(x[o[0]])); });
    }
    return out;
  });
}

}  // namespace scalpel::ops
