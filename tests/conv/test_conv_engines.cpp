// Every conv engine against the reference loops, on the raw kernels: forward, input grad and
// weight grad, float64 (tight) and float32, on the case table and on random shapes. Outputs
// start as NaN sentinels, so a kernel that leaves an element unwritten fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>

#include "conv/conv_cases.h"
#include "support/guarded_memory.h"
#include "layers/ops/conv2d.h"
#include "layers/ops/conv2d_depthwise.h"
#include "tensor/parallel.h"

namespace scalpel {
namespace {

using ops::CpuConvAlgorithm;
using testing_conv::ConvCase;

template <typename T>
std::vector<T> random_values(int64_t n, Generator& gen) {
  std::vector<T> v(n);
  for (T& e : v) e = static_cast<T>(gen.uniform(-1, 1));
  return v;
}

template <typename T>
std::vector<T> sentinel(int64_t n) {
  return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
}

// max |a - ref| <= tol * max(1, max |ref|): the error scale of a sum of many products.
template <typename T>
void expect_close(const std::vector<T>& a, const std::vector<T>& ref, double tol,
                  const std::string& what) {
  ASSERT_EQ(a.size(), ref.size()) << what;
  double scale = 1, worst = 0;
  int64_t worst_at = 0;
  for (size_t i = 0; i < ref.size(); ++i) scale = std::max(scale, std::abs(double(ref[i])));
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(double(a[i]) - double(ref[i]));
    if (!(d <= worst)) {  // also catches NaN
      worst = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
      worst_at = static_cast<int64_t>(i);
    }
  }
  EXPECT_LE(worst, tol * scale) << what << ": element " << worst_at << " is " << a[worst_at]
                                << ", reference " << ref[worst_at];
}

std::string geometry_str(const Conv2dGeometry& g) {
  return fmt::format("x [{}, {}, {}, {}] -> [{}, {}, {}, {}], k {}x{}, s [{}, {}], pad top {} left {}, "
                     "d [{}, {}], groups {}",
                     g.batch, g.in_channels, g.in_h, g.in_w, g.batch, g.out_channels, g.out_h, g.out_w,
                     g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.dilation_h,
                     g.dilation_w, g.groups);
}

// Runs every engine that supports g and compares it with the reference; returns how many ran.
template <typename T>
int compare_engines(const Conv2dGeometry& g, bool with_bias, uint64_t seed, double tol) {
  Generator gen(seed);
  const int64_t nx = g.batch * g.in_channels * g.in_h * g.in_w;
  const int64_t nw = g.out_channels * g.in_per_group() * g.kernel_h * g.kernel_w;
  const int64_t ny = g.batch * g.out_channels * g.out_h * g.out_w;
  const auto x = random_values<T>(nx, gen), w = random_values<T>(nw, gen);
  const auto b = random_values<T>(g.out_channels, gen), gy = random_values<T>(ny, gen);
  const T* bias = with_bias ? b.data() : nullptr;

  auto ref_y = sentinel<T>(ny), ref_gx = sentinel<T>(nx), ref_gw = sentinel<T>(nw);
  ops::conv2d_forward_reference(g, x.data(), w.data(), bias, ref_y.data());
  ops::conv2d_backward_input_reference(g, gy.data(), w.data(), ref_gx.data());
  ops::conv2d_backward_weight_reference(g, x.data(), gy.data(), ref_gw.data());

  int ran = 0;
  for (CpuConvAlgorithm engine : testing_conv::fast_engines()) {
    if (!ops::cpu_conv_algorithm_supports(engine, g)) continue;
    ++ran;
    const std::string what = fmt::format("{} {} ({})", ops::cpu_conv_algorithm_name(engine), geometry_str(g),
                                         sizeof(T) == 4 ? "float32" : "float64");
    auto y = sentinel<T>(ny), gx = sentinel<T>(nx), gw = sentinel<T>(nw);
    ops::conv2d_forward(engine, g, x.data(), w.data(), bias, y.data());
    ops::conv2d_backward_input(engine, g, gy.data(), w.data(), gx.data());
    ops::conv2d_backward_weight(engine, g, x.data(), gy.data(), gw.data());
    expect_close(y, ref_y, tol, what + " forward");
    expect_close(gx, ref_gx, tol, what + " grad_x");
    expect_close(gw, ref_gw, tol, what + " grad_weight");
  }
  return ran;
}

TEST(ConvEngines, CaseTableMatchesReference) {
  for (const ConvCase& c : testing_conv::conv_cases()) {
    SCOPED_TRACE(c.name);
    const Conv2dGeometry g = ops::conv2d_geometry(c.x, c.weight(), c.options, c.name);
    EXPECT_GE(compare_engines<double>(g, c.bias, 1, 1e-12), 1);
    compare_engines<float>(g, c.bias, 2, 1e-5);
  }
}

// Random geometries: odd and tiny sizes, every stride/dilation/padding mix, groups and
// depthwise multipliers; shapes where the kernel does not fit are redrawn.
std::vector<Conv2dGeometry> random_geometries(int count, uint64_t seed) {
  Generator gen(seed);
  std::vector<Conv2dGeometry> out;
  while (static_cast<int>(out.size()) < count) {
    Conv2dGeometry g;
    g.batch = 1 + gen.below(3);
    g.groups = 1 + gen.below(3);
    g.in_channels = g.groups * (1 + gen.below(3));
    if (gen.below(3) == 0) g.groups = g.in_channels;  // depthwise
    g.out_channels = g.groups * (1 + gen.below(3));
    g.in_h = 1 + gen.below(12);
    g.in_w = 1 + gen.below(12);
    g.kernel_h = 1 + gen.below(5);
    g.kernel_w = 1 + gen.below(5);
    g.stride_h = 1 + gen.below(3);
    g.stride_w = 1 + gen.below(3);
    g.dilation_h = 1 + gen.below(2);
    g.dilation_w = 1 + gen.below(2);
    g.pad_top = gen.below(3);
    g.pad_left = gen.below(3);
    g.pad_bottom = gen.below(3);
    g.pad_right = gen.below(3);
    g.set_output_size();
    if (g.out_h > 0 && g.out_w > 0) out.push_back(g);
  }
  return out;
}

TEST(ConvEngines, RandomShapesMatchReference) {
  int depthwise = 0, i = 0;
  for (const Conv2dGeometry& g : random_geometries(60, 2024)) {
    ++i;
    depthwise += g.is_depthwise();
    SCOPED_TRACE(geometry_str(g));
    compare_engines<double>(g, i % 2 == 0, 100 + i, 1e-12);
    compare_engines<float>(g, true, 200 + i, 1e-5);
  }
  EXPECT_GE(depthwise, 5) << "the random draw should cover the depthwise engine";
}

// The im2col engine's float forward of g on an input that ends where an unreadable page begins:
// the same bits as on the input anywhere else, and no read past its last value (which would
// crash the test).
void expect_im2col_reads_only_its_input(const Conv2dGeometry& g, uint64_t seed) {
  Generator gen(seed);
  const auto x = random_values<float>(g.batch * g.in_channels * g.in_h * g.in_w, gen);
  const auto w = random_values<float>(g.out_channels * g.in_per_group() * g.kernel_h * g.kernel_w, gen);
  const int64_t ny = g.batch * g.out_channels * g.out_h * g.out_w;
  auto y = sentinel<float>(ny), y_guarded = sentinel<float>(ny);
  const float* no_bias = nullptr;
  ops::conv2d_forward(CpuConvAlgorithm::Im2colGemm, g, x.data(), w.data(), no_bias, y.data());
  const test::GuardedCopy<float> guarded(x);
  ops::conv2d_forward(CpuConvAlgorithm::Im2colGemm, g, guarded.data(), w.data(), no_bias, y_guarded.data());
  EXPECT_EQ(std::memcmp(y.data(), y_guarded.data(), ny * sizeof(float)), 0);
}

// im2col's stride-2 rows (the networks' stems; a vector kernel on AVX-512) at every row length
// from 1 to 40 and some longer: no full vector, one plus a tail, several; padding and kernel
// width move where each row starts. The forward also runs on an input that ends where an
// unreadable page begins: the same bits, and no read past the input's last value.
TEST(ConvEngines, Stride2RowsOfEveryLength) {
  std::vector<int64_t> widths;
  for (int64_t w = 1; w <= 40; ++w) widths.push_back(w);
  for (int64_t w : {63, 64, 65, 66, 97, 130}) widths.push_back(w);
  uint64_t seed = 400;
  for (int64_t w : widths)
    for (int64_t k : {1, 3, 7}) {
      Conv2dGeometry g;
      g.batch = 1;
      g.groups = 1;
      g.in_channels = 2;
      g.out_channels = 3;
      g.in_h = 5;
      g.in_w = w;
      g.kernel_h = 3;
      g.kernel_w = k;
      g.stride_h = g.stride_w = 2;
      g.dilation_h = g.dilation_w = 1;
      g.pad_top = g.pad_bottom = 1;
      g.pad_left = g.pad_right = w % (k / 2 + 1);
      g.set_output_size();
      if (g.out_h <= 0 || g.out_w <= 0) continue;
      SCOPED_TRACE(geometry_str(g));
      compare_engines<float>(g, true, ++seed, 1e-5);
      compare_engines<double>(g, false, ++seed, 1e-12);
      expect_im2col_reads_only_its_input(g, ++seed);
    }
}

// im2col's flat columns (stride 1, rows as long as the input's, at most 256 output pixels: a
// few masked vector copies per row of col): every plane size from 1x1 to 16x16 and some
// wider rows, kernels 1-5, padding split evenly or not, dilation 1 and 2, input ending at an
// unreadable page.
TEST(ConvEngines, FlatColumnsOnSmallPlanes) {
  uint64_t seed = 600;
  for (int64_t h = 1; h <= 16; ++h)
    for (const auto& [k, dilation, pad_top, pad_left] :
         {std::tuple{3, 1, 1, 1}, {3, 1, 2, 0}, {5, 1, 2, 1}, {1, 1, 0, 0}, {3, 2, 2, 2}, {3, 2, 1, 3}}) {
      Conv2dGeometry g;
      g.batch = 1 + h % 2;
      g.groups = 1;
      g.in_channels = 3;
      g.out_channels = 4;
      g.in_h = h;
      g.in_w = h + (h % 3 == 0 ? 5 : 0);  // some rows wider than the plane is tall
      g.kernel_h = g.kernel_w = k;
      g.stride_h = g.stride_w = 1;
      g.dilation_h = g.dilation_w = dilation;
      g.pad_top = pad_top;
      g.pad_bottom = dilation * (k - 1) - pad_top;
      g.pad_left = pad_left;
      g.pad_right = dilation * (k - 1) - pad_left;
      if (g.pad_bottom < 0 || g.pad_right < 0) continue;
      g.set_output_size();
      SCOPED_TRACE(geometry_str(g));
      compare_engines<float>(g, true, ++seed, 1e-5);
      expect_im2col_reads_only_its_input(g, ++seed);
    }
}

// The depthwise loops are compiled per SIMD level; the default run only covers the widest
// this CPU has, so run the others too.
TEST(ConvEngines, DepthwiseEverySimdVariantMatchesReference) {
  std::vector<Conv2dGeometry> shapes;
  for (const ConvCase& c : testing_conv::conv_cases())
    shapes.push_back(ops::conv2d_geometry(c.x, c.weight(), c.options, c.name));
  for (const Conv2dGeometry& g : random_geometries(60, 77)) shapes.push_back(g);
  for (Isa level : {Isa::baseline, Isa::avx2,
                                   Isa::avx512}) {
    if (!cpu_supports(level)) {
      EXPECT_THROW(ops::set_depthwise_isa(level), Error);
      continue;
    }
    ops::set_depthwise_isa(level);
    for (const Conv2dGeometry& g : shapes) {
      if (!g.is_depthwise()) continue;
      SCOPED_TRACE(fmt::format("{}: {}", isa_name(level), geometry_str(g)));
      compare_engines<double>(g, true, 300, 1e-12);
      compare_engines<float>(g, true, 301, 1e-5);
    }
  }
  ops::reset_depthwise_isa();
}

// With 3 threads, a batch of 4 takes the parallel-over-samples path of the GEMM engine (the
// shapes are above its work thresholds, layers/ops/conv2d_im2col.cpp); a batch of one takes
// the threaded im2col/col2im and GEMM path; depthwise splits planes. All must agree with the
// reference.
TEST(ConvEngines, ThreadedPathsMatchReference) {
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    for (int64_t batch : {1, 4}) {
      for (int64_t groups : {1, 4, 32}) {
        Conv2dGeometry g;
        g.batch = batch;
        g.in_channels = 32;
        g.out_channels = 32;
        g.groups = groups;
        g.in_h = 23;
        g.in_w = 21;
        g.kernel_h = g.kernel_w = 3;
        g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = 1;
        g.set_output_size();
        SCOPED_TRACE(fmt::format("threads {}, {}", threads, geometry_str(g)));
        compare_engines<float>(g, true, 7, 1e-5);
      }
    }
  }
  set_num_threads(0);
}

