// Elementwise ops: fill, affine, pitched copies, strided gathers (Tensor::contiguous), broadcast
// binary ops, unary activations and their derivatives, concat; their kernels, entry points and
// registration. All are memory-bound: one grid-stride loop, coalesced accesses, judged in GB/s.
// fill, affine and copy_2d serve other files too (declared in cuda/kernels.inc).
#include "cuda/compat.cuh"

SCALPEL_KERNEL_API(
// Gathers the strided view `x` (layout.strides in elements, x at its first element) into the
// contiguous `out` of layout.shape: Tensor::contiguous() of a view on the device.
void strided_copy(const Stream& s, const float* x, float* out, const StridedLayout& layout);
// out (contiguous, layout.shape) = op(a, b) with broadcasting through the layout's strides.
void binary(const Stream& s, BinaryOp op, const float* a, const float* b, float* out,
            const BroadcastLayout& layout);
// y = f(x) over n elements. May run in place.
void unary_forward(const Stream& s, UnaryOp op, float alpha, const float* x, float* y, int64_t n);
// dx = dy * f'(x) over n elements, from the forward input x. May run in place (dx == dy).
void unary_backward(const Stream& s, UnaryOp op, float alpha, const float* x, const float* dy,
                    float* dx, int64_t n);
// Concat along one axis, tensors viewed as [outer, size_i * inner]: one pitched copy each.
void concat_forward(const Stream& s, const float* const* inputs, const int64_t* sizes,
                    int count, int64_t outer, int64_t inner, float* out);
)

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

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"
#include "tensor/ops.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

void strided_copy(Tensor& dst, const Tensor& src) {
  const Stream s = stream_for("contiguous copy", {&src, &dst});
  SCALPEL_CHECK(src.dim() <= kMaxDims, "contiguous copy: {} has more than {} dimensions", src.str(), kMaxDims);
  StridedLayout layout;
  layout.ndim = static_cast<int>(src.dim());
  for (int d = 0; d < layout.ndim; ++d) {
    layout.shape[d] = src.size(d);
    layout.strides[d] = src.strides()[d];
  }
  SCALPEL_CUDA_CALL(s, strided_copy, static_cast<const float*>(src.raw_data()), out(dst), layout);
}

Tensor unary(UnaryOp op, const Tensor& x_in, double alpha) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("activation", {&x});
  Tensor y = empty_like_device(x.shape(), x);
  SCALPEL_CUDA_CALL(s, unary_forward, op, static_cast<float>(alpha), in(x), out(y), x.numel());
  return y;
}

Tensor unary_backward(UnaryOp op, const Tensor& x_in, const Tensor& dy_in, double alpha) {
  const Tensor x = dense(x_in), dy = dense(dy_in);
  const Stream s = stream_for("activation backward", {&x, &dy});
  Tensor dx = empty_like_device(x.shape(), dy);
  SCALPEL_CUDA_CALL(s, unary_backward, op, static_cast<float>(alpha), in(x), in(dy), out(dx), x.numel());
  return dx;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const Stream s = stream_for("binary op", {&a, &b});
  const Shape shape = ops::broadcast_shapes(a.shape(), b.shape());
  const int ndim = static_cast<int>(shape.size());
  SCALPEL_CHECK(ndim <= kMaxDims, "binary op: {} dimensions, the CUDA kernel takes at most {}", ndim, kMaxDims);
  BroadcastLayout layout;
  layout.ndim = ndim;
  // Right-aligned element strides of a and b (views welcome), 0 on the axes they broadcast along.
  for (int d = ndim - 1; d >= 0; --d) {
    layout.shape[d] = shape[d];
    const int da = d - (ndim - static_cast<int>(a.dim())), db = d - (ndim - static_cast<int>(b.dim()));
    layout.a_strides[d] = da >= 0 && a.size(da) != 1 ? a.strides()[da] : 0;
    layout.b_strides[d] = db >= 0 && b.size(db) != 1 ? b.strides()[db] : 0;
  }
  Tensor y = empty_like_device(shape, a);
  if (y.numel() > 0)
    SCALPEL_CUDA_CALL(s, binary, op, static_cast<const float*>(a.raw_data()),
                      static_cast<const float*>(b.raw_data()), out(y), layout);
  return y;
}

Tensor affine(const Tensor& x_in, double scale, double shift) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("scalar op", {&x});
  Tensor y = empty_like_device(x.shape(), x);
  SCALPEL_CUDA_CALL(s, affine, in(x), out(y), x.numel(), static_cast<float>(scale), static_cast<float>(shift));
  return y;
}

Tensor concat(const std::vector<Tensor>& tensors, int64_t axis) {
  std::vector<Tensor> parts;
  std::vector<const float*> inputs;
  std::vector<int64_t> sizes;
  for (const Tensor& t : tensors) {
    parts.push_back(dense(t));
    stream_for("concat", {&parts.front(), &parts.back()});
    inputs.push_back(in(parts.back()));
    sizes.push_back(t.size(axis));
  }
  const Stream s = default_stream(parts.front().device());
  Shape shape = parts.front().shape();
  shape[axis] = 0;
  for (int64_t size : sizes) shape[axis] += size;
  // Viewed as [outer, size_i * inner]: each input is one pitched block copy.
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
  for (int64_t d = axis + 1; d < static_cast<int64_t>(shape.size()); ++d) inner *= shape[d];
  Tensor y = empty_like_device(shape, parts.front());
  SCALPEL_CUDA_CALL(s, concat_forward, inputs.data(), sizes.data(), static_cast<int>(parts.size()), outer, inner,
                    out(y));
  return y;
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(elementwise) {
  using backend::Op;
  backend::register_kernel<Op::strided_copy>(type, strided_copy);
  backend::register_kernel<Op::unary>(type, unary);
  backend::register_kernel<Op::unary_backward>(type, unary_backward);
  backend::register_kernel<Op::binary>(type, binary);
  backend::register_kernel<Op::affine>(type, affine);
  backend::register_kernel<Op::concat>(type, concat);
}
#endif
