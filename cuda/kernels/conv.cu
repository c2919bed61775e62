// Convolution as im2col + GEMM (Caffe's way): unfold each sample's receptive fields into a
// column matrix, then one GEMM per sample and group. 1x1 stride-1 convolutions skip the
// unfolding (the input already is the column matrix). Depthwise shapes go to their own kernel
// (depthwise_conv.cu): as a GEMM they are c tiny products, which is what made MobileNet crawl.
// At the end: the convolution's entry points (handwritten kernels or cuDNN) and registration.
#include "cuda/kernels/block_reduce.cuh"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

// col[(ci * kh + kr) * kw + ks][oy * ow + ox] =
//   x[ci][oy * stride_h - pad_top + kr * dilation_h][ox * stride_w - pad_left + ks * dilation_w]
__global__ void im2col_kernel(Conv2dGeometry p, const float* x, float* col, int64_t channels) {
  const int64_t oh = p.out_h, ow = p.out_w;
  const int64_t n = channels * p.kernel_h * p.kernel_w * oh * ow;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % ow, oy = i / ow % oh, row = i / (oh * ow);
    const int64_t ks = row % p.kernel_w, kr = row / p.kernel_w % p.kernel_h;
    const int64_t ci = row / (p.kernel_h * p.kernel_w);
    const int64_t y = oy * p.stride_h - p.pad_top + kr * p.dilation_h;
    const int64_t xx = ox * p.stride_w - p.pad_left + ks * p.dilation_w;
    col[i] = (y >= 0 && y < p.in_h && xx >= 0 && xx < p.in_w) ? x[(ci * p.in_h + y) * p.in_w + xx] : 0.0f;
  }
}

// The reverse of im2col: every input pixel gathers the column entries it was copied to (a
// gather, not a scatter with atomics, so the sum order is fixed).
__global__ void col2im_kernel(Conv2dGeometry p, const float* col, float* x, int64_t channels) {
  const int64_t oh = p.out_h, ow = p.out_w;
  const int64_t n = channels * p.in_h * p.in_w;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t xx = i % p.in_w, y = i / p.in_w % p.in_h, ci = i / (p.in_h * p.in_w);
    float acc = 0.0f;
    for (int64_t kr = 0; kr < p.kernel_h; ++kr) {
      const int64_t ty = y + p.pad_top - kr * p.dilation_h;
      if (ty < 0 || ty % p.stride_h != 0 || ty / p.stride_h >= oh) continue;
      for (int64_t ks = 0; ks < p.kernel_w; ++ks) {
        const int64_t tx = xx + p.pad_left - ks * p.dilation_w;
        if (tx < 0 || tx % p.stride_w != 0 || tx / p.stride_w >= ow) continue;
        acc += col[((ci * p.kernel_h + kr) * p.kernel_w + ks) * oh * ow + ty / p.stride_h * ow + tx / p.stride_w];
      }
    }
    x[i] = acc;
  }
}

// The naive direct convolution: one thread per output, loops over its receptive field.
__global__ void conv2d_direct_kernel(Conv2dGeometry p, const float* x, const float* w, const float* bias, float* y) {
  const int64_t oh = p.out_h, ow = p.out_w, cg = p.in_per_group(), kg = p.out_per_group();
  const int64_t n = p.batch * p.out_channels * oh * ow;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % ow, oy = i / ow % oh, ko = i / (oh * ow) % p.out_channels;
    const int64_t b = i / (p.out_channels * oh * ow);
    const int64_t g = ko / kg;
    float acc = bias ? bias[ko] : 0.0f;
    for (int64_t ci = 0; ci < cg; ++ci)
      for (int64_t kr = 0; kr < p.kernel_h; ++kr) {
        const int64_t yy = oy * p.stride_h - p.pad_top + kr * p.dilation_h;
        if (yy < 0 || yy >= p.in_h) continue;
        for (int64_t ks = 0; ks < p.kernel_w; ++ks) {
          const int64_t xx = ox * p.stride_w - p.pad_left + ks * p.dilation_w;
          if (xx < 0 || xx >= p.in_w) continue;
          acc += x[((b * p.in_channels + g * cg + ci) * p.in_h + yy) * p.in_w + xx] *
                 w[((ko * cg + ci) * p.kernel_h + kr) * p.kernel_w + ks];
        }
      }
    y[i] = acc;
  }
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t n, int64_t k, int64_t hw) {
  const int64_t total = n * k * hw;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] += bias[i / hw % k];
}

// One block per channel sums dy over the batch and the plane.
__global__ void bias_backward_kernel(const float* dy, float* db, int64_t n, int64_t k, int64_t hw) {
  for (int64_t ch = blockIdx.x; ch < k; ch += gridDim.x) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) acc += dy[(b * k + ch) * hw + i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) db[ch] = acc;
  }
}

}  // namespace