// Training is reproducible whatever the thread count only if every engine gives the same bits
// with 1, 2 or 3 threads, in particular the weight gradient, a sum over the batch: batches of
// 5 and 8 take the parallel-over-samples path with 2 and 3 threads (above its work threshold),
// the 128 x 128 3x3 weight the one-partial path, the 1x1 conv the direct GEMM.
TEST(ConvEngines, SameBitsForAnyThreadCount) {
  struct Shape {
    int64_t batch, channels, size, kernel;
  };
  for (const Shape& sh : {Shape{5, 16, 20, 3}, Shape{8, 24, 13, 1}, Shape{8, 128, 9, 3}, Shape{1, 32, 23, 3}}) {
    for (int64_t groups : {int64_t{1}, sh.channels}) {
      Conv2dGeometry g;
      g.batch = sh.batch;
      g.in_channels = g.out_channels = sh.channels;
      g.groups = groups;
      g.in_h = g.in_w = sh.size;
      g.kernel_h = g.kernel_w = sh.kernel;
      g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = sh.kernel / 2;
      g.set_output_size();
      Generator gen(11);
      const int64_t nx = g.batch * g.in_channels * g.in_h * g.in_w;
      const int64_t nw = g.out_channels * g.in_per_group() * g.kernel_h * g.kernel_w;
      const int64_t ny = g.batch * g.out_channels * g.out_h * g.out_w;
      const auto x = random_values<float>(nx, gen), w = random_values<float>(nw, gen);
      const auto gy = random_values<float>(ny, gen);
      for (CpuConvAlgorithm engine : testing_conv::fast_engines()) {
        if (!ops::cpu_conv_algorithm_supports(engine, g)) continue;
        SCOPED_TRACE(fmt::format("{} {}", ops::cpu_conv_algorithm_name(engine), geometry_str(g)));
        std::vector<float> y1, gx1, gw1;
        for (int threads : {1, 2, 3}) {
          set_num_threads(threads);
          auto y = sentinel<float>(ny), gx = sentinel<float>(nx), gw = sentinel<float>(nw);
          ops::conv2d_forward(engine, g, x.data(), w.data(), static_cast<const float*>(nullptr), y.data());
          ops::conv2d_backward_input(engine, g, gy.data(), w.data(), gx.data());
          ops::conv2d_backward_weight(engine, g, x.data(), gy.data(), gw.data());
          if (threads == 1) {
            y1 = y, gx1 = gx, gw1 = gw;
            continue;
          }
          // memcmp-like: NaN sentinels left unwritten compare unequal too.
          EXPECT_TRUE(std::equal(y.begin(), y.end(), y1.begin())) << threads << " threads: forward";
          EXPECT_TRUE(std::equal(gx.begin(), gx.end(), gx1.begin())) << threads << " threads: grad_x";
          EXPECT_TRUE(std::equal(gw.begin(), gw.end(), gw1.begin())) << threads << " threads: grad_weight";
        }
      }
    }
  }
  set_num_threads(0);
}

