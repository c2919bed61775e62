// Elementwise kernels: fill, affine, pitched copies, broadcast binary ops, unary activations
// and their derivatives, concat. All are memory-bound: one grid-stride loop, coalesced
// accesses, judged in GB/s.
#include "cuda/compat.cuh"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

__global__ void fill_kernel(float* y, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = value;
}

__global__ void affine_kernel(const float* x, float* y, int64_t n, float scale, float shift) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = fmaf(scale, x[i], shift);
}

__global__ void copy_2d_kernel(const float* src, int64_t src_stride, float* dst,
                               int64_t dst_stride, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

__device__ __forceinline__ float apply_binary(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Max: return (a > b || isnan(a)) ? a : b;  // NaN propagates, as in PyTorch
    case BinaryOp::Min: return (a < b || isnan(a)) ? a : b;
    case BinaryOp::Pow: return powf(a, b);
  }
  return 0.0f;
}

// The layout travels by value in the kernel's parameters (constant bank on a GPU).
__global__ void binary_kernel(BinaryOp op, const float* a, const float* b, float* out,
                              BroadcastLayout layout, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t rest = i, ia = 0, ib = 0;
    for (int d = layout.ndim - 1; d >= 0; --d) {
      const int64_t idx = rest % layout.shape[d];
      rest /= layout.shape[d];
      ia += idx * layout.a_strides[d];
      ib += idx * layout.b_strides[d];
    }
    out[i] = apply_binary(op, a[ia], b[ib]);
  }
}

// Gathers a strided view into contiguous out: the same index walk as binary_kernel, one operand.
__global__ void strided_copy_kernel(const float* x, float* out, StridedLayout layout, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t rest = i, ix = 0;
    for (int d = layout.ndim - 1; d >= 0; --d) {
      ix += rest % layout.shape[d] * layout.strides[d];
      rest /= layout.shape[d];
    }
    out[i] = x[ix];
  }
}

// Constant padding: one thread per output element of [planes, out_h, out_w].
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

// Same-shape contiguous operands: no index arithmetic.
__global__ void binary_flat_kernel(BinaryOp op, const float* a, const float* b, float* out,
                                   int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = apply_binary(op, a[i], b[i]);
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float apply_unary(UnaryOp op, float alpha, float x) {
  switch (op) {
    case UnaryOp::Relu: return x > 0.0f ? x : 0.0f;
    case UnaryOp::Relu6: return fminf(fmaxf(x, 0.0f), 6.0f);
    case UnaryOp::LeakyRelu: return x > 0.0f ? x : alpha * x;
    case UnaryOp::Sigmoid: return sigmoid(x);
    case UnaryOp::Tanh: return tanhf(x);
    case UnaryOp::Silu: return x * sigmoid(x);
    case UnaryOp::HardSigmoid: return fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case UnaryOp::HardSwish: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case UnaryOp::Gelu: return 0.5f * x * (1.0f + erff(x * 0.70710678f));
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return logf(x);
    case UnaryOp::Sqrt: return sqrtf(x);
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return fabsf(x);
  }
  return 0.0f;
}

// f'(x). Kinks take the derivative PyTorch uses (0 at the ReLU corner).
__device__ __forceinline__ float unary_derivative(UnaryOp op, float alpha, float x) {
  switch (op) {
    case UnaryOp::Relu: return x > 0.0f ? 1.0f : 0.0f;
    case UnaryOp::Relu6: return (x > 0.0f && x < 6.0f) ? 1.0f : 0.0f;
    case UnaryOp::LeakyRelu: return x > 0.0f ? 1.0f : alpha;
    case UnaryOp::Sigmoid: { const float s = sigmoid(x); return s * (1.0f - s); }
    case UnaryOp::Tanh: { const float t = tanhf(x); return 1.0f - t * t; }
    case UnaryOp::Silu: { const float s = sigmoid(x); return s * (1.0f + x * (1.0f - s)); }
    case UnaryOp::HardSigmoid: return (x > -3.0f && x < 3.0f) ? 1.0f / 6.0f : 0.0f;
    case UnaryOp::HardSwish:
      return x < -3.0f ? 0.0f : (x > 3.0f ? 1.0f : (2.0f * x + 3.0f) / 6.0f);
    case UnaryOp::Gelu:
      return 0.5f * (1.0f + erff(x * 0.70710678f)) + x * 0.39894228f * expf(-0.5f * x * x);
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return 1.0f / x;
    case UnaryOp::Sqrt: return 0.5f / sqrtf(x);
    case UnaryOp::Neg: return -1.0f;
    case UnaryOp::Abs: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
  }
  return 0.0f;
}

__global__ void unary_forward_kernel(UnaryOp op, float alpha, const float* x, float* y,
                                     int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = apply_unary(op, alpha, x[i]);
}

__global__ void unary_backward_kernel(UnaryOp op, float alpha, const float* x, const float* dy,
                                      float* dx, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    dx[i] = dy[i] * unary_derivative(op, alpha, x[i]);
}

}  // namespace

