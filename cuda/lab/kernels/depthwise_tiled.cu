// Lab candidate: depthwise convolution with shared-memory input tiles. The library's kernel
// (cuda/kernels/depthwise_conv.cu, one thread per output) reads every input pixel R*S times
// from global memory (through L1/L2 when lucky). Here a block of T x T threads computes a
// T x T patch of one output plane: it first copies the input window the patch needs (the
// patch scaled by the stride plus the filter's halo) and the channel's R*S filter into shared
// memory, then every output reads only shared memory. Global reads per output drop from R*S
// to about stride^2 (plus the halo), which is what a memory-bound kernel needs.
#include <algorithm>

#include "cuda/compat.cuh"
#include "cuda/lab/lab_kernels.h"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL::lab {

namespace {

// Rows and columns of input a T-output span reads: (T - 1) * stride + (R - 1) * dilation + 1.
SCALPEL_HOST_DEVICE inline int64_t window(int64_t tile, int64_t stride, int64_t kernel, int64_t dilation) {
  return (tile - 1) * stride + (kernel - 1) * dilation + 1;
}

__global__ void depthwise_tiled_kernel(Conv2dGeometry p, const float* x, const float* w, const float* bias, float* y,
                                       int64_t plane0) {
  SCALPEL_DYNAMIC_SHARED(float, smem);
  const int T = blockDim.x;  // square blocks
  const int64_t oh = p.out_h, ow = p.out_w;
  const int64_t win_h = window(T, p.stride_h, p.kernel_h, p.dilation_h);
  const int64_t win_w = window(T, p.stride_w, p.kernel_w, p.dilation_w);
  float* tile = smem;                     // [win_h][win_w]
  float* filter = smem + win_h * win_w;   // [r][s]
  const int64_t plane = plane0 + blockIdx.z, ch = plane % p.in_channels;
  const int64_t oy0 = blockIdx.y * int64_t{T}, ox0 = blockIdx.x * int64_t{T};
  const int64_t iy0 = oy0 * p.stride_h - p.pad_top, ix0 = ox0 * p.stride_w - p.pad_left;
  const float* xp = x + plane * p.in_h * p.in_w;
  const int tid = threadIdx.y * T + threadIdx.x, threads = T * T;
  for (int64_t i = tid; i < win_h * win_w; i += threads) {
    const int64_t iy = iy0 + i / win_w, ix = ix0 + i % win_w;
    tile[i] = (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w) ? xp[iy * p.in_w + ix] : 0.0f;
  }
  for (int64_t i = tid; i < p.kernel_h * p.kernel_w; i += threads) filter[i] = w[ch * p.kernel_h * p.kernel_w + i];
  __syncthreads();  // the window and the filter are complete
  const int64_t oy = oy0 + threadIdx.y, ox = ox0 + threadIdx.x;
  if (oy >= oh || ox >= ow) return;  // after the only barrier: early exit is safe
  float acc = bias ? bias[ch] : 0.0f;
  for (int64_t kr = 0; kr < p.kernel_h; ++kr)
    for (int64_t ks = 0; ks < p.kernel_w; ++ks)
      acc = fmaf(
          tile[(threadIdx.y * p.stride_h + kr * p.dilation_h) * win_w + threadIdx.x * p.stride_w + ks * p.dilation_w],
          filter[kr * p.kernel_w + ks], acc);
  y[(plane * oh + oy) * ow + ox] = acc;
}

}  // namespace

void depthwise_conv2d_tiled(const Stream& s, const Conv2dGeometry& p, const float* x, const float* w, const float* bias,
                            float* y, int tile) {
  if (tile != 8 && tile != 16 && tile != 32)
    fail_argument("depthwise_conv2d_tiled", "tile must be 8, 16 or 32", tile);
  if (!p.is_depthwise_one_filter()) fail_argument("depthwise_conv2d_tiled", "needs groups == c == k; groups", p.groups);
  const int64_t oh = p.out_h, ow = p.out_w;
  if (p.batch * p.in_channels * oh * ow == 0) return;
  const int64_t floats =
      window(tile, p.stride_h, p.kernel_h, p.dilation_h) * window(tile, p.stride_w, p.kernel_w, p.dilation_w) +
      p.kernel_h * p.kernel_w;
  const size_t shared = static_cast<size_t>(floats) * sizeof(float);
  // 48 KiB is what every GPU gives a block without opting in to more.
  if (shared > 48 * 1024) fail_argument("depthwise_conv2d_tiled", "window too large for shared memory; floats", floats);
  constexpr int64_t kMaxGridZ = 65535;  // planes beyond it go in further launches
  for (int64_t plane0 = 0; plane0 < p.batch * p.in_channels; plane0 += kMaxGridZ) {
    const dim3 grid(ceil_div(ow, tile), ceil_div(oh, tile),
                    static_cast<unsigned>(std::min(kMaxGridZ, p.batch * p.in_channels - plane0)));
    SCALPEL_LAUNCH(depthwise_tiled_kernel, grid, dim3(tile, tile), shared, s, p, x, w, bias, y, plane0);
  }
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL::lab