// Data-parallel training gives one process's bits only if the weight gradient of a batch is
// the sum of its halves' (the ranks' shards, added by the allreduce), bit for bit: the batch is
// added as a tree (layers/ops/batch_tree.h). Batches of 8 (2 and 4 ranks) and 7 (halves of 3
// and 4, as the data loader's shards), on 1 and 3 threads (the parallel-over-samples path),
// for im2col, the pointwise GEMM, a weight over the partial budget, depthwise and Winograd.
TEST(ConvEngines, WeightGradientOfABatchIsItsShardsAdded) {
  struct Shape {
    int64_t batch, channels, size, kernel, groups;
  };
  std::set<CpuConvAlgorithm> engines_run;
  for (const Shape& sh : {Shape{8, 8, 20, 3, 1}, Shape{7, 8, 20, 3, 1}, Shape{8, 24, 13, 1, 1},
                          Shape{8, 256, 5, 3, 1}, Shape{8, 32, 17, 3, 32}, Shape{7, 32, 17, 3, 32},
                          Shape{8, 32, 20, 3, 1}, Shape{7, 32, 20, 3, 1}}) {
    Conv2dGeometry g;
    g.batch = sh.batch;
    g.in_channels = g.out_channels = sh.channels;
    g.groups = sh.groups;
    g.in_h = g.in_w = sh.size;
    g.kernel_h = g.kernel_w = sh.kernel;
    g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = sh.kernel / 2;
    g.set_output_size();
    Generator gen(5);
    const int64_t in_sample = g.in_channels * g.in_h * g.in_w, out_sample = g.out_channels * g.out_h * g.out_w;
    const int64_t nw = g.out_channels * g.in_per_group() * g.kernel_h * g.kernel_w;
    const auto x = random_values<float>(g.batch * in_sample, gen), gy = random_values<float>(g.batch * out_sample, gen);
    // Samples [begin, end)'s weight gradient.
    const auto shard = [&](int64_t begin, int64_t end) {
      Conv2dGeometry part = g;
      part.batch = end - begin;
      auto gw = sentinel<float>(nw);
      ops::conv2d_backward_weight(CpuConvAlgorithm::Auto, part, x.data() + begin * in_sample,
                                  gy.data() + begin * out_sample, gw.data());
      return gw;
    };
    const auto added = [](std::vector<float> a, const std::vector<float>& b) {
      for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
      return a;
    };
    engines_run.insert(ops::choose_cpu_conv_weight_gradient_algorithm(g));
    for (int threads : {1, 3}) {
      set_num_threads(threads);
      SCOPED_TRACE(fmt::format("{} threads, {}", threads, geometry_str(g)));
      const std::vector<float> whole = shard(0, g.batch);
      const int64_t half = g.batch / 2;
      EXPECT_TRUE(whole == added(shard(0, half), shard(half, g.batch))) << "2 shards";
      if (g.batch == 8) EXPECT_TRUE(whole == added(added(shard(0, 2), shard(2, 4)), added(shard(4, 6), shard(6, 8))))
          << "4 shards";
    }
  }
  set_num_threads(0);
  EXPECT_EQ(engines_run, (std::set<CpuConvAlgorithm>{CpuConvAlgorithm::Im2colGemm, CpuConvAlgorithm::Depthwise,
                                                     CpuConvAlgorithm::Winograd}));
}

