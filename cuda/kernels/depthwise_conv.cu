// Depthwise convolution (groups == in channels == out channels, MobileNet/EfficientNet): each
// output channel sees one input channel, so there is no reduction over channels to turn into
// a GEMM. One thread per output element reads its r*s window directly; the filter for a
// channel is tiny and stays in cache. Memory-bound: judged in GB/s.
#include "cuda/kernels/block_reduce.cuh"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

__global__ void depthwise_forward_kernel(Conv2dGeometry p, const float* x, const float* w, const float* bias,
                                         float* y) {
  const int64_t oh = p.out_h, ow = p.out_w, n = p.batch * p.in_channels * oh * ow;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % ow, oy = i / ow % oh, plane = i / (oh * ow), ch = plane % p.in_channels;
    const float* xp = x + plane * p.in_h * p.in_w;
    const float* wp = w + ch * p.kernel_h * p.kernel_w;
    float acc = bias ? bias[ch] : 0.0f;
    for (int64_t kr = 0; kr < p.kernel_h; ++kr) {
      const int64_t yy = oy * p.stride_h - p.pad_top + kr * p.dilation_h;
      if (yy < 0 || yy >= p.in_h) continue;
      for (int64_t ks = 0; ks < p.kernel_w; ++ks) {
        const int64_t xx = ox * p.stride_w - p.pad_left + ks * p.dilation_w;
        if (xx >= 0 && xx < p.in_w) acc = fmaf(xp[yy * p.in_w + xx], __ldg(wp + kr * p.kernel_w + ks), acc);
      }
    }
    y[i] = acc;
  }
}

// dx gathers from the outputs whose window covers it (no atomics).
__global__ void depthwise_backward_data_kernel(Conv2dGeometry p, const float* w, const float* dy, float* dx) {
  const int64_t oh = p.out_h, ow = p.out_w, n = p.batch * p.in_channels * p.in_h * p.in_w;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t xx = i % p.in_w, yy = i / p.in_w % p.in_h, plane = i / (p.in_h * p.in_w), ch = plane % p.in_channels;
    const float* dyp = dy + plane * oh * ow;
    const float* wp = w + ch * p.kernel_h * p.kernel_w;
    float acc = 0.0f;
    for (int64_t kr = 0; kr < p.kernel_h; ++kr) {
      const int64_t ty = yy + p.pad_top - kr * p.dilation_h;
      if (ty < 0 || ty % p.stride_h != 0 || ty / p.stride_h >= oh) continue;
      for (int64_t ks = 0; ks < p.kernel_w; ++ks) {
        const int64_t tx = xx + p.pad_left - ks * p.dilation_w;
        if (tx < 0 || tx % p.stride_w != 0 || tx / p.stride_w >= ow) continue;
        acc = fmaf(dyp[ty / p.stride_h * ow + tx / p.stride_w], wp[kr * p.kernel_w + ks], acc);
      }
    }
    dx[i] = acc;
  }
}

// One block per filter tap (channel, kr, ks) reduces x * dy over the batch and output plane.
__global__ void depthwise_backward_filter_kernel(Conv2dGeometry p, const float* x, const float* dy, float* dw) {
  const int64_t oh = p.out_h, ow = p.out_w, taps = p.in_channels * p.kernel_h * p.kernel_w;
  for (int64_t t = blockIdx.x; t < taps; t += gridDim.x) {
    const int64_t ks = t % p.kernel_w, kr = t / p.kernel_w % p.kernel_h, ch = t / (p.kernel_h * p.kernel_w);
    float acc = 0.0f;
    for (int64_t b = 0; b < p.batch; ++b) {
      const float* xp = x + (b * p.in_channels + ch) * p.in_h * p.in_w;
      const float* dyp = dy + (b * p.in_channels + ch) * oh * ow;
      for (int64_t o = threadIdx.x; o < oh * ow; o += blockDim.x) {
        const int64_t yy = o / ow * p.stride_h - p.pad_top + kr * p.dilation_h;
        const int64_t xx = o % ow * p.stride_w - p.pad_left + ks * p.dilation_w;
        if (yy >= 0 && yy < p.in_h && xx >= 0 && xx < p.in_w) acc = fmaf(xp[yy * p.in_w + xx], dyp[o], acc);
      }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) dw[t] = acc;
  }
}

}  // namespace

void depthwise_conv2d_forward(const Stream& s, const Conv2dGeometry& p, const float* x, const float* w,
                              const float* bias, float* y) {
  const int64_t n = p.batch * p.in_channels * p.out_h * p.out_w;
  if (n > 0)
    SCALPEL_LAUNCH(depthwise_forward_kernel, grid_for(n, kThreads), kThreads, 0, s, p, x, w, bias, y);
}

void depthwise_conv2d_backward_data(const Stream& s, const Conv2dGeometry& p, const float* w, const float* dy,
                                    float* dx) {
  const int64_t n = p.batch * p.in_channels * p.in_h * p.in_w;
  if (n > 0)
    SCALPEL_LAUNCH(depthwise_backward_data_kernel, grid_for(n, kThreads), kThreads, 0, s, p, w, dy, dx);
}

void depthwise_conv2d_backward_filter(const Stream& s, const Conv2dGeometry& p, const float* x, const float* dy,
                                      float* dw, float* db) {
  const int64_t taps = p.in_channels * p.kernel_h * p.kernel_w;
  if (taps > 0)
    SCALPEL_LAUNCH(depthwise_backward_filter_kernel, grid_for(taps, 1, 65535), kReductionThreads, 0, s, p,
                   x, dy, dw);
  if (db) conv2d_bias_backward(s, dy, db, p.batch, p.in_channels, p.out_h * p.out_w);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
// No op of its own in the dispatch table: conv2d_forward and its backward run these kernels for depthwise shapes.
SCALPEL_REGISTER_KERNELS(depthwise_conv) {}
#endif