void im2col(const Stream& s, const Conv2dGeometry& shape, const float* x, float* col) {
  const int64_t channels = shape.in_channels / shape.groups;
  const int64_t n = channels * shape.kernel_h * shape.kernel_w * shape.out_h * shape.out_w;
  if (n > 0) SCALPEL_LAUNCH(im2col_kernel, grid_for(n, kThreads), kThreads, 0, s, shape, x, col, channels);
}

void conv2d_bias_backward(const Stream& s, const float* dy, float* db, int64_t n, int64_t k,
                          int64_t hw) {
  if (k > 0) SCALPEL_LAUNCH(bias_backward_kernel, grid_for(k, 1, 65535), kReductionThreads, 0, s, dy, db, n, k, hw);
}

void conv2d_forward(const Stream& s, const Conv2dGeometry& p, const float* x, const float* w, const float* bias,
                    float* y, float* workspace, ConvConfig config) {
  const int64_t oh = p.out_h, ow = p.out_w, total = p.batch * p.out_channels * oh * ow;
  if (total == 0) return;
  CudaConvAlgorithm algorithm = config.algorithm;
  if (algorithm == CudaConvAlgorithm::Auto)
    algorithm = p.is_depthwise_one_filter() ? CudaConvAlgorithm::Depthwise : CudaConvAlgorithm::Im2colGemm;
  if (algorithm == CudaConvAlgorithm::Depthwise) return depthwise_conv2d_forward(s, p, x, w, bias, y);
  if (algorithm == CudaConvAlgorithm::Direct) {
    SCALPEL_LAUNCH(conv2d_direct_kernel, grid_for(total, kThreads), kThreads, 0, s, p, x, w, bias, y);
    return;
  }
  const int64_t cg = p.in_per_group(), kg = p.out_per_group(), rows = cg * p.kernel_h * p.kernel_w, cols = oh * ow;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t g = 0; g < p.groups; ++g) {
      const float* xg = x + (b * p.in_channels + g * cg) * p.in_h * p.in_w;
      const float* col = xg;
      if (!p.is_pointwise()) {
        im2col(s, p, xg, workspace);
        col = workspace;
      }
      gemm(s, config.gemm, false, false, kg, cols, rows, 1.0f, w + g * kg * rows, rows, col, cols, 0.0f,
           y + (b * p.out_channels + g * kg) * cols, cols);
    }
  if (bias)
    SCALPEL_LAUNCH(add_bias_kernel, grid_for(total, kThreads), kThreads, 0, s, y, bias, p.batch, p.out_channels,
                   oh * ow);
}

void conv2d_backward_data(const Stream& s, const Conv2dGeometry& p, const float* w, const float* dy, float* dx,
                          float* workspace, GemmConfig config) {
  if (p.is_depthwise_one_filter()) return depthwise_conv2d_backward_data(s, p, w, dy, dx);
  const int64_t cg = p.in_per_group(), kg = p.out_per_group(), rows = cg * p.kernel_h * p.kernel_w;
  const int64_t cols = p.out_h * p.out_w;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t g = 0; g < p.groups; ++g) {
      float* dxg = dx + (b * p.in_channels + g * cg) * p.in_h * p.in_w;
      // col [rows, cols] = W_g^T [rows, kg] x dy_g [kg, cols]
      float* col = p.is_pointwise() ? dxg : workspace;
      gemm(s, config, true, false, rows, cols, kg, 1.0f, w + g * kg * rows, rows,
           dy + (b * p.out_channels + g * kg) * cols, cols, 0.0f, col, cols);
      if (!p.is_pointwise()) {
        const int64_t n = cg * p.in_h * p.in_w;
        SCALPEL_LAUNCH(col2im_kernel, grid_for(n, kThreads), kThreads, 0, s, p, col, dxg, cg);
      }
    }
}

void conv2d_backward_filter(const Stream& s, const Conv2dGeometry& p, const float* x, const float* dy, float* dw,
                            float* db, float* workspace, GemmConfig config) {
  if (p.is_depthwise_one_filter()) return depthwise_conv2d_backward_filter(s, p, x, dy, dw, db);
  const int64_t cg = p.in_per_group(), kg = p.out_per_group(), rows = cg * p.kernel_h * p.kernel_w;
  const int64_t cols = p.out_h * p.out_w;
  if (p.batch == 0) fill(s, dw, p.out_channels * rows, 0.0f);
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t g = 0; g < p.groups; ++g) {
      const float* xg = x + (b * p.in_channels + g * cg) * p.in_h * p.in_w;
      const float* col = xg;
      if (!p.is_pointwise()) {
        im2col(s, p, xg, workspace);
        col = workspace;
      }
      // dW_g [kg, rows] (+)= dy_g [kg, cols] x col^T [cols, rows]; the first sample writes.
      gemm(s, config, false, true, kg, rows, cols, 1.0f, dy + (b * p.out_channels + g * kg) * cols, cols, col, cols,
           b == 0 ? 0.0f : 1.0f, dw + g * kg * rows, rows);
    }
  if (db) conv2d_bias_backward(s, dy, db, p.batch, p.out_channels, cols);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/conv_library.h"
