// Upsampling of NCHW planes (PyTorch's F.interpolate, nearest and bilinear with
// align_corners=False). Backward scatters each output's gradient to its sources with
// atomicAdd (a bilinear source is shared by a varying number of outputs). Kernels, entry points and registration.
#include "cuda/compat.cuh"

SCALPEL_KERNEL_API(
// NCHW planes [nc, h, w] to [nc, oh, ow] and the backward (dx written, not accumulated).
void upsample2d_forward(const Stream& s, UpsampleMode mode, const float* x, float* y,
                        int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow);
void upsample2d_backward(const Stream& s, UpsampleMode mode, const float* dy, float* dx,
                         int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow);
)

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

// Source coordinates and weights of output coordinate o along one axis.
struct Taps {
  int64_t i0, i1;
  float w0, w1;
};

__device__ __forceinline__ Taps taps(UpsampleMode mode, int64_t o, int64_t in, int64_t out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  if (mode == UpsampleMode::Nearest) {
    int64_t i = static_cast<int64_t>(floorf(static_cast<float>(o) * scale));
    i = i < in - 1 ? i : in - 1;
    return {i, i, 1.0f, 0.0f};
  }
  float src = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
  src = src > 0.0f ? src : 0.0f;
  const int64_t i0 = static_cast<int64_t>(src);
  const int64_t i1 = i0 + 1 < in ? i0 + 1 : in - 1;
  const float l1 = src - static_cast<float>(i0);
  return {i0, i1, 1.0f - l1, l1};
}

__global__ void upsample_forward_kernel(UpsampleMode mode, const float* x, float* y, int64_t nc,
                                        int64_t h, int64_t w, int64_t oh, int64_t ow) {
  const int64_t n = nc * oh * ow;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % ow, oy = i / ow % oh, plane = i / (oh * ow);
    const Taps ty = taps(mode, oy, h, oh), tx = taps(mode, ox, w, ow);
    const float* xp = x + plane * h * w;
    y[i] = ty.w0 * (tx.w0 * xp[ty.i0 * w + tx.i0] + tx.w1 * xp[ty.i0 * w + tx.i1]) +
           ty.w1 * (tx.w0 * xp[ty.i1 * w + tx.i0] + tx.w1 * xp[ty.i1 * w + tx.i1]);
  }
}

__global__ void upsample_backward_kernel(UpsampleMode mode, const float* dy, float* dx,
                                         int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  const int64_t n = nc * oh * ow;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % ow, oy = i / ow % oh, plane = i / (oh * ow);
    const Taps ty = taps(mode, oy, h, oh), tx = taps(mode, ox, w, ow);
    float* dxp = dx + plane * h * w;
    const float g = dy[i];
    atomicAdd(dxp + ty.i0 * w + tx.i0, g * ty.w0 * tx.w0);
    if (tx.w1 != 0.0f) atomicAdd(dxp + ty.i0 * w + tx.i1, g * ty.w0 * tx.w1);
    if (ty.w1 != 0.0f) atomicAdd(dxp + ty.i1 * w + tx.i0, g * ty.w1 * tx.w0);
    if (ty.w1 != 0.0f && tx.w1 != 0.0f) atomicAdd(dxp + ty.i1 * w + tx.i1, g * ty.w1 * tx.w1);
  }
}

}  // namespace

void upsample2d_forward(const Stream& s, UpsampleMode mode, const float* x, float* y,
                        int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  const int64_t n = nc * oh * ow;
  if (n > 0)
    SCALPEL_LAUNCH(upsample_forward_kernel, grid_for(n, kThreads), kThreads, 0, s, mode, x, y, nc,
                   h, w, oh, ow);
}

void upsample2d_backward(const Stream& s, UpsampleMode mode, const float* dy, float* dx,
                         int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  fill(s, dx, nc * h * w, 0.0f);
  const int64_t n = nc * oh * ow;
  if (n > 0)
    SCALPEL_LAUNCH(upsample_backward_kernel, grid_for(n, kThreads), kThreads, 0, s, mode, dy, dx,
                   nc, h, w, oh, ow);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

Tensor upsample2d(const Tensor& x_in, UpsampleMode mode, int64_t out_h, int64_t out_w) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("upsample", {&x});
  Tensor y = empty_like_device({x.size(0), x.size(1), out_h, out_w}, x);
  SCALPEL_CUDA_CALL(s, upsample2d_forward, mode, in(x), out(y), x.size(0) * x.size(1), x.size(2), x.size(3),
                    out_h, out_w);
  return y;
}

Tensor upsample2d_backward(const Tensor& dy_in, UpsampleMode mode, int64_t in_h, int64_t in_w) {
  const Tensor dy = dense(dy_in);
  const Stream s = stream_for("upsample backward", {&dy});
  Tensor dx = empty_like_device({dy.size(0), dy.size(1), in_h, in_w}, dy);
  SCALPEL_CUDA_CALL(s, upsample2d_backward, mode, in(dy), out(dx), dy.size(0) * dy.size(1), in_h, in_w,
                    dy.size(2), dy.size(3));
  return dx;
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(upsample) {
  backend::register_kernel<backend::Op::upsample2d>(type, upsample2d);
  backend::register_kernel<backend::Op::upsample2d_backward>(type, upsample2d_backward);
}
#endif
