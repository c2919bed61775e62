#pragma once
// Helpers shared by the entry points (cuda/kernels/*.cu, cuda/tensor_ops*.cpp); not part of the
// backend's interface.
#include <algorithm>
#include <initializer_list>
#include <vector>

#include "cuda/conv_library.h"
#include "cuda/device.h"
#include "cuda/tensor_ops.h"
#include "tensor/backend.h"
#include "tensor/error.h"

namespace scalpel::cuda {
using backend::BatchNormGrads;
using backend::BatchNormTrainOutput;
using backend::Conv2dFilterGrads;
using backend::Conv2dOutput;
using backend::DropoutOutput;
using backend::LinearGrads;
using backend::MaxPoolOutput;
}  // namespace scalpel::cuda

namespace scalpel::cuda::detail {

// Parts of init(), each registering ops in the dispatch table for one device type: every
// kernel file's SCALPEL_REGISTER_KERNELS block (the generated kernel_files.cpp calls them), the
// convolution's forward and backward (tensor_ops.cpp, tensor_ops_backward.cpp).
void register_kernel_files(DeviceType type);
void register_forward_kernels(DeviceType type);
void register_backward_kernels(DeviceType type);

// The stream of the device all `tensors` (undefined ones skipped) live on; checks that each
// is a float32 tensor there.
Stream stream_for(const char* op, std::initializer_list<const Tensor*> tensors);

// A contiguous version of t (a gather kernel for strided views); undefined stays undefined.
inline Tensor dense(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

// Raw pointers for the kernels, which take contiguous memory (checked: a view passed here
// without dense() would be read with the wrong layout).
inline const float* in(const Tensor& t) {
  if (!t.defined()) return nullptr;
  SCALPEL_CHECK(t.is_contiguous(), "cuda backend: internal error, kernel input {} is a strided view", t.str());
  return static_cast<const float*>(t.raw_data());
}
inline float* out(const Tensor& t) {
  if (!t.defined()) return nullptr;
  SCALPEL_CHECK(t.is_contiguous(), "cuda backend: internal error, kernel output {} is a strided view", t.str());
  return static_cast<float*>(t.raw_data());
}

// The GEMM kernel the tensor ops ask for: the fastest applicable one (Auto) on a GPU; under
// emulation the barrier-free naive kernel. The emulation runs the tiled kernels' threads as
// fibers that switch at every __syncthreads, which makes whole models crawl on a CPU; the
// tiled kernels are checked on their own by tests/cuda/test_kernels.cpp under every schedule.
inline GemmConfig gemm_config(const Stream& s) {
  return {s.emulated() ? GemmVariant::Naive : GemmVariant::Auto, 0};
}

// A new float32 tensor on `like`'s device.
inline Tensor empty_like_device(const Shape& shape, const Tensor& like) {
  return Tensor::empty(shape, DType::F32, like.device());
}

}  // namespace scalpel::cuda::detail
