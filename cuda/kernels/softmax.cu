// Softmax, log-softmax and cross-entropy over the last axis: one block per row, the row's
// max and sum of exponentials by block reductions (max first, for a stable exp).
#include "cuda/kernels/block_reduce.cuh"

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