// Large images are unfolded a block of output rows at a time (a bounded column buffer of
// 2^21 entries): with K = 64 * 9 these outputs take two blocks, the second one partial.
TEST(ConvEngines, LargeImagesRunInRowBlocks) {
  for (const auto& [in_h, in_w, dilation, pad_top, pad_bottom, pad_side] :
       std::vector<std::array<int64_t, 6>>{{70, 70, 1, 1, 1, 1}, {75, 66, 2, 1, 3, 2}}) {
    Conv2dGeometry g;
    g.in_channels = 64;
    g.out_channels = 4;
    g.in_h = in_h;
    g.in_w = in_w;
    g.kernel_h = g.kernel_w = 3;
    g.dilation_h = g.dilation_w = dilation;
    g.pad_top = pad_top;
    g.pad_bottom = pad_bottom;
    g.pad_left = g.pad_right = pad_side;
    g.set_output_size();
    ASSERT_GT(64 * 9 * g.out_h * g.out_w, int64_t{1} << 21);
    SCOPED_TRACE(geometry_str(g));
    compare_engines<float>(g, true, 5, 1e-5);
  }
}

TEST(ConvEngines, AutoPicksDepthwiseOnlyForDepthwise) {
  for (const ConvCase& c : testing_conv::conv_cases()) {
    const Conv2dGeometry g = ops::conv2d_geometry(c.x, c.weight(), c.options, c.name);
    const bool depthwise = c.options.groups == c.x[1];
    EXPECT_EQ(ops::choose_cpu_conv_algorithm(g), depthwise ? CpuConvAlgorithm::Depthwise : CpuConvAlgorithm::Im2colGemm)
        << c.name;
  }
}

