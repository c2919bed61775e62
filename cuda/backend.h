#pragma once
// The CUDA backend's entry point: handwritten kernels on raw device pointers.
//
// Two implementations with identical signatures (declared once: the shared launchers in
// cuda/kernels.inc, the others in their kernel file's SCALPEL_KERNEL_API, cuda/compat.cuh):
//   scalpel::cuda::gpu::*  compiled by nvcc, runs on a real GPU (only when built with nvcc:
//                          SCALPEL_HAVE_CUDA);
//   scalpel::cuda::emu::*  the same .cu sources compiled by the host compiler against
//                          cuda/emu, running on the CPU: the `cuda-emu` device.
// Callers pick one at run time from the stream's device with SCALPEL_CUDA_CALL:
//   SCALPEL_CUDA_CALL(stream, relu_forward, x, y, n);
//
// Common contracts (every launcher):
// - float32 only; pointers are device memory of the stream's device (for cuda-emu, memory
//   from its allocator, see cuda/device.h); tensors are contiguous row-major unless a stride
//   parameter says otherwise; NCHW for images.
// - Outputs are written (=), never accumulated, unless the comment says "accumulates".
// - Kernels run asynchronously on the stream (the emulation is synchronous).
// - Shapes are validated by the caller (the tensor layer already checked them on the host);
//   functions here check only what the kernels themselves require, with scalpel::Error.
// - Device memory, copies, streams and errors are in cuda/device.h; cuDNN in cuda/cudnn.h.
#include <cstdint>

#include "tensor/conv2d_geometry.h"
#include "tensor/device.h"
#include "tensor/op_params.h"  // the op enums and shapes, shared with the dispatch table

namespace scalpel::cuda {

// Where kernels run: a device (CUDA or CUDAEmu) and, on a GPU, a cudaStream_t (null = the
// default stream).
struct Stream {
  Device device{DeviceType::CUDAEmu, 0};
  void* handle = nullptr;
  bool emulated() const { return device.type == DeviceType::CUDAEmu; }
};

// Broadcasting layout of a binary op: `out` is contiguous with `shape`; element index i of
// `out` reads a at sum(idx[d] * a_strides[d]) and b likewise (stride 0 on broadcast axes).
inline constexpr int kMaxDims = 8;
struct BroadcastLayout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t a_strides[kMaxDims] = {};
  int64_t b_strides[kMaxDims] = {};
};

// A strided view: element idx of `shape` sits at sum(idx[d] * strides[d]) from the first.
struct StridedLayout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
};

// GEMM kernels, naive to fast (docs/kernels.md; cuda/lab compares them). Every variant
// computes the same thing; Auto picks the fastest one that applies to the arguments.
enum class GemmVariant : uint8_t {
  Auto = 0,
  Naive = 1,           // one thread per C element, operands from global memory
  SharedTiled = 2,     // 16x16 tiles of A and B staged in shared memory
  RegisterBlocked = 3, // 64x64 block tile, each thread computes a 4x4 micro-tile
  Vectorized = 4,      // variant 3 with float4 loads (needs no transposes, N, K, ld % 4 == 0)
};
const char* gemm_variant_name(GemmVariant v);
// A variant and its block tile (the lab sweeps it): Naive and SharedTiled take 8, 16 or 32
// (threads per block side), RegisterBlocked and Vectorized 32, 64 or 128 (C tile per block
// side). 0 picks the default (16, 32, 64, 64).
struct GemmConfig {
  GemmVariant variant = GemmVariant::Auto;
  int tile = 0;
};
// The variant that runs for these arguments: Auto becomes Vectorized when its alignment
// conditions hold and RegisterBlocked otherwise; Vectorized without them falls back the same.
GemmVariant gemm_resolve(GemmVariant variant, bool trans_a, bool trans_b, int64_t N, int64_t K,
                         const float* A, int64_t lda, const float* B, int64_t ldb);

// How conv2d_forward computes: Auto is Depthwise for depthwise shapes and Im2colGemm
// otherwise; Direct is the naive loop kernel (one thread per output, the lab's baseline).
enum class CudaConvAlgorithm : uint8_t { Auto, Direct, Im2colGemm, Depthwise };
struct ConvConfig {
  CudaConvAlgorithm algorithm = CudaConvAlgorithm::Auto;
  GemmConfig gemm;  // for Im2colGemm
};
// Floats of im2col workspace conv2d_* need: one sample and group's column matrix (the
// depthwise and direct kernels need none, but may be forced onto im2col by ConvConfig).
inline int64_t conv2d_workspace_floats(const Conv2dGeometry& g) {
  return g.in_per_group() * g.kernel_h * g.kernel_w * g.out_h * g.out_w;
}

namespace emu {
#include "cuda/kernels.inc"
}  // namespace emu
namespace gpu {
#include "cuda/kernels.inc"
}  // namespace gpu

// Thrown when a `cuda` stream reaches a build without nvcc.
[[noreturn]] void fail_no_cuda_build(const char* function);
// Throws scalpel::Error "<function>: <message> (got <value>)"; for kernel files, which nvcc
// compiles without fmt.
[[noreturn]] void fail_argument(const char* function, const char* message, int64_t value);

}  // namespace scalpel::cuda

// Calls scalpel::cuda::emu::fn or scalpel::cuda::gpu::fn, chosen by the stream's device.
#if SCALPEL_HAVE_CUDA
#define SCALPEL_CUDA_CALL(stream, fn, ...)                                 \
  ((stream).emulated() ? ::scalpel::cuda::emu::fn((stream), __VA_ARGS__) \
                       : ::scalpel::cuda::gpu::fn((stream), __VA_ARGS__))
#else
#define SCALPEL_CUDA_CALL(stream, fn, ...)                                 \
  ((stream).emulated() ? ::scalpel::cuda::emu::fn((stream), __VA_ARGS__) \
                       : ::scalpel::cuda::fail_no_cuda_build(#fn))
#endif
