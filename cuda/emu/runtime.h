#pragma once
// CUDA emulation: the part of the CUDA C++ device language that scalpel's kernels use,
// implemented for the host compiler, so that the very same .cu sources run on the CPU.
//
// How it works
// - Everything lives in namespace scalpel::cuda::emu, and kernels compiled for the emulation
//   are written inside that namespace (cuda/compat.cuh opens it), so `threadIdx.x`,
//   `__syncthreads()` or `__shfl_down_sync(...)` resolve here without touching the global
//   namespace (a binary may hold the real CUDA runtime beside the emulation).
// - A launch runs the blocks of the grid one after another. The threads of a block run as
//   fibers (ucontext) on small reused stacks: a thread runs until it reaches a barrier
//   (__syncthreads, __syncwarp, a shuffle or a ballot), then the next thread runs. The order in
//   which threads are started and resumed is forward, reverse or shuffled (emu/emu.h), so code
//   that forgets a barrier gives a different (wrong) result under some order.
// - Rules are strict, as the CUDA programming guide states them: __syncthreads must be reached
//   by every thread of the block (a thread that exited early makes it an error), and a warp
//   operation must be reached by every lane of its mask. Violations throw scalpel::Error naming
//   the kernel and the threads involved, instead of hanging.
// - A block whose first thread finishes without any barrier runs its other threads as plain
//   function calls (no fiber switch), which keeps elementwise kernels cheap. The price: when
//   one thread of a block exits early, no other may use a barrier or a warp operation (write
//   warp code so that every thread takes part, each with the mask of its group).
// - __shared__ is `thread_local` (static storage per OS thread: one block at a time per OS
//   thread shares it). Dynamic shared memory is declared with SCALPEL_DYNAMIC_SHARED (see
//   cuda/compat.cuh) and is a per-block buffer filled with 0xFF bytes (NaN for floats) before
//   every block.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <math.h>  // the C math functions (expf, fmaxf, ...) are global in CUDA too
#include <tuple>
#include <type_traits>
#include <utility>

// Function and variable qualifiers. __shared__ becomes thread_local: at block scope that is
// static storage shared by all fibers of the OS thread running the block.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ thread_local
#define __constant__
#define __restrict__ __restrict
#define __launch_bounds__(...)

namespace scalpel::cuda::emu {

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// The built-in variables of the running thread. The scheduler sets them before it resumes a
// thread, so they are valid everywhere in kernel code.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---- synchronization (defined in emu/scheduler.cpp) ----
void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
unsigned __ballot_sync(unsigned mask, int predicate);
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  return __ballot_sync(mask, predicate) == __ballot_sync(mask, 1);
}
// Threads see their own writes and, after a barrier, everyone's: nothing to do on a CPU.
inline void __threadfence() {}
inline void __threadfence_block() {}

namespace detail {
enum class ShuffleKind : uint8_t { Index, Up, Down, Xor };
// One lane's part of a warp shuffle: publishes `bits`, waits for every lane of `mask`, and
// returns the bits of the source lane chosen by kind/arg/width (its own when out of range).
uint64_t shuffle(unsigned mask, uint64_t bits, ShuffleKind kind, int arg, int width);
// The dynamic shared memory of the running block (null when the launch asked for none).
void* dynamic_shared();
}  // namespace detail

template <typename T>
T shuffle_value(unsigned mask, T var, detail::ShuffleKind kind, int arg, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of 8 bytes at most");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = detail::shuffle(mask, bits, kind, arg, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  return shuffle_value(mask, var, detail::ShuffleKind::Index, src_lane, width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return shuffle_value(mask, var, detail::ShuffleKind::Up, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return shuffle_value(mask, var, detail::ShuffleKind::Down, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  return shuffle_value(mask, var, detail::ShuffleKind::Xor, lane_mask, width);
}

// ---- atomics: real atomics, so blocks could one day run on several OS threads ----
template <typename T>
T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}
template <typename T>
T atomicSub(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_sub(value);
}
template <typename T>
T atomicExch(T* address, T value) {
  return std::atomic_ref<T>(*address).exchange(value);
}
template <typename T>
T atomicCAS(T* address, T compare, T value) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, value);
  return compare;  // the old value, whether or not the swap happened
}
template <typename T>
T atomicMax(T* address, T value) {
  static_assert(std::is_integral_v<T>, "atomicMax is integer-only in CUDA too");
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (old < value && !ref.compare_exchange_weak(old, value)) {
  }
  return old;
}
template <typename T>
T atomicMin(T* address, T value) {
  static_assert(std::is_integral_v<T>, "atomicMin is integer-only in CUDA too");
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (old > value && !ref.compare_exchange_weak(old, value)) {
  }
  return old;
}

// ---- loads and bit casts ----
template <typename T>
T __ldg(const T* p) {
  return *p;
}
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }

// ---- math intrinsics (the fast-math versions are exact here) ----
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return std::fmin(std::fmax(x, 0.0f), 1.0f); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }

// ---- launching ----
struct LaunchConfig {
  const char* kernel;  // name for error messages
  dim3 grid, block;
  size_t shared_bytes;
};

namespace detail {
// Runs `thread_body(context)` once per thread of the grid (defined in emu/scheduler.cpp).
void run_grid(const LaunchConfig& config, void (*thread_body)(void*), void* context);
}  // namespace detail

// Launches `kernel` as kernel<<<grid, block, shared_bytes>>>(args...) would, and returns when
// every thread has finished (the emulation is synchronous). Arguments are converted to the
// kernel's parameter types once, and every thread gets its own copy, as on a GPU.
template <typename... Params, typename... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block,
            size_t shared_bytes, Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "wrong number of kernel arguments");
  using Tuple = std::tuple<std::decay_t<Params>...>;
  struct Context {
    void (*kernel)(Params...);
    Tuple params;
  } context{kernel, Tuple(std::forward<Args>(args)...)};
  auto body = [](void* raw) {
    auto* c = static_cast<Context*>(raw);
    Tuple copy = c->params;
    std::apply(c->kernel, std::move(copy));
  };
  detail::run_grid({name, grid, block, shared_bytes}, body, &context);
}

}  // namespace scalpel::cuda::emu
