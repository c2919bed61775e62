// Softmax, log-softmax and cross-entropy over the last axis: one block per row, the row's
// max and sum of exponentials by block reductions (max first, for a stable exp).
// Kernels, entry points and registration.
#include "cuda/kernels/block_reduce.cuh"

SCALPEL_KERNEL_API(
// Softmax (log: log-softmax) over the last axis of [rows, cols].
void softmax_forward(const Stream& s, const float* x, float* y, int64_t rows, int64_t cols,
                     bool log);
// From the forward output y: dx = y * (dy - sum(dy * y))  or, for log-softmax,
// dx = dy - exp(y) * sum(dy).
void softmax_backward(const Stream& s, const float* y, const float* dy, float* dx,
                      int64_t rows, int64_t cols, bool log);
// loss[r] = logsumexp(logits[r]) - logits[r, labels[r]]. Labels are int64 in [0, cols)
// (checked by the caller: a kernel cannot throw).
void cross_entropy_forward(const Stream& s, const float* logits, const int64_t* labels,
                           float* loss, int64_t rows, int64_t cols);
// dlogits = (softmax(logits) - one_hot(labels)) * scale; scale = dloss / rows for a mean.
void cross_entropy_backward(const Stream& s, const float* logits, const int64_t* labels,
                            float* dlogits, int64_t rows, int64_t cols, float scale);
)

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int64_t kMaxRowBlocks = 65535;

__global__ void softmax_forward_kernel(const float* x, float* y, int64_t rows, int64_t cols,
                                       bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* in = x + row * cols;
    float* out = y + row * cols;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, in[i]);
    m = block_max(m);
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) sum += expf(in[i] - m);
    sum = block_sum(sum);
    const float log_sum = logf(sum);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      out[i] = log ? in[i] - m - log_sum : expf(in[i] - m) / sum;
  }
}

__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx,
                                        int64_t rows, int64_t cols, bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* yr = y + row * cols;
    const float* dyr = dy + row * cols;
    float* dxr = dx + row * cols;
    float dot = 0.0f;  // sum(dy * y), or sum(dy) for log-softmax
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) dot += log ? dyr[i] : dyr[i] * yr[i];
    dot = block_sum(dot);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      dxr[i] = log ? dyr[i] - expf(yr[i]) * dot : yr[i] * (dyr[i] - dot);
  }
}

// Row max and log-sum-exp, the shared first half of both cross-entropy kernels.
__device__ __forceinline__ void row_stats(const float* in, int64_t cols, float& m, float& lse) {
  m = -INFINITY;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, in[i]);
  m = block_max(m);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) sum += expf(in[i] - m);
  lse = m + logf(block_sum(sum));
}

__global__ void cross_entropy_forward_kernel(const float* logits, const int64_t* labels,
                                             float* loss, int64_t rows, int64_t cols) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* in = logits + row * cols;
    float m, lse;
    row_stats(in, cols, m, lse);
    if (threadIdx.x == 0) loss[row] = lse - in[labels[row]];
  }
}

__global__ void cross_entropy_backward_kernel(const float* logits, const int64_t* labels,
                                              float* dlogits, int64_t rows, int64_t cols,
                                              float scale) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* in = logits + row * cols;
    float m, lse;
    row_stats(in, cols, m, lse);
    const int64_t label = labels[row];
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      dlogits[row * cols + i] = (expf(in[i] - lse) - (i == label ? 1.0f : 0.0f)) * scale;
  }
}

}  // namespace

void softmax_forward(const Stream& s, const float* x, float* y, int64_t rows, int64_t cols,
                     bool log) {
  if (rows * cols > 0)
    SCALPEL_LAUNCH(softmax_forward_kernel, grid_for(rows, 1, kMaxRowBlocks), kReductionThreads, 0, s, x,
                   y, rows, cols, log);
}

void softmax_backward(const Stream& s, const float* y, const float* dy, float* dx,
                      int64_t rows, int64_t cols, bool log) {
  if (rows * cols > 0)
    SCALPEL_LAUNCH(softmax_backward_kernel, grid_for(rows, 1, kMaxRowBlocks), kReductionThreads, 0, s, y,
                   dy, dx, rows, cols, log);
}

