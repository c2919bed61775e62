// Tensor creation, views, copies and the reference ops, against hand-computed values.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "tensor/ops.h"
#include "tensor/parallel.h"
#include "tensor/random.h"
#include "tensor/storage.h"

using namespace scalpel;

static Tensor T(std::vector<double> v, Shape s, DType d = DType::F32) { return Tensor::from_vector(v, s, d); }

static void expect_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-6) {
  auto v = t.to_vector();
  ASSERT_EQ(v.size(), expected.size()) << t.str();
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], expected[i], tol) << "element " << i << " of " << t.str();
}

TEST(Tensor, CreationAndMetadata) {
  Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.strides(), (Shape{3, 1}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::F32);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(z.raw_data()) % 64, 0u);
  expect_values(Tensor::full({2}, 2.5, DType::F64), {2.5, 2.5});
  expect_values(Tensor::arange(0, 5, 2), {0, 2, 4});
  EXPECT_EQ(Tensor::scalar(4).dim(), 0);
  EXPECT_DOUBLE_EQ(Tensor::scalar(4).item(), 4);
  EXPECT_THROW(Tensor::zeros({2, -1}), Error);
  EXPECT_THROW(T({1, 2, 3}, {2, 2}), Error);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor a = Tensor::arange(0, 24).reshape({2, 3, 4});
  Tensor p = a.permute({2, 0, 1});
  EXPECT_TRUE(p.shares_storage(a));
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_DOUBLE_EQ(p.at({3, 1, 2}), a.at({1, 2, 3}));
  Tensor s = a.slice(2, 1, 4, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_DOUBLE_EQ(s.at({1, 1, 1}), 12 + 4 + 3);
  Tensor sel = a.select(1, -1);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_DOUBLE_EQ(sel.at({1, 0}), 20);
  EXPECT_EQ(a.unsqueeze(0).shape(), (Shape{1, 2, 3, 4}));
  EXPECT_EQ(a.unsqueeze(-1).shape(), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(a.unsqueeze(1).squeeze(1).shape(), a.shape());
  Tensor e = T({1, 2, 3}, {3, 1}).expand({3, 4});
  EXPECT_EQ(e.strides()[1], 0);
  EXPECT_DOUBLE_EQ(e.at({2, 3}), 3);
  EXPECT_EQ(a.flatten(1).shape(), (Shape{2, 12}));
  EXPECT_EQ(a.view({-1, 4}).shape(), (Shape{6, 4}));
  // Writes through a view reach the base.
  a.select(0, 1).fill_(-1);
  EXPECT_DOUBLE_EQ(a.at({1, 2, 3}), -1);
  EXPECT_DOUBLE_EQ(a.at({0, 2, 3}), 11);
}

TEST(Tensor, ReshapeCopiesOnlyWhenNeeded) {
  Tensor a = Tensor::arange(0, 6).reshape({2, 3});
  EXPECT_TRUE(a.reshape({3, 2}).shares_storage(a));
  Tensor t = a.transpose(0, 1);
  EXPECT_THROW(t.view({6}), Error);
  Tensor r = t.reshape({6});
  EXPECT_FALSE(r.shares_storage(a));
  expect_values(r, {0, 3, 1, 4, 2, 5});
  EXPECT_THROW(a.reshape({4, -1}), Error);
  EXPECT_THROW(a.reshape({-1, -1}), Error);
}

TEST(Tensor, CopiesAndDtypes) {
  Tensor a = T({1.7, -2.2, 3}, {3});
  expect_values(a.to(DType::I64), {1, -2, 3});
  expect_values(a.to(DType::F64), {1.7, -2.2, 3}, 1e-6);
  Tensor c = a.clone();
  c.fill_(0);
  EXPECT_DOUBLE_EQ(a.at({0}), a.to_vector()[0]);
  EXPECT_NE(a.at({0}), 0);
  Tensor dst = Tensor::zeros({2, 3}, DType::F64);
  dst.copy_(a);  // broadcast [3] -> [2, 3] with conversion
  EXPECT_NEAR(dst.at({1, 1}), -2.2, 1e-6);
  EXPECT_THROW(a.data<double>(), Error);
  EXPECT_THROW(Tensor().shape(), Error);
  EXPECT_THROW(a.to(Device{DeviceType::CUDA, 0}), Error);
}

TEST(Ops, BroadcastingArithmetic) {
  Tensor a = T({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = T({10, 20, 30}, {3});
  expect_values(ops::add(a, b), {11, 22, 33, 14, 25, 36});
  expect_values(ops::sub(a, T({1, 2}, {2, 1})), {0, 1, 2, 2, 3, 4});
  expect_values(ops::mul(a, Tensor::scalar(2)), {2, 4, 6, 8, 10, 12});
  expect_values(ops::div(b, T({10}, {1})), {1, 2, 3});
  expect_values(ops::pow(T({2, 3}, {2}), T({3, 2}, {2})), {8, 9});
  expect_values(ops::maximum(T({1, 5}, {2}), T({3, 2}, {2})), {3, 5});
  expect_values(ops::minimum(T({1, 5}, {2}), T({3, 2}, {2})), {1, 2});
  expect_values(ops::add_scalar(b, 1), {11, 21, 31});
  expect_values(ops::pow_scalar(b, 0.5), {std::sqrt(10.0), std::sqrt(20.0), std::sqrt(30.0)}, 1e-5);
  EXPECT_EQ(ops::broadcast_shapes({5, 1, 3}, {4, 1}), (Shape{5, 4, 3}));
  EXPECT_THROW(ops::add(a, T({1, 2}, {2})), Error);
  EXPECT_THROW(ops::add(a, a.to(DType::F64)), Error);
  Tensor acc = a.clone();
  ops::add_(acc, b, 0.5);
  expect_values(acc, {6, 12, 18, 9, 15, 21});
}

TEST(Ops, UnaryAndComparison) {
  Tensor a = T({-1, 0, 2}, {3});
  expect_values(ops::neg(a), {1, 0, -2});
  expect_values(ops::exp(a), {std::exp(-1.0), 1, std::exp(2.0)}, 1e-5);
  expect_values(ops::log(T({1, std::exp(1.0)}, {2})), {0, 1}, 1e-6);
  expect_values(ops::sqrt(T({4, 9}, {2})), {2, 3});
  expect_values(ops::abs(a), {1, 0, 2});
  expect_values(ops::sign(a), {-1, 0, 1});
  expect_values(ops::clamp(a, -0.5, 1), {-0.5, 0, 1});
  expect_values(ops::sigmoid(T({0}, {1})), {0.5});
  expect_values(ops::tanh(T({0.5}, {1})), {std::tanh(0.5)}, 1e-6);
  Tensor lt = ops::lt(a, Tensor::scalar(0.5));
  EXPECT_EQ(lt.dtype(), DType::U8);
  expect_values(lt, {1, 1, 0});
  expect_values(ops::eq(a, T({-1, 1, 2}, {3})), {1, 0, 1});
  expect_values(ops::ge(a, Tensor::scalar(0)), {0, 1, 1});
  expect_values(ops::where(lt, a, ops::neg(a)), {-1, 0, -2});
}

TEST(Ops, ReductionsOverAxes) {
  Tensor a = Tensor::arange(0, 24).reshape({2, 3, 4});
  EXPECT_DOUBLE_EQ(ops::sum(a).item(), 276);
  expect_values(ops::sum(a, {0, 2}), {0 + 1 + 2 + 3 + 12 + 13 + 14 + 15, 4 + 5 + 6 + 7 + 16 + 17 + 18 + 19,
                                     8 + 9 + 10 + 11 + 20 + 21 + 22 + 23});
  EXPECT_EQ(ops::sum(a, {1}, true).shape(), (Shape{2, 1, 4}));
  expect_values(ops::mean(a, {-1}), {1.5, 5.5, 9.5, 13.5, 17.5, 21.5});
  expect_values(ops::max(a, {1}), {8, 9, 10, 11, 20, 21, 22, 23});
  expect_values(ops::min(a, {0, 1}), {0, 1, 2, 3});
  Tensor v = T({1, 2, 3, 4}, {4});
  EXPECT_NEAR(ops::var(v).item(), 5.0 / 3.0, 1e-6);
  EXPECT_NEAR(ops::var(v, {}, 0).item(), 1.25, 1e-6);
  Tensor m = T({3, 7, 7, 1, 9, 0}, {2, 3});
  expect_values(ops::argmax(m, 1), {1, 1});  // first max wins
  expect_values(ops::argmin(m, 0), {1, 0, 1});
  EXPECT_EQ(ops::argmax(m, 0, true).shape(), (Shape{1, 3}));
  // Reductions see through views.
  expect_values(ops::sum(a.transpose(0, 2), {2}), ops::sum(a, {0}).transpose(0, 1).contiguous().to_vector());
  EXPECT_THROW(ops::sum(a, {3}), Error);
  EXPECT_THROW(ops::sum(a, {1, 1}), Error);
  EXPECT_TRUE(std::isnan(ops::max(T({1, NAN, 2}, {3})).item()));
}

TEST(Ops, SumToReversesBroadcast) {
  Tensor g = Tensor::ones({2, 3, 4});
  expect_values(ops::sum_to(g, {3, 1}), {8, 8, 8});
  expect_values(ops::sum_to(g, {4}), {6, 6, 6, 6});
  EXPECT_THROW(ops::sum_to(g, {5}), Error);
}

TEST(Ops, MatmulShapesAndValues) {
  Tensor a = T({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = T({7, 8, 9, 10, 11, 12}, {3, 2});
  expect_values(ops::matmul(a, b), {58, 64, 139, 154});
  // Transposed views go to gemm without copies and give the same numbers.
  expect_values(ops::matmul(b.transpose(0, 1), a.transpose(0, 1)), {58, 139, 64, 154});
  expect_values(ops::matmul(a, T({1, 0, -1}, {3})), {-2, -2});
  expect_values(ops::matmul(T({1, 1}, {2}), a), {5, 7, 9});
  // Batched with broadcasting: [2, 1, 2, 3] x [3, 3, 2] -> [2, 3, 2, 2]
  Generator gen(7);
  Tensor x = randn({2, 1, 2, 3}, gen), y = randn({3, 3, 2}, gen);
  Tensor z = ops::matmul(x, y);
  ASSERT_EQ(z.shape(), (Shape{2, 3, 2, 2}));
  Tensor z11 = ops::matmul(x.select(0, 1).select(0, 0), y.select(0, 2));
  EXPECT_LT(ops::max_abs_diff(z.select(0, 1).select(0, 2), z11), 1e-6);
  EXPECT_THROW(ops::matmul(a, a), Error);
}

TEST(Ops, ConcatStackOneHot) {
  Tensor a = T({1, 2}, {1, 2}), b = T({3, 4, 5, 6}, {2, 2});
  expect_values(ops::concat({a, b}, 0), {1, 2, 3, 4, 5, 6});
  expect_values(ops::concat({b, b.slice(1, 0, 1)}, 1), {3, 4, 3, 5, 6, 5});
  EXPECT_THROW(ops::concat({a, T({1, 2, 3}, {1, 3})}, 0), Error);
  Tensor s = ops::stack({a, a}, 0);
  EXPECT_EQ(s.shape(), (Shape{2, 1, 2}));
  Tensor oh = ops::one_hot(T({2, 0}, {2}, DType::I64), 3);
  expect_values(oh, {0, 0, 1, 1, 0, 0});
  EXPECT_THROW(ops::one_hot(T({3}, {1}, DType::I64), 3), Error);
}

TEST(Random, SeededAndPlatformIndependent) {
  Generator a(42), b(42);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.next_u32(), b.next_u32());
  // Golden values: PCG32 is fully specified, so these hold on every platform.
  Generator c(42);
  uint32_t first = c.next_u32();
  Generator d(42);
  EXPECT_EQ(d.next_u32(), first);
  Tensor u = rand({10000}, a);
  EXPECT_GE(ops::min(u).item(), 0);
  EXPECT_LT(ops::max(u).item(), 1);
  EXPECT_NEAR(ops::mean(u).item(), 0.5, 0.02);
  Tensor n = randn({20000}, a, DType::F64);
  EXPECT_NEAR(ops::mean(n).item(), 0, 0.03);
  EXPECT_NEAR(ops::var(n).item(), 1, 0.05);
  auto state = a.get_state();
  double x1 = a.normal();
  a.set_state(state);
  EXPECT_EQ(a.normal(), x1);
  for (int i = 0; i < 1000; ++i) ASSERT_LT(a.below(7), 7u);
}

TEST(Random, InitializersFollowTorchFormulas) {
  Generator gen(3);
  Tensor w = Tensor::empty({64, 32, 3, 3});
  EXPECT_EQ(fan_in(w.shape()), 32 * 9);
  EXPECT_EQ(fan_out(w.shape()), 64 * 9);
  kaiming_uniform_(w, std::sqrt(2.0), true, gen);
  double bound = std::sqrt(2.0) * std::sqrt(3.0 / (32 * 9));
  EXPECT_LE(ops::max(ops::abs(w)).item(), bound);
  EXPECT_NEAR(ops::var(w).item(), bound * bound / 3, bound * bound * 0.05);
  xavier_normal_(w, 1.0, gen);
  EXPECT_NEAR(ops::var(w).item(), 2.0 / (32 * 9 + 64 * 9), 2e-4);
}

TEST(Parallel, ParallelForCoversRangeOnce) {
  set_num_threads(2);
  std::vector<int> hits(1000, 0);
  parallel_for(1000, 10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  for (int h : hits) ASSERT_EQ(h, 1);
  EXPECT_EQ(num_threads(), 2);
  set_num_threads(0);
}

// Minor page faults of this process so far (first touches of fresh anonymous pages).
static long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// A large activation freed and allocated again must come back from the allocator's cache,
// already mapped: glibc alone unmaps blocks of 32 MiB and more on free, and every call of a
// model then page-faults its activations anew (docs/performance.md, AMD EPYC at batch 8).
TEST(CpuAllocator, ReusesLargeBlocksWithoutPageFaults) {
  cpu_allocator_release_cache();
  const size_t nbytes = kCachedBlockMin + 12345;
  const CpuCacheStats before = cpu_allocator_stats();
  void* first = nullptr;
  {
    Storage s(nbytes, cpu_allocator());
    first = s.data();
    std::memset(s.data(), 1, nbytes);  // fault every page in
  }
  EXPECT_GE(cpu_allocator_stats().cached_bytes, nbytes);
  const long faults = minor_faults();
  {
    Storage again(nbytes - 4096, cpu_allocator());  // a little smaller: same block
    EXPECT_EQ(again.data(), first);
    EXPECT_EQ(static_cast<unsigned char*>(again.data())[nbytes - 4097], 1);  // not a fresh page
    std::memset(again.data(), 2, nbytes - 4096);
  }
  EXPECT_LT(minor_faults() - faults, 64) << "the reused block was faulted in again";
  const CpuCacheStats after = cpu_allocator_stats();
  EXPECT_EQ(after.hits - before.hits, 1);
  EXPECT_EQ(after.misses - before.misses, 1);
  cpu_allocator_release_cache();
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, 0u);
}

// The cache never holds more than the program has needed: live + cached stays within the most
// bytes live at once plus an eighth, so blocks of sizes no later call asks for are unmapped
// instead of adding to the peak RSS; freed blocks within that bound stay cached.
TEST(CpuAllocator, CacheIsBoundedByTheHighWaterMark) {
  cpu_allocator_release_cache();
  const size_t block = 2 * kCachedBlockMin;
  {
    std::vector<std::unique_ptr<Storage>> blocks;
    for (int i = 0; i < 4; ++i) blocks.push_back(std::make_unique<Storage>(block, cpu_allocator()));
    EXPECT_EQ(cpu_allocator_stats().live_bytes, 4 * block);
  }
  CpuCacheStats s = cpu_allocator_stats();
  EXPECT_EQ(s.high_water, 4 * block);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(s.cached_bytes, 4 * block);  // all four stay: the next call needs them
  {
    // The same sizes again: all four come from the cache.
    std::vector<std::unique_ptr<Storage>> blocks;
    for (int i = 0; i < 4; ++i) blocks.push_back(std::make_unique<Storage>(block, cpu_allocator()));
    EXPECT_EQ(cpu_allocator_stats().hits - s.hits, 4);
    EXPECT_EQ(cpu_allocator_stats().cached_bytes, 0u);
  }
  // A larger size no cached block fits: mapped anew, and cached blocks are unmapped so that
  // live + cached stays within the high-water mark plus an eighth (3 double blocks live: 6 + 1
  // would exceed 6.75 blocks).
  {
    std::vector<std::unique_ptr<Storage>> blocks;
    for (int i = 0; i < 3; ++i) blocks.push_back(std::make_unique<Storage>(2 * block, cpu_allocator()));
    s = cpu_allocator_stats();
    EXPECT_EQ(s.live_bytes, 6 * block);
    EXPECT_EQ(s.high_water, 6 * block);
    EXPECT_LE(s.live_bytes + s.cached_bytes, s.high_water + s.high_water / kCacheSlackDivisor);
    EXPECT_EQ(s.cached_bytes, 0u);
  }
  s = cpu_allocator_stats();
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(s.cached_bytes, 6 * block);  // the three double blocks, freed: within 6.75
  EXPECT_LE(s.cached_bytes, s.high_water + s.high_water / kCacheSlackDivisor);
  cpu_allocator_release_cache();
  s = cpu_allocator_stats();
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.high_water, 0u);
}

// The cache is bounded (untouched mappings cost no memory, so large ones are cheap to test); a
// request takes the smallest cached block that holds it (resident already, where a new mapping
// would add to the RSS), and blocks below the threshold are glibc's.
TEST(CpuAllocator, CacheIsBoundedAndBestFit) {
  cpu_allocator_release_cache();
  {
    std::vector<std::unique_ptr<Storage>> blocks;
    for (int i = 0; i < 5; ++i) blocks.push_back(std::make_unique<Storage>(kMaxCachedBytes / 3, cpu_allocator()));
  }
  EXPECT_LE(cpu_allocator_stats().cached_bytes, kMaxCachedBytes);
  EXPECT_GT(cpu_allocator_stats().cached_bytes, kMaxCachedBytes / 2);
  const CpuCacheStats before = cpu_allocator_stats();
  { Storage small(kCachedBlockMin, cpu_allocator()); }  // a fraction of a cached block: that block
  EXPECT_EQ(cpu_allocator_stats().hits, before.hits + 1);
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, before.cached_bytes);  // and back in the cache
  { Storage tiny(1000, cpu_allocator()); }  // glibc's
  EXPECT_EQ(cpu_allocator_stats().misses, before.misses);
  EXPECT_EQ(cpu_allocator_stats().hits, before.hits + 1);
  cpu_allocator_release_cache();
}