#include "cuda/cudnn.h"
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

// The convolution's entry points: the handwritten kernels (this file, depthwise_conv.cu and
// gemm.cu) or cuDNN, as cuda/conv_library.h chooses per layer; the backward passes run the
// library the forward ran.
Conv2dOutput conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in, const Conv2dGeometry& g) {
  const Tensor x = dense(x_in), w = dense(w_in), bias = dense(bias_in);
  const Stream s = stream_for("conv2d", {&x, &w, &bias});
  Tensor y = Tensor::empty({g.batch, g.out_channels, g.out_h, g.out_w}, DType::F32, x.device());
  // The engine switch: cuDNN when asked for globally or for this layer (cuda/conv_library.h).
  if (resolve_conv_library(w_in, x.device()) == ConvLibrary::Cudnn) {
    cudnn::conv2d_forward(s, g, in(x), in(w), in(bias), out(y));
    return {y, ConvLibrary::Cudnn};
  }
  // The depthwise kernel needs no column buffer; im2col needs one sample and group's.
  const bool depthwise = g.is_depthwise_one_filter();
  Tensor workspace = Tensor::empty({depthwise ? 1 : conv2d_workspace_floats(g)}, DType::F32, x.device());
  SCALPEL_CUDA_CALL(s, conv2d_forward, g, in(x), in(w), in(bias), out(y), out(workspace),
                    ConvConfig{CudaConvAlgorithm::Auto, gemm_config(s)});
  return {y, ConvLibrary::Handwritten};
}

Tensor conv2d_backward_data(const Tensor& dy_in, const Tensor& w_in, const Conv2dGeometry& g, ConvLibrary engine) {
  const Tensor dy = dense(dy_in), w = dense(w_in);
  const Stream s = stream_for("conv2d backward", {&dy, &w});
  Tensor dx = empty_like_device({g.batch, g.in_channels, g.in_h, g.in_w}, dy);
  if (engine == ConvLibrary::Cudnn) {
    if (dx.numel() > 0) cudnn::conv2d_backward_data(s, g, in(w), in(dy), out(dx));
    return dx;
  }
  Tensor workspace = empty_like_device({g.is_depthwise_one_filter() ? 1 : conv2d_workspace_floats(g)}, dy);
  if (dx.numel() > 0)
    SCALPEL_CUDA_CALL(s, conv2d_backward_data, g, in(w), in(dy), out(dx), out(workspace), gemm_config(s));
  return dx;
}

Conv2dFilterGrads conv2d_backward_filter(const Tensor& dy_in, const Tensor& x_in, const Conv2dGeometry& g, bool need_w,
                                         bool need_bias, ConvLibrary engine) {
  const Tensor dy = dense(dy_in), x = dense(x_in);
  const Stream s = stream_for("conv2d backward", {&dy, &x});
  Conv2dFilterGrads grads;
  if (need_bias) grads.bias = empty_like_device({g.out_channels}, dy);
  const int64_t hw = g.out_h * g.out_w;
  if (!need_w) {
    if (need_bias) SCALPEL_CUDA_CALL(s, conv2d_bias_backward, in(dy), out(grads.bias), g.batch, g.out_channels, hw);
    return grads;
  }
  grads.w = empty_like_device({g.out_channels, g.in_per_group(), g.kernel_h, g.kernel_w}, dy);
  if (engine == ConvLibrary::Cudnn) {
    cudnn::conv2d_backward_filter(s, g, in(x), in(dy), out(grads.w), out(grads.bias));
    return grads;
  }
  Tensor workspace = empty_like_device({g.is_depthwise_one_filter() ? 1 : conv2d_workspace_floats(g)}, dy);
  SCALPEL_CUDA_CALL(s, conv2d_backward_filter, g, in(x), in(dy), out(grads.w), out(grads.bias), out(workspace),
                    gemm_config(s));
  return grads;
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(conv) {
  using backend::Op;
  backend::register_kernel<Op::conv2d>(type, conv2d);
  backend::register_kernel<Op::conv2d_backward_data>(type, conv2d_backward_data);
  backend::register_kernel<Op::conv2d_backward_filter>(type, conv2d_backward_filter);
}
#endif
