// Dropout with a counter-based hash instead of a stateful generator: element i's decision is
// a pure function of (seed, i), so the GPU, the emulation and any block order agree.
// Kernels, entry points (dropout, drop_path) and registration.
#include "cuda/compat.cuh"

SCALPEL_KERNEL_API(
// mask[i] = hash(seed, i) >= p (the same bits on GPU and emulation); y = x * mask / (1 - p).
void dropout_forward(const Stream& s, const float* x, float* y, uint8_t* mask, int64_t n,
                     float p, uint64_t seed);
void dropout_backward(const Stream& s, const float* dy, const uint8_t* mask, float* dx,
                      int64_t n, float p);
)

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

// splitmix64 finalizer of seed and index, top 24 bits as a float in [0, 1).
__device__ __forceinline__ float uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

__global__ void dropout_forward_kernel(const float* x, float* y, uint8_t* mask, int64_t n,
                                       float p, float scale, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const bool keep = uniform(seed, static_cast<uint64_t>(i)) >= p;
    mask[i] = keep;
    y[i] = keep ? x[i] * scale : 0.0f;
  }
}

__global__ void dropout_backward_kernel(const float* dy, const uint8_t* mask, float* dx,
                                        int64_t n, float scale) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

}  // namespace

void dropout_forward(const Stream& s, const float* x, float* y, uint8_t* mask, int64_t n,
                     float p, uint64_t seed) {
  if (n > 0)
    SCALPEL_LAUNCH(dropout_forward_kernel, grid_for(n, kThreads), kThreads, 0, s, x, y, mask, n, p,
                   keep_scale(p), seed);
}

void dropout_backward(const Stream& s, const float* dy, const uint8_t* mask, float* dx,
                      int64_t n, float p) {
  if (n > 0)
    SCALPEL_LAUNCH(dropout_backward_kernel, grid_for(n, kThreads), kThreads, 0, s, dy, mask, dx, n,
                   keep_scale(p));
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

DropoutOutput dropout(const Tensor& x_in, double p, uint64_t seed) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("dropout", {&x});
  DropoutOutput r{empty_like_device(x.shape(), x), Tensor::empty(x.shape(), DType::U8, x.device())};
  SCALPEL_CUDA_CALL(s, dropout_forward, in(x), out(r.y), static_cast<uint8_t*>(r.mask.raw_data()),
                    x.numel(), static_cast<float>(p), seed);
  return r;
}

Tensor dropout_backward(const Tensor& dy_in, const Tensor& mask, double p) {
  const Tensor dy = dense(dy_in);
  const Stream s = stream_for("dropout backward", {&dy});
  Tensor dx = empty_like_device(dy.shape(), dy);
  SCALPEL_CUDA_CALL(s, dropout_backward, in(dy), static_cast<const uint8_t*>(mask.raw_data()), out(dx),
                    dy.numel(), static_cast<float>(p));
  return dx;
}

Tensor drop_path_scale(int64_t n, double p, uint64_t seed, Device device) {
  const Stream s = default_stream(device);
  Tensor ones = Tensor::empty({n}, DType::F32, device);
  SCALPEL_CUDA_CALL(s, fill, out(ones), n, 1.0f);
  return dropout(ones, p, seed).y;
}

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(dropout) {
  using backend::Op;
  backend::register_kernel<Op::dropout>(type, dropout);
  backend::register_kernel<Op::dropout_backward>(type, dropout_backward);
  backend::register_kernel<Op::drop_path_scale>(type, drop_path_scale);
}
#endif