TEST(ConvEngines, ForcedEngineFallsBackLoudly) {
  const ConvCase c = testing_conv::conv_cases().front();  // not depthwise
  const Conv2dGeometry g = ops::conv2d_geometry(c.x, c.weight(), c.options, c.name);
  std::vector<float> x(c.x[0] * c.x[1] * c.x[2] * c.x[3]), w(shape_numel(c.weight()));
  std::vector<float> y(g.batch * g.out_channels * g.out_h * g.out_w);
  // Asking a kernel directly for an engine that cannot run the shape is an error ...
  EXPECT_THROW(ops::conv2d_forward<float>(CpuConvAlgorithm::Depthwise, g, x.data(), w.data(), nullptr, y.data()),
               Error);
  // ... while the process-wide override falls back to the automatic choice and counts it.
  testing_conv::EngineGuard guard(CpuConvAlgorithm::Depthwise);
  EXPECT_EQ(ops::cpu_conv_algorithm(), CpuConvAlgorithm::Depthwise);
  const int64_t before = ops::cpu_conv_algorithm_fallbacks();
  EXPECT_EQ(ops::resolve_cpu_conv_algorithm(g), CpuConvAlgorithm::Im2colGemm);
  EXPECT_EQ(ops::cpu_conv_algorithm_fallbacks(), before + 1);
  nn::conv2d(Tensor::zeros(c.x), Tensor::zeros(c.weight()), Tensor(), c.options);
  EXPECT_EQ(ops::cpu_conv_algorithm_fallbacks(), before + 2);
}

}  // namespace
}  // namespace scalpel
