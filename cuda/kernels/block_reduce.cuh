#pragma once
// Warp- and block-wide reductions shared by the reduction, softmax and batch-norm kernels.
// A warp reduces in registers with shuffles (log2(32) = 5 steps, no shared memory); a block
// reduces each warp, stages one partial per warp in shared memory, and reduces those again.
#include "cuda/compat.cuh"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

constexpr unsigned kFullMask = 0xffffffffu;

// Threads per block of the kernels built on block_sum/block_max (any multiple of 32 is
// correct): 256 on a GPU; one warp under emulation, where every shuffle and barrier is a
// fiber switch per thread, so that batch-norm and depthwise-filter reductions over a whole
// model stay affordable on a CPU.
#ifdef __CUDACC__
constexpr int kReductionThreads = 256;
#else
constexpr int kReductionThreads = 32;
#endif

// Butterfly (xor) reduction: every lane ends with the warp's total.
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Block-wide sum or max over a 1-D block whose size is a multiple of 32 (at most 1024); every
// thread gets the result. Every thread of the block must call it (it holds barriers).
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // the previous call's readers of `partial` are done
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const float identity = kMax ? -INFINITY : 0.0f;
  v = lane < warps ? partial[lane] : identity;
  return kMax ? warp_max(v) : warp_sum(v);
}

__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<true>(v); }

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL
