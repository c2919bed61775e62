// Max and average pooling over NCHW planes. Forward: one thread per output. Backward: one
// thread per input gathering from the outputs whose window covers it (no atomics, a fixed sum
// order). Kernels, entry points and registration.
#include "cuda/compat.cuh"

SCALPEL_KERNEL_API(
// Max pooling; `indices` [n, c, oh, ow] receives the argmax's offset within its h*w plane
// (first maximum wins; padding never wins).
void max_pool2d_forward(const Stream& s, const Pool2dShape& shape, const float* x, float* y,
                        int32_t* indices);
void max_pool2d_backward(const Stream& s, const Pool2dShape& shape, const float* dy,
                         const int32_t* indices, float* dx);
void avg_pool2d_forward(const Stream& s, const Pool2dShape& shape, const float* x, float* y);
void avg_pool2d_backward(const Stream& s, const Pool2dShape& shape, const float* dy, float* dx);
)

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

// The outputs whose window covers input coordinate `v` along one axis: [first, last].
__device__ __forceinline__ void covering(int64_t v, int64_t pad, int64_t kernel, int64_t stride,
                                         int64_t out, int64_t& first, int64_t& last) {
  const int64_t t = v + pad;  // window o covers t when o * stride <= t < o * stride + kernel
  first = t < kernel ? 0 : (t - kernel) / stride + 1;
  last = t / stride < out - 1 ? t / stride : out - 1;
}

// PyTorch's divisor: the window clipped to the padded input, or to the input itself when
// padding does not count.
__device__ __forceinline__ float avg_divisor(const Pool2dShape& p, int64_t oy, int64_t ox) {
  int64_t y0 = oy * p.stride_h - p.pad_h, x0 = ox * p.stride_w - p.pad_w;
  int64_t y1 = y0 + p.kernel_h < p.h + p.pad_h ? y0 + p.kernel_h : p.h + p.pad_h;
  int64_t x1 = x0 + p.kernel_w < p.w + p.pad_w ? x0 + p.kernel_w : p.w + p.pad_w;
  if (p.count_include_pad) return static_cast<float>((y1 - y0) * (x1 - x0));
  y0 = y0 > 0 ? y0 : 0;
  x0 = x0 > 0 ? x0 : 0;
  y1 = y1 < p.h ? y1 : p.h;
  x1 = x1 < p.w ? x1 : p.w;
  return static_cast<float>((y1 - y0) * (x1 - x0));
}

__global__ void max_pool_forward_kernel(Pool2dShape p, const float* x, float* y, int32_t* indices) {
  const int64_t oh = p.out_h(), ow = p.out_w(), n = p.n * p.c * oh * ow;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % ow, oy = i / ow % oh, plane = i / (oh * ow);
    const float* xp = x + plane * p.h * p.w;
    float best = -INFINITY;
    int64_t arg = -1;
    for (int64_t kr = 0; kr < p.kernel_h; ++kr) {
      const int64_t yy = oy * p.stride_h - p.pad_h + kr;
      if (yy < 0 || yy >= p.h) continue;
      for (int64_t ks = 0; ks < p.kernel_w; ++ks) {
        const int64_t xx = ox * p.stride_w - p.pad_w + ks;
        if (xx < 0 || xx >= p.w) continue;
        const float v = xp[yy * p.w + xx];
        if (arg < 0 || v > best || isnan(v)) {
          best = v;
          arg = yy * p.w + xx;
          if (isnan(v)) break;
        }
      }
    }
    y[i] = best;
    indices[i] = static_cast<int32_t>(arg);
  }
}

__global__ void max_pool_backward_kernel(Pool2dShape p, const float* dy, const int32_t* indices,
                                         float* dx) {
  const int64_t oh = p.out_h(), ow = p.out_w(), n = p.n * p.c * p.h * p.w;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t xx = i % p.w, yy = i / p.w % p.h, plane = i / (p.h * p.w);
    int64_t y0, y1, x0, x1;
    covering(yy, p.pad_h, p.kernel_h, p.stride_h, oh, y0, y1);
    covering(xx, p.pad_w, p.kernel_w, p.stride_w, ow, x0, x1);
    const int32_t self = static_cast<int32_t>(yy * p.w + xx);
    float acc = 0.0f;
    for (int64_t oy = y0; oy <= y1; ++oy)
      for (int64_t ox = x0; ox <= x1; ++ox) {
        const int64_t o = plane * oh * ow + oy * ow + ox;
        if (indices[o] == self) acc += dy[o];
      }
    dx[i] = acc;
  }
}

__global__ void avg_pool_forward_kernel(Pool2dShape p, const float* x, float* y) {
  const int64_t oh = p.out_h(), ow = p.out_w(), n = p.n * p.c * oh * ow;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % ow, oy = i / ow % oh, plane = i / (oh * ow);
    const float* xp = x + plane * p.h * p.w;
    float acc = 0.0f;
    for (int64_t kr = 0; kr < p.kernel_h; ++kr) {
      const int64_t yy = oy * p.stride_h - p.pad_h + kr;
      if (yy < 0 || yy >= p.h) continue;
      for (int64_t ks = 0; ks < p.kernel_w; ++ks) {
        const int64_t xx = ox * p.stride_w - p.pad_w + ks;
        if (xx >= 0 && xx < p.w) acc += xp[yy * p.w + xx];
      }
    }
    y[i] = acc / avg_divisor(p, oy, ox);
  }
}

__global__ void avg_pool_backward_kernel(Pool2dShape p, const float* dy, float* dx) {
  const int64_t oh = p.out_h(), ow = p.out_w(), n = p.n * p.c * p.h * p.w;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t xx = i % p.w, yy = i / p.w % p.h, plane = i / (p.h * p.w);
    int64_t y0, y1, x0, x1;
    covering(yy, p.pad_h, p.kernel_h, p.stride_h, oh, y0, y1);
    covering(xx, p.pad_w, p.kernel_w, p.stride_w, ow, x0, x1);
    float acc = 0.0f;
    for (int64_t oy = y0; oy <= y1; ++oy)
      for (int64_t ox = x0; ox <= x1; ++ox)
        acc += dy[plane * oh * ow + oy * ow + ox] / avg_divisor(p, oy, ox);
    dx[i] = acc;
  }
}

}  // namespace

void max_pool2d_forward(const Stream& s, const Pool2dShape& p, const float* x, float* y,
                        int32_t* indices) {
  const int64_t n = p.n * p.c * p.out_h() * p.out_w();
  if (n > 0) SCALPEL_LAUNCH(max_pool_forward_kernel, grid_for(n, kThreads), kThreads, 0, s, p, x, y, indices);
}

void max_pool2d_backward(const Stream& s, const Pool2dShape& p, const float* dy,
                         const int32_t* indices, float* dx) {
  const int64_t n = p.n * p.c * p.h * p.w;
  if (n > 0) SCALPEL_LAUNCH(max_pool_backward_kernel, grid_for(n, kThreads), kThreads, 0, s, p, dy, indices, dx);
}

void avg_pool2d_forward(const Stream& s, const Pool2dShape& p, const float* x, float* y) {
  const int64_t n = p.n * p.c * p.out_h() * p.out_w();
  if (n > 0) SCALPEL_LAUNCH(avg_pool_forward_kernel, grid_for(n, kThreads), kThreads, 0, s, p, x, y);
}

void avg_pool2d_backward(const Stream& s, const Pool2dShape& p, const float* dy, float* dx) {
  const int64_t n = p.n * p.c * p.h * p.w;
  if (n > 0) SCALPEL_LAUNCH(avg_pool_backward_kernel, grid_for(n, kThreads), kThreads, 0, s, p, dy, dx);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

MaxPoolOutput max_pool2d(const Tensor& x_in, const Pool2dShape& shape) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("max_pool2d", {&x});
  const Shape y_shape{shape.n, shape.c, shape.out_h(), shape.out_w()};
  static_assert(sizeof(int32_t) == sizeof(float));
  MaxPoolOutput r{empty_like_device(y_shape, x), empty_like_device(y_shape, x)};
  SCALPEL_CUDA_CALL(s, max_pool2d_forward, shape, in(x), out(r.y), static_cast<int32_t*>(r.indices.raw_data()));
  return r;
}

Tensor max_pool2d_backward(const Tensor& dy_in, const Tensor& indices, const Pool2dShape& shape) {
  const Tensor dy = dense(dy_in);
  const Stream s = stream_for("max_pool2d backward", {&dy, &indices});
  Tensor dx = empty_like_device({shape.n, shape.c, shape.h, shape.w}, dy);
  SCALPEL_CUDA_CALL(s, max_pool2d_backward, shape, in(dy), static_cast<const int32_t*>(indices.raw_data()),
                    out(dx));
  return dx;
}

Tensor avg_pool2d(const Tensor& x_in, const Pool2dShape& shape) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("avg_pool2d", {&x});
  Tensor y = empty_like_device({shape.n, shape.c, shape.out_h(), shape.out_w()}, x);
  SCALPEL_CUDA_CALL(s, avg_pool2d_forward, shape, in(x), out(y));
  return y;
}

Tensor avg_pool2d_backward(const Tensor& dy_in, const Pool2dShape& shape) {
  const Tensor dy = dense(dy_in);
  const Stream s = stream_for("avg_pool2d backward", {&dy});
  Tensor dx = empty_like_device({shape.n, shape.c, shape.h, shape.w}, dy);
  SCALPEL_CUDA_CALL(s, avg_pool2d_backward, shape, in(dy), out(dx));
  return dx;
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(pool) {
  using backend::Op;
  backend::register_kernel<Op::max_pool2d>(type, max_pool2d);
  backend::register_kernel<Op::max_pool2d_backward>(type, max_pool2d_backward);
  backend::register_kernel<Op::avg_pool2d>(type, avg_pool2d);
  backend::register_kernel<Op::avg_pool2d_backward>(type, avg_pool2d_backward);
}
#endif
