#pragma once
// What the kernel lab needs from a real GPU beyond the backend: event timing, an L2 flush and
// cuBLAS (cuda/lab/lab_gpu.cpp, built with nvcc only). No CUDA types here, so the harness
// compiles in every build; without nvcc, gpu_present() is false and the rest is never called.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda/backend.h"

namespace scalpel::cuda::lab {

// True when this build has CUDA and a usable GPU (compute capability 8.0+) is present.
bool gpu_present();
// "NVIDIA H100 80GB HBM3 (sm_90, 50 MiB L2)" for the report's first line.
const char* gpu_description();

// Milliseconds one call of `run` takes on the stream, after overwriting the whole L2 cache so
// that every repetition starts cold (llm.c's dev/cuda does the same). Median of `repeats`.
template <typename F>
double time_ms(const Stream& s, int repeats, F run);
// The non-template part: records events around run_once and flushes L2 before it.
double time_once_ms(const Stream& s, void (*run_once)(void*), void* context);

// C[M,N] = A[M,K] B[K,N], row-major float32, through cuBLAS (the GEMM lab's variant 5).
void cublas_sgemm(const Stream& s, int64_t M, int64_t N, int64_t K, const float* A,
                  const float* B, float* C);

}  // namespace scalpel::cuda::lab

template <typename F>
double scalpel::cuda::lab::time_ms(const Stream& s, int repeats, F run) {
  run();  // warm-up: first-launch costs and cuDNN/cuBLAS set-up stay out of the timing
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i)
    times.push_back(time_once_ms(s, [](void* f) { (*static_cast<F*>(f))(); }, &run));
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}