void cross_entropy_forward(const Stream& s, const float* logits, const int64_t* labels,
                           float* loss, int64_t rows, int64_t cols) {
  if (rows > 0)
    SCALPEL_LAUNCH(cross_entropy_forward_kernel, grid_for(rows, 1, kMaxRowBlocks), kReductionThreads, 0,
                   s, logits, labels, loss, rows, cols);
}

void cross_entropy_backward(const Stream& s, const float* logits, const int64_t* labels,
                            float* dlogits, int64_t rows, int64_t cols, float scale) {
  if (rows > 0)
    SCALPEL_LAUNCH(cross_entropy_backward_kernel, grid_for(rows, 1, kMaxRowBlocks), kReductionThreads, 0,
                   s, logits, labels, dlogits, rows, cols, scale);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "tensor/ops.h"
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

Tensor softmax_last(const Tensor& x_in, bool log) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for(log ? "log_softmax" : "softmax", {&x});
  const int64_t cols = x.size(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  Tensor y = empty_like_device(x.shape(), x);
  if (y.numel() > 0) SCALPEL_CUDA_CALL(s, softmax_forward, in(x), out(y), rows, cols, log);
  return y;
}

Tensor softmax_last_backward(const Tensor& y_in, const Tensor& dy_in, bool log) {
  const Tensor y = dense(y_in), dy = dense(dy_in);
  const Stream s = stream_for(log ? "log_softmax backward" : "softmax backward", {&y, &dy});
  const int64_t cols = y.size(-1), rows = y.numel() / std::max<int64_t>(cols, 1);
  Tensor dx = empty_like_device(y.shape(), dy);
  SCALPEL_CUDA_CALL(s, softmax_backward, in(y), in(dy), out(dx), rows, cols, log);
  return dx;
}

// Labels are int64 device memory; the kernels index with them, so they are checked on the host.
void check_labels(const Tensor& labels, int64_t classes) {
  SCALPEL_CHECK(labels.dtype() == DType::I64 && labels.dim() == 1,
                "cross_entropy: expected int64 labels [N] on the device, got {}", labels.str());
  const std::vector<double> values = labels.to(Device::cpu()).to_vector();  // a counted copy
  for (size_t i = 0; i < values.size(); ++i)
    SCALPEL_CHECK(values[i] >= 0 && values[i] < static_cast<double>(classes),
                  "cross_entropy: target {} at position {} is outside [0, {})", values[i], i, classes);
}

Tensor cross_entropy_rows(const Tensor& logits_in, const Tensor& labels_in) {
  const Tensor logits = dense(logits_in), labels = dense(labels_in);
  const Stream s = stream_for("cross_entropy", {&logits});
  SCALPEL_CHECK(labels.device() == logits.device(), "cross_entropy: logits on {} but labels on {}",
                logits.device().str(), labels.device().str());
  const int64_t rows = logits.size(0), cols = logits.size(1);
  check_labels(labels, cols);
  Tensor loss = empty_like_device({rows}, logits);
  SCALPEL_CUDA_CALL(s, cross_entropy_forward, in(logits), static_cast<const int64_t*>(labels.raw_data()),
                    out(loss), rows, cols);
  return loss;
}

Tensor cross_entropy_rows_backward(const Tensor& dloss_rows, const Tensor& logits_in, const Tensor& labels_in) {
  const Tensor logits = dense(logits_in), labels = dense(labels_in);
  const Stream s = stream_for("cross_entropy backward", {&logits, &dloss_rows});
  const int64_t rows = logits.size(0), cols = logits.size(1);
  // softmax - one_hot with unit scale, then each row times its incoming gradient (broadcast).
  Tensor unit = empty_like_device(logits.shape(), logits);
  SCALPEL_CUDA_CALL(s, cross_entropy_backward, in(logits), static_cast<const int64_t*>(labels.raw_data()),
                    out(unit), rows, cols, 1.0f);
  return ops::mul(unit, dloss_rows.reshape({rows, 1}));
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(softmax) {
  using backend::Op;
  backend::register_kernel<Op::softmax_last>(type, softmax_last);
  backend::register_kernel<Op::softmax_last_backward>(type, softmax_last_backward);
  backend::register_kernel<Op::cross_entropy_rows>(type, cross_entropy_rows);
  backend::register_kernel<Op::cross_entropy_rows_backward>(type, cross_entropy_rows_backward);
}
#endif
