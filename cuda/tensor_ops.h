#pragma once
// The CUDA backend's tensor-level ops: init() registers them, for cuda-emu and (with nvcc) cuda,
// in the device dispatch table (tensor/backend.h, which holds their contracts), through which
// the tensor and layer ops reach them; nothing above this library calls them by name. Each
// takes tensors on one CUDA device, checks that, gathers strided views, runs the handwritten
// kernels on the device's default stream and returns new contiguous tensors there; float32.
// Each op's entry points live in its kernel file (cuda/kernels/foo.cu), which registers them
// in a SCALPEL_REGISTER_KERNELS block.
#include "tensor/device.h"

namespace scalpel::cuda {

// Registers the cuda-emu (and, with nvcc, the cuda) allocator and device copy with
// tensor/storage.h and every op kernel in the dispatch table. Idempotent. Called explicitly
// (CLI start-up, tests) because static initializers in a static library are dropped by the
// linker when nothing references their object file.
void init();

}  // namespace scalpel::cuda
