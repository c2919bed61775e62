#pragma once
// The real CUDA runtime behind cuda/device.h (gpu/runtime.cpp, built only with nvcc). No CUDA
// types here, so host code can include it in any build.
#include <cstddef>

#include "cuda/backend.h"

namespace scalpel::cuda::gpu {

// Throws scalpel::Error "<file>:<line>: <expr> failed: <CUDA error name and text>".
void check(int error, const char* expr, const char* file, int line);

void require_device(int index);
void* raw_allocate(size_t bytes);  // null when the device is out of memory
void raw_release(void* ptr);
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
void copy(const Stream& s, void* dst, const void* src, size_t bytes, CopyKind kind);
void synchronize(const Stream& s);
bool query(const Stream& s);

}  // namespace scalpel::cuda::gpu

// Checks a CUDA runtime call: SCALPEL_CUDA_CHECK(cudaMalloc(&p, n));
#define SCALPEL_CUDA_CHECK(expr) \
  ::scalpel::cuda::gpu::check(static_cast<int>(expr), #expr, __FILE__, __LINE__)
