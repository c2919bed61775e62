// Reductions over the middle axis of [outer, len, inner].
#include "cuda/kernels/block_reduce.cuh"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

// inner == 1: one block per row; threads stride over the row (coalesced), then reduce with
// warp shuffles.
__global__ void reduce_rows_kernel(ReduceOp op, const float* x, float* out, int64_t outer,
                                   int64_t len) {
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const float* p = x + row * len;
    const bool is_max = op == ReduceOp::Max;
    float acc = is_max ? -INFINITY : 0.0f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) acc = is_max ? fmaxf(acc, p[i]) : acc + p[i];
    acc = is_max ? block_max(acc) : block_sum(acc);
    if (threadIdx.x == 0) out[row] = op == ReduceOp::Mean ? acc / static_cast<float>(len) : acc;
  }
}

// inner > 1: one thread per output element walks down its column; neighbouring threads read
// neighbouring addresses, so loads stay coalesced.
__global__ void reduce_columns_kernel(ReduceOp op, const float* x, float* out, int64_t outer,
                                      int64_t len, int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = i / inner, j = i % inner;
    const float* p = x + o * len * inner + j;
    const bool is_max = op == ReduceOp::Max;
    float acc = is_max ? -INFINITY : 0.0f;
    for (int64_t l = 0; l < len; ++l) acc = is_max ? fmaxf(acc, p[l * inner]) : acc + p[l * inner];
    out[i] = op == ReduceOp::Mean ? acc / static_cast<float>(len) : acc;
  }
}

// One thread per [outer, inner] output walks its column; the first maximum wins and NaN
// counts as the maximum, as ops::argmax.
__global__ void argmax_kernel(const float* x, int64_t* out, int64_t outer, int64_t len,
                              int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float* p = x + i / inner * len * inner + i % inner;
    int64_t best = 0;
    for (int64_t l = 1; l < len && !isnan(p[best * inner]); ++l)
      if (p[l * inner] > p[best * inner] || isnan(p[l * inner])) best = l;
    out[i] = best;
  }
}

}  // namespace

void argmax(const Stream& s, const float* x, int64_t* out, int64_t outer, int64_t len,
            int64_t inner) {
  if (outer * inner > 0 && len > 0)
    SCALPEL_LAUNCH(argmax_kernel, grid_for(outer * inner, kThreads), kThreads, 0, s, x, out, outer,
                   len, inner);
}

void reduce(const Stream& s, ReduceOp op, const float* x, float* out, int64_t outer,
            int64_t len, int64_t inner) {
  if (outer * inner == 0) return;
  if (len == 0) {  // empty reduction: sum 0, mean NaN, max -inf (as PyTorch's sum; max throws there)
    const float value = op == ReduceOp::Sum ? 0.0f : (op == ReduceOp::Mean ? NAN : -INFINITY);
    fill(s, out, outer * inner, value);
    return;
  }
  if (inner == 1)
    SCALPEL_LAUNCH(reduce_rows_kernel, grid_for(outer, 1, 65535), kReductionThreads, 0, s, op, x, out,
                   outer, len);
  else
    SCALPEL_LAUNCH(reduce_columns_kernel, grid_for(outer * inner, kThreads), kThreads, 0, s, op,
                   x, out, outer, len, inner);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL
