#pragma once
// Included first by every kernel file (cuda/kernels/*.cu). The same source is compiled twice:
// - by nvcc (__CUDACC__): real CUDA, functions land in namespace scalpel::cuda::gpu;
// - by the host compiler: against the emulation (cuda/emu/runtime.h), functions land in
//   scalpel::cuda::emu and run on the CPU (the cuda-emu device).
// Kernel files open `namespace scalpel::cuda::SCALPEL_CUDA_IMPL { ... }` and use only:
//   SCALPEL_LAUNCH(kernel, grid, block, shared_bytes, stream, args...)  instead of <<<>>>
//   SCALPEL_DYNAMIC_SHARED(T, name)  instead of `extern __shared__ T name[];`
// Template kernels are named in parentheses: SCALPEL_LAUNCH((gemm_tiled<16>), ...).
//
// A kernel file is one op's whole device side, in three parts:
// 1. SCALPEL_KERNEL_API( declarations ): its launchers with their contracts, declared in both
//    implementations (the entry points below call either through SCALPEL_CUDA_CALL);
// 2. the kernels and launchers in `namespace scalpel::cuda::SCALPEL_CUDA_IMPL`;
// 3. `#if SCALPEL_CUDA_ENTRY_POINTS ... #endif`: the tensor-level entry points (checks, stream,
//    launch; contracts in tensor/backend.h) and, at namespace scope,
//    `SCALPEL_REGISTER_KERNELS(<file name>) { backend::register_kernel<Op::foo>(type, foo); }`.
//    This part is host code: the host compiler builds it once (in the emulation pass), nvcc
//    skips it. Every kernels/*.cu has the block (empty when the file only serves others):
//    cuda/CMakeLists.txt lists the files and cuda::init calls each block, so no central list
//    is edited by hand.
// Launchers shared by several files (fill, gemm, the conv kernels) are declared in
// cuda/kernels.inc instead.
#include <cstddef>
#include <cstdint>
#include <utility>

#include "cuda/backend.h"

#ifdef __CUDACC__
#include <cuda_runtime.h>

#define SCALPEL_CUDA_IMPL gpu
#define SCALPEL_CUDA_ENTRY_POINTS 0

namespace scalpel::cuda::gpu {
// Throws scalpel::Error naming the kernel and the launch site when the launch failed (or, with
// SCALPEL_CUDA_SYNC=1 in the environment, when the kernel itself failed). gpu/runtime.cpp.
void check_launch(const char* kernel, const char* file, int line);

template <typename... Params, typename... Args>
void launch(const char* name, const char* file, int line, void (*kernel)(Params...), dim3 grid,
            dim3 block, size_t shared_bytes, const Stream& stream, Args&&... args) {
  kernel<<<grid, block, shared_bytes, static_cast<cudaStream_t>(stream.handle)>>>(
      std::forward<Args>(args)...);
  check_launch(name, file, line);
}
}  // namespace scalpel::cuda::gpu

#define SCALPEL_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                      \
  ::scalpel::cuda::gpu::launch(#kernel, __FILE__, __LINE__, kernel, grid, block, shared_bytes, \
                               stream, __VA_ARGS__)
#define SCALPEL_DYNAMIC_SHARED(T, name)                                    \
  extern __shared__ __align__(16) unsigned char scalpel_dynamic_shared_[]; \
  T* name = reinterpret_cast<T*>(scalpel_dynamic_shared_)

#else
#include "cuda/emu/runtime.h"

#define SCALPEL_CUDA_IMPL emu
#define SCALPEL_CUDA_ENTRY_POINTS 1
#define SCALPEL_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  ((void)(stream), ::scalpel::cuda::emu::launch(#kernel, kernel, grid, block, shared_bytes, __VA_ARGS__))
#define SCALPEL_DYNAMIC_SHARED(T, name) \
  T* name = static_cast<T*>(::scalpel::cuda::emu::detail::dynamic_shared())
#endif

#define SCALPEL_KERNEL_API(...)                    \
  namespace scalpel::cuda::emu {                   \
  __VA_ARGS__                                      \
  }                                                \
  namespace scalpel::cuda::gpu {                   \
  __VA_ARGS__                                      \
  }

// Defines this file's part of cuda::init: `type` is the device type being registered.
#define SCALPEL_REGISTER_KERNELS(file)                                      \
  namespace scalpel::cuda::detail {                                         \
  void register_kernels_##file(DeviceType type);                            \
  }                                                                         \
  void scalpel::cuda::detail::register_kernels_##file([[maybe_unused]] DeviceType type)

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

// Blocks for a grid-stride loop over n items: enough to fill a GPU, few enough to stay cheap
// to launch (the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads_per_block, int64_t max_blocks = 4096) {
  const int64_t blocks = (n + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks));
}

inline unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL
