#pragma once
// cuDNN 9 paths of the CUDA backend: convolution forward, backward-data and backward-filter,
// on a real GPU only (cuDNN cannot be emulated). Built from cuda/cudnn/*.cpp when
// CMake finds cuDNN (SCALPEL_HAVE_CUDNN); otherwise every function here throws, saying so.
// cuda/conv_library.h decides when a convolution runs here instead of cuda/kernels/.
//
// Contracts are those of the handwritten kernels (cuda/kernels.inc, top of cuda/backend.h):
// float32, raw device pointers on the stream's device, contiguous NCHW, outputs written (=),
// never accumulated; asynchronous on the stream. Shapes are validated by the caller.
//
// How it uses cuDNN: the legacy descriptor API (cudnnConvolutionForward and friends;
// deprecated in cuDNN 9 in favour of the graph API, still shipped, and far easier to read).
// Math is CUDNN_FMA_MATH: plain float32 FMAs, no TF32 tensor cores, so results match the CPU
// reference to float32 rounding. The algorithm for each (shape, direction, device) is chosen
// once and cached: by default the first one of cuDNN's ranked heuristics
// (cudnnGet*Algorithm_v7) whose workspace fits workspace_limit(); with AlgoSearch::Measure,
// the fastest one that fits as timed by cudnnFind*AlgorithmEx on the first call's buffers.
// Workspaces come from the backend's caching device allocator. cuDNN pads symmetrically:
// asymmetric padding is run on an explicitly padded input (cuda/cudnn/cudnn.cpp, symmetric_form).
// Every cuDNN and CUDA call is checked: failures throw scalpel::Error "<file>:<line>: <call> failed: <status>".
#include <cstddef>
#include <cstdint>

#include "cuda/backend.h"

namespace scalpel::cuda::cudnn {

// True when this build has the cuDNN paths (SCALPEL_HAVE_CUDNN).
bool compiled();
// Throws scalpel::Error unless cuDNN can run on `device`: a CUDA device (not cuda-emu, not the
// CPU) in a build with cuDNN, whose libraries load and are version 9. The message says why
// and how to proceed (--conv-engine handwritten, or --device cuda on a GPU machine).
void require(Device device);
// Creates the calling thread's cuDNN handle for the CUDA `device` (the first call on a device
// does it anyway); throws when the cuDNN libraries fail to load or are not version 9.
void initialize(Device device);

enum class AlgoSearch : uint8_t { Heuristic, Measure };
void set_algo_search(AlgoSearch search);  // default Heuristic; applies to shapes not yet cached
AlgoSearch algo_search();
// The largest workspace an algorithm may ask for (default 256 MiB).
void set_workspace_limit(size_t bytes);
size_t workspace_limit();

// y [n, k, oh, ow] = conv(x, w) + bias (bias may be null).
void conv2d_forward(const Stream& s, const Conv2dGeometry& shape, const float* x, const float* w, const float* bias,
                    float* y);
// dx [n, c, h, w] from dy and w.
void conv2d_backward_data(const Stream& s, const Conv2dGeometry& shape, const float* w, const float* dy, float* dx);
// dw [k, c/groups, r, s] and db [k] (db may be null) from x and dy.
void conv2d_backward_filter(const Stream& s, const Conv2dGeometry& shape, const float* x, const float* dy, float* dw,
                            float* db);

}  // namespace scalpel::cuda::cudnn
