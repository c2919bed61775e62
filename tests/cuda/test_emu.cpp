// The CUDA emulation itself: thread indexing, barriers and the schedules that expose a missing
// one, warp shuffles and ballots, atomics, dynamic shared memory, and the errors for barriers
// reached by part of a block or malformed warp operations.
#include <algorithm>
#include <numeric>

#include "cuda/emu/runtime.h"
#include "cuda_test_util.h"
#include "tensor/error.h"

namespace scalpel::cuda::emu {
namespace {

using scalpel::cuda::testing::EmuScheduleTest;

__global__ void global_ids(unsigned* out) {
  const unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const unsigned thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block * 1000 + thread;
}

// Each thread reads its right neighbour's value from shared memory.
template <bool kSync>
__global__ void rotate(const int* in, int* out) {
  __shared__ int tile[64];
  const unsigned t = threadIdx.x;
  tile[t] = in[blockIdx.x * blockDim.x + t];
  if (kSync) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = tile[(t + 1) % blockDim.x];
}

__global__ void exits_before_barrier(int* out) {
  if (threadIdx.x == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

struct ShuffleOut {
  float down, up, xor_, idx, width8;
  unsigned ballot;
  int any, all;
};

__global__ void shuffles(const float* in, ShuffleOut* out) {
  const unsigned t = threadIdx.x;
  const float v = in[t];
  ShuffleOut r;
  r.down = __shfl_down_sync(0xffffffffu, v, 3);
  r.up = __shfl_up_sync(0xffffffffu, v, 5);
  r.xor_ = __shfl_xor_sync(0xffffffffu, v, 6);
  r.idx = __shfl_sync(0xffffffffu, v, 17);
  r.width8 = __shfl_down_sync(0xffffffffu, v, 2, 8);
  r.ballot = __ballot_sync(0xffffffffu, v > 0.0f);
  r.any = __any_sync(0xffffffffu, t == 40);
  r.all = __all_sync(0xffffffffu, t < 64);
  out[t] = r;
}

__global__ void half_warp_sums(const float* in, float* out) {
  // Each half of a warp reduces on its own, with the matching mask.
  const unsigned lane = threadIdx.x % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  float v = in[threadIdx.x];
  for (int o = 8; o > 0; o >>= 1) v += __shfl_down_sync(mask, v, o, 16);
  if (lane % 16 == 0) out[threadIdx.x / 16] = v;
}

__global__ void mask_without_self(float* out) {
  out[threadIdx.x] = __shfl_sync(0x1u, 1.0f, 0);
}

__global__ void reads_outside_mask(float* out) {
  if (threadIdx.x % 32 >= 16) return;
  out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1.0f, 8);  // lanes 8..15 read 16..23
}

__global__ void counters(int* sum, int* maximum, unsigned* cas_winner) {
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(sum, 1);
  atomicMax(maximum, t);
  atomicCAS(cas_winner, 0xffffffffu, static_cast<unsigned>(t));
}

__global__ void float_atomic(float* total) { atomicAdd(total, 0.5f); }

__global__ void reverse_dynamic(const float* in, float* out, int n, float* first_read) {
  float* buf = static_cast<float*>(detail::dynamic_shared());
  const int t = static_cast<int>(threadIdx.x);
  if (t == 0) *first_read = buf[n - 1];  // before anyone wrote: the 0xFF fill
  __syncthreads();
  buf[t] = in[t];
  __syncthreads();
  out[t] = buf[n - 1 - t];
}

__global__ void noop(int*) {}

class Emu : public EmuScheduleTest {};

TEST_P(Emu, BuiltinsCover3DGridsAndBlocks) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  std::vector<unsigned> out(12 * 24, 0xdeadu);
  launch("global_ids", global_ids, grid, block, 0, out.data());
  for (unsigned b = 0; b < 12; ++b)
    for (unsigned t = 0; t < 24; ++t) EXPECT_EQ(out[b * 24 + t], b * 1000 + t);
}

TEST_P(Emu, BarrierMakesSharedMemoryExchangeCorrect) {
  std::vector<int> in(3 * 64), out(in.size(), -1);
  std::iota(in.begin(), in.end(), 0);
  launch("rotate<true>", rotate<true>, 3, 64, 0, in.data(), out.data());
  for (int i = 0; i < 3 * 64; ++i) EXPECT_EQ(out[i], i / 64 * 64 + (i % 64 + 1) % 64) << i;
}

TEST(EmuSchedules, MissingBarrierGivesAWrongResultUnderSomeSchedule) {
  std::vector<int> in(64), expected(64);
  std::iota(in.begin(), in.end(), 100);
  for (int i = 0; i < 64; ++i) expected[i] = in[(i + 1) % 64];
  int wrong = 0;
  for (Schedule s : {Schedule::Forward, Schedule::Reverse, Schedule::Shuffled}) {
    ScheduleGuard guard(s);
    std::vector<int> out(64, -1);
    launch("rotate<false>", rotate<false>, 1, 64, 0, in.data(), out.data());
    wrong += out != expected;
  }
  EXPECT_GE(wrong, 1);
}

TEST_P(Emu, BarrierReachedByPartOfTheBlockIsAnErrorNamingTheKernel) {
  std::vector<int> out(8, 0);
  try {
    launch("exits_before_barrier", exits_before_barrier, 1, 8, 0, out.data());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("exits_before_barrier"), std::string::npos) << m;
    EXPECT_NE(m.find("(3,0,0)"), std::string::npos) << m;
  }
  // The emulation is usable again afterwards.
  std::vector<int> in(64, 1), rotated(64, 0);
  launch("rotate<true>", rotate<true>, 1, 64, 0, in.data(), rotated.data());
  EXPECT_EQ(rotated, in);
}

TEST_P(Emu, ShufflesAndBallotsFollowCudaSemantics) {
  constexpr int n = 64;
  std::vector<float> in(n);
  for (int i = 0; i < n; ++i) in[i] = (i % 3 == 0 ? -1.0f : 1.0f) * static_cast<float>(i + 1);
  std::vector<ShuffleOut> out(n);
  launch("shuffles", shuffles, 1, n, 0, in.data(), out.data());
  for (int t = 0; t < n; ++t) {
    const int lane = t % 32, base = t - lane;
    EXPECT_EQ(out[t].down, lane + 3 < 32 ? in[t + 3] : in[t]) << t;
    EXPECT_EQ(out[t].up, lane >= 5 ? in[t - 5] : in[t]) << t;
    EXPECT_EQ(out[t].xor_, in[base + (lane ^ 6)]) << t;
    EXPECT_EQ(out[t].idx, in[base + 17]) << t;
    EXPECT_EQ(out[t].width8, lane % 8 + 2 < 8 ? in[t + 2] : in[t]) << t;
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l) ballot |= (in[base + l] > 0.0f ? 1u : 0u) << l;
    EXPECT_EQ(out[t].ballot, ballot) << t;
    EXPECT_EQ(out[t].any, base == 32 ? 1 : 0) << t;
    EXPECT_EQ(out[t].all, 1) << t;
  }
}

