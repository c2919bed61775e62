// The lab's GPU helpers (cuda/lab/lab_gpu.h); in a build without nvcc there is no GPU.
#include "cuda/lab/lab_gpu.h"

#include "tensor/error.h"

#if !SCALPEL_HAVE_CUDA
namespace scalpel::cuda::lab {
bool gpu_present() { return false; }
const char* gpu_description() { return "none (built without nvcc)"; }
double time_once_ms(const Stream&, void (*)(void*), void*) { fail("the kernel lab: timing needs a GPU"); }
void cublas_sgemm(const Stream&, int64_t, int64_t, int64_t, const float*, const float*, float*) {
  fail("the kernel lab: cuBLAS needs a GPU");
}
}  // namespace scalpel::cuda::lab
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <map>
#include <string>

#include "cuda/device.h"
#include "cuda/gpu/runtime.h"

namespace scalpel::cuda::lab {

namespace {

void check_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("{}:{}: {} failed: cuBLAS status {}", file, line, expr, static_cast<int>(status));
}
#define LAB_CUBLAS_CHECK(expr) check_cublas(expr, #expr, __FILE__, __LINE__)

// A buffer of twice the L2 size, written before each timed run so no operand stays cached.
struct L2Flusher {
  void* buffer = nullptr;
  size_t bytes = 0;
  L2Flusher() {
    int device = 0, l2 = 0;
    SCALPEL_CUDA_CHECK(cudaGetDevice(&device));
    SCALPEL_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
    bytes = 2 * static_cast<size_t>(l2);
    SCALPEL_CUDA_CHECK(cudaMalloc(&buffer, bytes));
  }
  void flush(cudaStream_t stream) { SCALPEL_CUDA_CHECK(cudaMemsetAsync(buffer, 0, bytes, stream)); }
};

}  // namespace

bool gpu_present() {
  try {
    require_device(Device{DeviceType::CUDA, 0});
    return true;
  } catch (const Error&) {
    return false;
  }
}

const char* gpu_description() {
  static const std::string text = [] {
    cudaDeviceProp prop{};
    SCALPEL_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    return fmt::format("{} (sm_{}{}, {} MiB L2)", prop.name, prop.major, prop.minor,
                       prop.l2CacheSize >> 20);
  }();
  return text.c_str();
}

double time_once_ms(const Stream& s, void (*run_once)(void*), void* context) {
  static L2Flusher flusher;
  auto stream = static_cast<cudaStream_t>(s.handle);
  cudaEvent_t start, stop;
  SCALPEL_CUDA_CHECK(cudaEventCreate(&start));
  SCALPEL_CUDA_CHECK(cudaEventCreate(&stop));
  flusher.flush(stream);
  SCALPEL_CUDA_CHECK(cudaEventRecord(start, stream));
  run_once(context);
  SCALPEL_CUDA_CHECK(cudaEventRecord(stop, stream));
  SCALPEL_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  SCALPEL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  SCALPEL_CUDA_CHECK(cudaEventDestroy(start));
  SCALPEL_CUDA_CHECK(cudaEventDestroy(stop));
  return ms;
}

void cublas_sgemm(const Stream& s, int64_t M, int64_t N, int64_t K, const float* A,
                  const float* B, float* C) {
  static cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    LAB_CUBLAS_CHECK(cublasCreate(&h));  // default math: float32 FMAs, TF32 only when asked
    return h;
  }();
  LAB_CUBLAS_CHECK(cublasSetStream(handle, static_cast<cudaStream_t>(s.handle)));
  const float one = 1.0f, zero = 0.0f;
  // cuBLAS is column-major: row-major C = A B is column-major C^T = B^T A^T.
  LAB_CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(N),
                               static_cast<int>(M), static_cast<int>(K), &one, B,
                               static_cast<int>(N), A, static_cast<int>(K), &zero, C,
                               static_cast<int>(N)));
}

}  // namespace scalpel::cuda::lab
#endif
