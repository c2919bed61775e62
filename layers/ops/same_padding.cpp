// TF/Keras "SAME" padding resolved to explicit per-side padding (declared in layers/functional.h).
#include <algorithm>
#include <utility>

#include "layers/functional.h"
#include "tensor/error.h"

namespace scalpel::nn {

namespace {
// Returns {before, after} for one axis: output ceil(in / stride), odd pixel after.
std::pair<int64_t, int64_t> same_pads(int64_t in, int64_t kernel, int64_t stride, int64_t dilation) {
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + (kernel - 1) * dilation + 1 - in, 0);
  return {total / 2, total - total / 2};
}
}  // namespace

Padding2d same_padding(int64_t in_h, int64_t in_w, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                       int64_t stride_w, int64_t dilation_h, int64_t dilation_w) {
  SCALPEL_CHECK(in_h > 0 && in_w > 0 && kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0 &&
                    dilation_h > 0 && dilation_w > 0,
                "same_padding: sizes must be positive, got input {}x{}, kernel {}x{}, stride [{}, {}], "
                "dilation [{}, {}]",
                in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w);
  const auto [top, bottom] = same_pads(in_h, kernel_h, stride_h, dilation_h);
  const auto [left, right] = same_pads(in_w, kernel_w, stride_w, dilation_w);
  return {top, bottom, left, right};
}

}  // namespace scalpel::nn