TEST_P(Emu, PartialWarpMasks) {
  std::vector<float> in(64), out(4, -1.0f);
  std::iota(in.begin(), in.end(), 0.0f);
  launch("half_warp_sums", half_warp_sums, 1, 64, 0, in.data(), out.data());
  for (int h = 0; h < 4; ++h) EXPECT_EQ(out[h], 16.0f * 16 * h + 120.0f) << h;
}

TEST_P(Emu, MalformedWarpOperationsAreErrors) {
  std::vector<float> out(64);
  EXPECT_THROW(launch("mask_without_self", mask_without_self, 1, 32, 0, out.data()), Error);
  EXPECT_THROW(launch("reads_outside_mask", reads_outside_mask, 1, 32, 0, out.data()), Error);
  // A full mask in a 20-thread block names lanes that do not exist.
  std::vector<ShuffleOut> so(20);
  std::vector<float> in(20, 1.0f);
  EXPECT_THROW(launch("shuffles", shuffles, 1, 20, 0, in.data(), so.data()), Error);
}

TEST_P(Emu, Atomics) {
  int sum = 0, maximum = -1;
  unsigned winner = 0xffffffffu;
  launch("counters", counters, 5, 96, 0, &sum, &maximum, &winner);
  EXPECT_EQ(sum, 480);
  EXPECT_EQ(maximum, 479);
  EXPECT_LT(winner, 480u);
  float total = 0.0f;
  launch("float_atomic", float_atomic, 2, 50, 0, &total);
  EXPECT_EQ(total, 50.0f);
}

TEST_P(Emu, DynamicSharedMemoryIsPerBlockAndStartsAsNaN) {
  constexpr int n = 40;
  std::vector<float> in(n), out(n, 0.0f);
  std::iota(in.begin(), in.end(), 1.0f);
  float first = 0.0f;
  launch("reverse_dynamic", reverse_dynamic, 1, n, n * sizeof(float), in.data(), out.data(), n, &first);
  for (int i = 0; i < n; ++i) EXPECT_EQ(out[i], in[n - 1 - i]);
  EXPECT_TRUE(std::isnan(first));
}

TEST_P(Emu, InvalidLaunchConfigurationsAreErrors) {
  int x = 0;
  EXPECT_THROW(launch("noop", noop, 1, 2048, 0, &x), Error);
  EXPECT_THROW(launch("noop", noop, dim3(1, 70000), 32, 0, &x), Error);
  EXPECT_THROW(launch("noop", noop, 1, 32, 1 << 20, &x), Error);
  EXPECT_THROW(__syncthreads(), Error);  // outside any kernel
}

TEST(EmuCost, BarrierFreeBlocksRunWithoutFiberSwitches) {
  reset_stats();
  std::vector<unsigned> out(8 * 256);
  launch("global_ids", global_ids, 8, 256, 0, out.data());
  const EmuStats st = stats();
  EXPECT_EQ(st.launches, 1u);
  EXPECT_EQ(st.blocks, 8u);
  EXPECT_EQ(st.threads, 8u * 256);
  EXPECT_EQ(st.fiber_switches, 8u);  // only the probing first thread of each block
}

SCALPEL_ALL_SCHEDULES(Emu);

}  // namespace
}  // namespace scalpel::cuda::emu
