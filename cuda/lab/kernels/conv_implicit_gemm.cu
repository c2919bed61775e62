// Lab candidate: convolution as an implicit GEMM. The GEMM view of a convolution (per group):
//   Y[k, j] = sum over q of W[k, q] * X_col[q, j]
//   k: output channel, j = (b, oy, ox): output pixel, q = (ci, kr, ks): filter tap
// im2col + GEMM writes X_col to global memory (R*S times the input) and reads it back; here
// each T x T tile of X_col is gathered from x into shared memory when the GEMM needs it, as
// in GEMM variant 2 (shared-memory tiles). Batch and output pixels share the N dimension, so
// small planes still give wide GEMMs.
#include "cuda/compat.cuh"
#include "cuda/lab/lab_kernels.h"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL::lab {

namespace {

template <int T>
__global__ void conv_implicit_gemm_kernel(Conv2dGeometry p, const float* x, const float* w, const float* bias,
                                          float* y) {
  __shared__ float Ws[T][T];
  __shared__ float Xs[T][T + 1];  // +1: no bank conflicts when a column is read
  const int64_t oh = p.out_h, ow = p.out_w, plane = oh * ow;
  const int64_t cg = p.in_channels / p.groups, kg = p.out_channels / p.groups, taps = cg * p.kernel_h * p.kernel_w;
  const int64_t cols = p.batch * plane;
  const int64_t g = blockIdx.z;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = blockIdx.y * int64_t{T} + ty;  // output channel within the group
  const int64_t col = blockIdx.x * int64_t{T} + tx;  // output pixel over the batch
  const float* wg = w + g * kg * taps;
  // The X_col column this thread loads: the output pixel blockIdx.x * T + tx.
  const int64_t b = col / plane, oy = col % plane / ow, ox = col % ow;
  float acc = 0.0f;
  for (int64_t q0 = 0; q0 < taps; q0 += T) {
    Ws[ty][tx] = (row < kg && q0 + tx < taps) ? wg[row * taps + q0 + tx] : 0.0f;
    // Gather X_col[q0 + ty, col]: tap q = (ci, kr, ks) of output pixel (b, oy, ox).
    const int64_t q = q0 + ty;
    float v = 0.0f;
    if (q < taps && col < cols) {
      const int64_t ks = q % p.kernel_w, kr = q / p.kernel_w % p.kernel_h, ci = q / (p.kernel_h * p.kernel_w);
      const int64_t iy = oy * p.stride_h - p.pad_top + kr * p.dilation_h;
      const int64_t ix = ox * p.stride_w - p.pad_left + ks * p.dilation_w;
      if (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w)
        v = x[((b * p.in_channels + g * cg + ci) * p.in_h + iy) * p.in_w + ix];
    }
    Xs[ty][tx] = v;
    __syncthreads();  // both tiles complete
    for (int k = 0; k < T; ++k) acc = fmaf(Ws[ty][k], Xs[k][tx], acc);
    __syncthreads();  // nobody still reads the tiles the next step overwrites
  }
  if (row < kg && col < cols) {
    const int64_t ko = g * kg + row;
    y[(b * p.out_channels + ko) * plane + col % plane] = acc + (bias ? bias[ko] : 0.0f);
  }
}

template <int T>
void launch(const Stream& s, const Conv2dGeometry& p, const float* x, const float* w, const float* bias, float* y) {
  const dim3 grid(ceil_div(p.batch * p.out_h * p.out_w, T), ceil_div(p.out_channels / p.groups, T),
                  static_cast<unsigned>(p.groups));
  SCALPEL_LAUNCH((conv_implicit_gemm_kernel<T>), grid, dim3(T, T), 0, s, p, x, w, bias, y);
}

}  // namespace

void conv2d_implicit_gemm(const Stream& s, const Conv2dGeometry& p, const float* x, const float* w, const float* bias,
                          float* y, int tile) {
  if (p.batch * p.out_channels * p.out_h * p.out_w == 0) return;
  switch (tile) {
    case 16: launch<16>(s, p, x, w, bias, y); break;
    case 32: launch<32>(s, p, x, w, bias, y); break;
    default: fail_argument("conv2d_implicit_gemm", "tile must be 16 or 32", tile);
  }
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL::lab
