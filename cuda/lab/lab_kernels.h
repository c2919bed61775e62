#pragma once
// The lab's own candidate kernels (cuda/lab/lab_kernels.inc) for both builds, nested in the
// backend's namespaces so that the kernels see the emulation's (or CUDA's) built-ins and
// SCALPEL_CUDA_CALL(stream, lab::conv2d_implicit_gemm, ...) picks the device:
//   scalpel::cuda::gpu::lab::*  compiled by nvcc (SCALPEL_HAVE_CUDA only);
//   scalpel::cuda::emu::lab::*  the same sources on the CPU through cuda/emu.
#include "cuda/backend.h"

namespace scalpel::cuda::emu::lab {
#include "cuda/lab/lab_kernels.inc"
}  // namespace scalpel::cuda::emu::lab
namespace scalpel::cuda::gpu::lab {
#include "cuda/lab/lab_kernels.inc"
}  // namespace scalpel::cuda::gpu::lab