void fill(const Stream& s, float* y, int64_t n, float value) {
  if (n > 0) SCALPEL_LAUNCH(fill_kernel, grid_for(n, kThreads), kThreads, 0, s, y, n, value);
}

void affine(const Stream& s, const float* x, float* y, int64_t n, float scale, float shift) {
  if (n > 0)
    SCALPEL_LAUNCH(affine_kernel, grid_for(n, kThreads), kThreads, 0, s, x, y, n, scale, shift);
}

void copy_2d(const Stream& s, const float* src, int64_t src_stride, float* dst,
             int64_t dst_stride, int64_t rows, int64_t cols) {
  if (rows * cols > 0)
    SCALPEL_LAUNCH(copy_2d_kernel, grid_for(rows * cols, kThreads), kThreads, 0, s, src,
                   src_stride, dst, dst_stride, rows, cols);
}

void binary(const Stream& s, BinaryOp op, const float* a, const float* b, float* out,
            const BroadcastLayout& layout) {
  int64_t n = 1;
  bool flat = true;  // both operands contiguous with the output's shape
  int64_t expected = 1;
  for (int d = layout.ndim - 1; d >= 0; --d) {
    n *= layout.shape[d];
    if (layout.shape[d] != 1 && (layout.a_strides[d] != expected || layout.b_strides[d] != expected))
      flat = false;
    expected *= layout.shape[d];
  }
  if (n == 0) return;
  if (flat)
    SCALPEL_LAUNCH(binary_flat_kernel, grid_for(n, kThreads), kThreads, 0, s, op, a, b, out, n);
  else
    SCALPEL_LAUNCH(binary_kernel, grid_for(n, kThreads), kThreads, 0, s, op, a, b, out, layout, n);
}

void strided_copy(const Stream& s, const float* x, float* out, const StridedLayout& layout) {
  int64_t n = 1;
  for (int d = 0; d < layout.ndim; ++d) n *= layout.shape[d];
  if (n > 0)
    SCALPEL_LAUNCH(strided_copy_kernel, grid_for(n, kThreads), kThreads, 0, s, x, out, layout, n);
}

void pad2d(const Stream& s, const float* x, float* y, int64_t planes, int64_t h, int64_t w,
           int64_t top, int64_t left, int64_t out_h, int64_t out_w, float value) {
  const int64_t n = planes * out_h * out_w;
  if (n > 0)
    SCALPEL_LAUNCH(pad2d_kernel, grid_for(n, kThreads), kThreads, 0, s, x, y, planes, h, w, top,
                   left, out_h, out_w, value);
}

void unary_forward(const Stream& s, UnaryOp op, float alpha, const float* x, float* y, int64_t n) {
  if (n > 0)
    SCALPEL_LAUNCH(unary_forward_kernel, grid_for(n, kThreads), kThreads, 0, s, op, alpha, x, y, n);
}

void unary_backward(const Stream& s, UnaryOp op, float alpha, const float* x, const float* dy,
                    float* dx, int64_t n) {
  if (n > 0)
    SCALPEL_LAUNCH(unary_backward_kernel, grid_for(n, kThreads), kThreads, 0, s, op, alpha, x,
                   dy, dx, n);
}

void concat_forward(const Stream& s, const float* const* inputs, const int64_t* sizes,
                    int count, int64_t outer, int64_t inner, float* out) {
  int64_t total = 0;
  for (int i = 0; i < count; ++i) total += sizes[i];
  int64_t offset = 0;
  for (int i = 0; i < count; ++i) {
    copy_2d(s, inputs[i], sizes[i] * inner, out + offset * inner, total * inner, outer,
            sizes[i] * inner);
    offset += sizes[i];
  }
}

void concat_backward(const Stream& s, const float* dout, const int64_t* sizes, int count,
                     int64_t outer, int64_t inner, float* const* dinputs) {
  int64_t total = 0;
  for (int i = 0; i < count; ++i) total += sizes[i];
  int64_t offset = 0;
  for (int i = 0; i < count; ++i) {
    copy_2d(s, dout + offset * inner, total * inner, dinputs[i], sizes[i] * inner, outer,
            sizes[i] * inner);
    offset += sizes[i];
  }
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL
