// Constant padding of the last two axes (nn::pad2d, layers/ops/pad2d.h): the kernel, its
// tensor-level entry point and its registration. The backward needs no kernel: the layer op
// slices the interior of the gradient. The launcher is declared in cuda/kernels.inc, since
// cuDNN's asymmetric padding (cuda/cudnn/cudnn.cpp) pads and crops with it too.
#include "cuda/compat.cuh"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

// One thread per output element of [planes, out_h, out_w].
__global__ void pad2d_kernel(const float* x, float* y, int64_t planes, int64_t h, int64_t w,
                             int64_t top, int64_t left, int64_t out_h, int64_t out_w, float value) {
  const int64_t n = planes * out_h * out_w;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % out_w, oy = i / out_w % out_h, plane = i / (out_h * out_w);
    const int64_t yy = oy - top, xx = ox - left;
    y[i] = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? x[(plane * h + yy) * w + xx] : value;
  }
}

}  // namespace

void pad2d(const Stream& s, const float* x, float* y, int64_t planes, int64_t h, int64_t w,
           int64_t top, int64_t left, int64_t out_h, int64_t out_w, float value) {
  const int64_t n = planes * out_h * out_w;
  if (n > 0)
    SCALPEL_LAUNCH(pad2d_kernel, grid_for(n, kThreads), kThreads, 0, s, x, y, planes, h, w, top,
                   left, out_h, out_w, value);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

Tensor pad2d(const Tensor& x_in, int64_t top, int64_t bottom, int64_t left, int64_t right, double value) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("pad2d", {&x});
  const int64_t h = x.size(-2), w = x.size(-1);
  Shape shape = x.shape();
  shape[shape.size() - 2] += top + bottom;
  shape[shape.size() - 1] += left + right;
  Tensor y = empty_like_device(shape, x);
  SCALPEL_CUDA_CALL(s, pad2d, in(x), out(y), x.numel() / std::max<int64_t>(h * w, 1), h, w, top, left,
                    h + top + bottom, w + left + right, static_cast<float>(value));
  return y;
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(pad2d) { backend::register_kernel<backend::Op::pad2d>(type, pad2d); }
#endif
