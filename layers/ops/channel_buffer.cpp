// nn::ChannelBuffer: DenseNet's growing concatenation, written into one preallocated buffer.
#include "layers/functional.h"
#include "tensor/error.h"

namespace scalpel::nn {
namespace {

// Copies y into channels [at, at + y.size(1)) of `buffer`, one sample at a time: each sample's
// channel range is contiguous on every device, the whole slice (N > 1) is not.
void write_channels(Tensor& buffer, int64_t at, const Tensor& y) {
  for (int64_t n = 0; n < y.size(0); ++n) buffer.select(0, n).slice(0, at, at + y.size(1)).copy_(y.select(0, n));
}

}  // namespace

ChannelBuffer::ChannelBuffer(const Tensor& first, int64_t capacity, std::string name) : name_(std::move(name)) {
  SCALPEL_CHECK(first.defined() && first.dim() == 4, "{}: expected an input [N, C, H, W], got {}", name_,
                first.defined() ? shape_str(first.shape()) : "an undefined tensor");
  SCALPEL_CHECK(capacity >= first.size(1), "{}: capacity {} is smaller than the input's {} channels", name_, capacity,
                first.size(1));
  Shape shape = first.shape();
  shape[1] = capacity;
  buffer_ = Tensor::empty(shape, first.dtype(), first.device());
  write_channels(buffer_, 0, first.detach());
  filled_ = record("channel_buffer", buffer_.slice(1, 0, first.size(1)), {first},
                   [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor ChannelBuffer::append(const Tensor& y) {
  const int64_t at = filled_.size(1);
  SCALPEL_CHECK(y.defined() && y.dim() == 4 && y.size(0) == filled_.size(0) && y.size(2) == filled_.size(2) &&
                    y.size(3) == filled_.size(3),
                "{}: cannot append {} to features {}", name_, y.defined() ? shape_str(y.shape()) : "an undefined tensor",
                shape_str(filled_.shape()));
  SCALPEL_CHECK(y.dtype() == filled_.dtype() && y.device() == filled_.device(), "{}: cannot append a {} tensor on {} to {} features on {}",
                name_, dtype_name(y.dtype()), y.device().str(), dtype_name(filled_.dtype()), filled_.device().str());
  SCALPEL_CHECK(at + y.size(1) <= buffer_.size(1), "{}: appending {} channels to {} overflows the capacity {}", name_,
                y.size(1), at, buffer_.size(1));
  write_channels(buffer_, at, y.detach());
  // Backward splits the gradient of the grown view into the earlier view's part and y's part:
  // slices, no copies.
  filled_ = record("channel_buffer_append", buffer_.slice(1, 0, at + y.size(1)), {filled_, y},
                   [at](const Tensor& g) {
                     return std::vector<Tensor>{g.slice(1, 0, at), g.slice(1, at, g.size(1))};
                   });
  return filled_;
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | channel concatenation into a preallocated buffer (DenseNet) | `layers/ops/channel_buffer.cpp` (`nn::ChannelBuffer`) |
//   | | |
