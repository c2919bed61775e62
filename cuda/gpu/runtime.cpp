// The CUDA runtime calls of the backend: device checks, memory, copies, launch checks.
#include "cuda/gpu/runtime.h"

#include <cuda_runtime.h>

#include <cstdlib>

#include "tensor/error.h"

namespace scalpel::cuda::gpu {

void check(int error, const char* expr, const char* file, int line) {
  const auto e = static_cast<cudaError_t>(error);
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky non-fatal error so the next call starts clean
  fail("{}:{}: {} failed: {} ({}); run with --device cpu to use the CPU", file, line, expr,
       cudaGetErrorName(e), cudaGetErrorString(e));
}

void check_launch(const char* kernel, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  // SCALPEL_CUDA_SYNC=1 waits for every kernel, so a fault is reported at its own launch.
  static const bool sync = std::getenv("SCALPEL_CUDA_SYNC") != nullptr;
  if (e == cudaSuccess && sync) e = cudaDeviceSynchronize();
  if (e != cudaSuccess)
    fail("{}:{}: kernel {} failed: {} ({})", file, line, kernel, cudaGetErrorName(e),
         cudaGetErrorString(e));
}

void require_device(int index) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    fail("no CUDA device is available ({}); run with --device cpu, or --device cuda-emu to run "
         "the CUDA kernels on the CPU",
         e == cudaSuccess ? "0 devices found" : cudaGetErrorString(e));
  }
  SCALPEL_CHECK(index >= 0 && index < count, "CUDA device {} does not exist ({} found); use "
                "--device cuda:0..{} or --device cpu", index, count, count - 1);
  cudaDeviceProp prop{};
  SCALPEL_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  SCALPEL_CHECK(prop.major >= 8, "CUDA device {} ({}) has compute capability {}.{}; scalpel's "
                "kernels are built for 8.0 and newer; run with --device cpu", index, prop.name,
                prop.major, prop.minor);
  SCALPEL_CUDA_CHECK(cudaSetDevice(index));
}

void* raw_allocate(size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return nullptr;
  }
  SCALPEL_CUDA_CHECK(e);
  return p;
}

void raw_release(void* ptr) { cudaFree(ptr); }  // at exit the context may be gone: no check

void copy(const Stream& s, void* dst, const void* src, size_t bytes, CopyKind kind) {
  const cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice;
  auto stream = static_cast<cudaStream_t>(s.handle);
  SCALPEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, stream));
  // Host memory may be pageable and reused by the caller at once: finish the copy.
  if (kind != CopyKind::DeviceToDevice) SCALPEL_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void synchronize(const Stream& s) {
  SCALPEL_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(s.handle)));
}

bool query(const Stream& s) {
  const cudaError_t e = cudaStreamQuery(static_cast<cudaStream_t>(s.handle));
  if (e == cudaErrorNotReady) return false;
  SCALPEL_CUDA_CHECK(e);
  return true;
}

}  // namespace scalpel::cuda::gpu
