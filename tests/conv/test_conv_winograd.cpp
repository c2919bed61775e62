// The Winograd F(4x4, 3x3) engine against the reference loops: every plane size from 1 to 13
// (so every ragged edge tile and planes smaller than one tile run), paddings 0, 1 and 2, batches,
// channel counts that are multiples of nothing, chunked and threaded tile rows, each fused
// epilogue, every compiled SIMD variant of the transforms, and its float32 error on resnet50's
// layer shapes. The case table and random shapes of test_conv_engines.cpp run it too
// (kFastCpuConvAlgorithms), backward passes included.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "layers/ops/conv2d.h"
#include "tensor/constants.h"
#include "tensor/error.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

using ops::CpuConvAlgorithm;

Conv2dGeometry conv3x3(int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t pad_before,
                       int64_t pad_after) {
  Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = cin;
  g.out_channels = cout;
  g.in_h = h;
  g.in_w = w;
  g.kernel_h = g.kernel_w = 3;
  g.pad_top = g.pad_left = pad_before;
  g.pad_bottom = g.pad_right = pad_after;
  g.set_output_size();
  return g;
}

std::string describe(const Conv2dGeometry& g) {
  return fmt::format("x [{}, {}, {}, {}] -> [{}, {}, {}, {}], pad top/left {}", g.batch, g.in_channels, g.in_h,
                     g.in_w, g.batch, g.out_channels, g.out_h, g.out_w, g.pad_top);
}

template <typename T>
std::vector<T> uniform_values(int64_t n, double lo, double hi, Generator& gen) {
  std::vector<T> v(n);
  for (T& e : v) e = static_cast<T>(gen.uniform(lo, hi));
  return v;
}

// max |a - ref| / max(1, max |ref|); NaN (an unwritten sentinel) counts as infinite.
template <typename T, typename R>
double relative_error(const std::vector<T>& a, const std::vector<R>& ref, double floor = 1) {
  double scale = floor, worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) scale = std::max(scale, std::abs(double(ref[i])));
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(double(a[i]) - double(ref[i]));
    worst = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(worst, d);
  }
  return worst / scale;
}

// The reference conv, then the epilogue as its own pass (what the engine must equal).
template <typename T>
std::vector<T> reference(const Conv2dGeometry& g, const std::vector<T>& x, const std::vector<T>& w, const T* bias,
                         const ops::ConvEpilogue<T>& epilogue) {
  std::vector<T> y(g.batch * g.out_channels * g.out_h * g.out_w);
  ops::conv2d_forward_reference(g, x.data(), w.data(), bias, y.data());
  const GemmEpilogue<T> e{nullptr, epilogue.activation, epilogue.residual, 0};
  apply_epilogue(e, 0, 0, static_cast<int64_t>(y.size()), y.data());
  return y;
}

// Winograd vs reference on g with uniform inputs in [-1, 1); returns the relative error.
template <typename T>
double winograd_error(const Conv2dGeometry& g, uint64_t seed, bool with_bias = true,
                      EpilogueActivation activation = EpilogueActivation::none, bool with_residual = false) {
  Generator gen(seed);
  const int64_t ny = g.batch * g.out_channels * g.out_h * g.out_w;
  const auto x = uniform_values<T>(g.batch * g.in_channels * g.in_h * g.in_w, -1, 1, gen);
  const auto w = uniform_values<T>(g.out_channels * g.in_channels * 9, -1, 1, gen);
  const auto b = uniform_values<T>(g.out_channels, -1, 1, gen);
  const auto r = uniform_values<T>(ny, -2, 2, gen);
  const ops::ConvEpilogue<T> epilogue{activation, with_residual ? r.data() : nullptr};
  const T* bias = with_bias ? b.data() : nullptr;
  std::vector<T> y(ny, std::numeric_limits<T>::quiet_NaN());  // every element must be written
  ops::conv2d_forward<T>(CpuConvAlgorithm::Winograd, g, x.data(), w.data(), bias, y.data(), epilogue);
  return relative_error(y, reference(g, x, w, bias, epilogue));
}

// The Winograd input gradient vs the reference's, with uniform inputs in [-1, 1).
template <typename T>
double input_gradient_error(const Conv2dGeometry& g, uint64_t seed) {
  Generator gen(seed);
  const auto w = uniform_values<T>(g.out_channels * g.in_channels * 9, -1, 1, gen);
  const auto gy = uniform_values<T>(g.batch * g.out_channels * g.out_h * g.out_w, -1, 1, gen);
  const int64_t nx = g.batch * g.in_channels * g.in_h * g.in_w;
  std::vector<T> expected(nx), gx(nx, std::numeric_limits<T>::quiet_NaN());
  ops::conv2d_backward_input_reference(g, gy.data(), w.data(), expected.data());
  ops::conv2d_backward_input<T>(CpuConvAlgorithm::Winograd, g, gy.data(), w.data(), gx.data());
  return relative_error(gx, expected);
}

// The Winograd weight gradient vs the reference's, with uniform inputs in [-1, 1).
template <typename T>
double weight_gradient_error(const Conv2dGeometry& g, uint64_t seed) {
  Generator gen(seed);
  const auto x = uniform_values<T>(g.batch * g.in_channels * g.in_h * g.in_w, -1, 1, gen);
  const auto gy = uniform_values<T>(g.batch * g.out_channels * g.out_h * g.out_w, -1, 1, gen);
  const int64_t nw = g.out_channels * g.in_channels * 9;
  std::vector<T> expected(nw), gw(nw, std::numeric_limits<T>::quiet_NaN());
  ops::conv2d_backward_weight_reference(g, x.data(), gy.data(), expected.data());
  ops::conv2d_backward_weight<T>(CpuConvAlgorithm::Winograd, g, x.data(), gy.data(), gw.data());
  return relative_error(gw, expected);
}

// check(g, seed) for conv3x3(2, cin, cout, h, w, pad) over planes h in 1..13, w in 1..13 (every
// w_step-th), and each (before, after) padding, skipping those the kernel does not fit.
template <typename Check>
void for_each_small_plane(const std::vector<std::pair<int64_t, int64_t>>& paddings, int64_t w_step, int64_t cin,
                          int64_t cout, const Check& check) {
  for (const auto& [pad_before, pad_after] : paddings)
    for (int64_t h = 1; h <= 13; ++h)
      for (int64_t w = 1; w <= 13; w += w_step) {
        const Conv2dGeometry g = conv3x3(2, cin, cout, h, w, pad_before, pad_after);
        if (g.out_h <= 0 || g.out_w <= 0) continue;  // the kernel does not fit
        SCOPED_TRACE(describe(g));
        check(g, static_cast<uint64_t>(10 * h + w));
      }
}

TEST(ConvWinograd, EveryPlaneSizeAndPadding) {
  for_each_small_plane({{0, 0}, {1, 1}, {2, 1}}, 1, 3, 5, [](const Conv2dGeometry& g, uint64_t seed) {
    EXPECT_LE(winograd_error<double>(g, seed), 1e-13);
    EXPECT_LE(winograd_error<float>(g, seed), 1e-5);
  });
}

// The input gradient runs the forward on grad_y with the flipped, transposed weights and
// padding 2 - pad, negative for pad 3.
TEST(ConvWinograd, InputGradientEveryPlaneSizeAndPadding) {
  for_each_small_plane({{0, 0}, {1, 1}, {2, 0}, {3, 2}}, 3, 4, 3, [](const Conv2dGeometry& g, uint64_t seed) {
    EXPECT_LE(input_gradient_error<double>(g, seed), 1e-13);
    EXPECT_LE(input_gradient_error<float>(g, seed), 1e-5);
  });
}

// dY is zero past the image where the ragged edge tiles are cropped; the input patches are
// zero in the padding and past it.
TEST(ConvWinograd, WeightGradientEveryPlaneSizeAndPadding) {
  for_each_small_plane({{0, 0}, {1, 1}, {2, 0}, {0, 2}}, 2, 3, 4, [](const Conv2dGeometry& g, uint64_t seed) {
    EXPECT_LE(weight_gradient_error<double>(g, seed), 1e-13);
    EXPECT_LE(weight_gradient_error<float>(g, seed), 1e-5);
  });
}

TEST(ConvWinograd, OddChannelsAndBatches) {
  for (const Conv2dGeometry& g : {conv3x3(3, 37, 19, 11, 13, 1, 1), conv3x3(1, 1, 1, 9, 9, 1, 1),
                                  conv3x3(4, 17, 33, 5, 7, 0, 0), conv3x3(2, 21, 3, 13, 4, 1, 1)}) {
    SCOPED_TRACE(describe(g));
    EXPECT_LE(winograd_error<double>(g, 1, false), 1e-13);
    EXPECT_LE(winograd_error<float>(g, 2), 1e-5);
    EXPECT_LE(weight_gradient_error<double>(g, 3), 1e-13);
    EXPECT_LE(weight_gradient_error<float>(g, 4), 1e-5);
  }
}

// Bias, then residual, then activation, as the reference conv followed by the epilogue pass.
TEST(ConvWinograd, FusedEpilogue) {
  const Conv2dGeometry g = conv3x3(2, 7, 6, 10, 9, 1, 1);
  for (EpilogueActivation activation : {EpilogueActivation::none, EpilogueActivation::relu, EpilogueActivation::relu6,
                                        EpilogueActivation::silu, EpilogueActivation::hardswish})
    for (bool with_residual : {false, true}) {
      SCOPED_TRACE(fmt::format("activation {} residual {}", static_cast<int>(activation), with_residual));
      EXPECT_LE(winograd_error<double>(g, 3, true, activation, with_residual), 1e-13);
      EXPECT_LE(winograd_error<float>(g, 4, true, activation, with_residual), 1e-5);
    }
}

// Large enough for several chunks of tile rows: with 2 or 3 threads the rows are split between
// threads (each with its own chunks), with 1 they run one after another. The weight gradient
// chunks each sample's tile rows (its GEMMs accumulate over them) and spreads the samples or,
// for one, the transforms and GEMMs over the threads.
TEST(ConvWinograd, ChunksAndThreads) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (const Conv2dGeometry& g : {conv3x3(3, 64, 40, 30, 29, 1, 1), conv3x3(1, 96, 64, 45, 43, 1, 1)}) {
      SCOPED_TRACE(fmt::format("threads {}, {}", threads, describe(g)));
      EXPECT_LE(winograd_error<float>(g, 5, true, EpilogueActivation::relu, true), 1e-5);
    }
    for (const Conv2dGeometry& g : {conv3x3(3, 20, 24, 61, 63, 1, 1), conv3x3(1, 40, 16, 70, 66, 1, 1)}) {
      SCOPED_TRACE(fmt::format("threads {}, weight gradient, {}", threads, describe(g)));
      EXPECT_LE(weight_gradient_error<float>(g, 6), 1e-5);
    }
  }
  set_num_threads(0);
}

TEST(ConvWinograd, EverySimdVariant) {
  for (Isa level : {Isa::baseline, Isa::avx2, Isa::avx512}) {
    if (!cpu_supports(level)) {
      EXPECT_THROW(ops::set_winograd_isa(level), Error);
      continue;
    }
    ops::set_winograd_isa(level);
    SCOPED_TRACE(isa_name(level));
    for (const Conv2dGeometry& g : {conv3x3(2, 5, 7, 13, 11, 1, 1), conv3x3(1, 3, 4, 5, 38, 0, 0),
                                    conv3x3(2, 33, 18, 22, 21, 1, 1)}) {
      SCOPED_TRACE(describe(g));
      EXPECT_LE(winograd_error<double>(g, 6, true, EpilogueActivation::silu, true), 1e-13);
      EXPECT_LE(winograd_error<float>(g, 7), 1e-5);
      EXPECT_LE(weight_gradient_error<double>(g, 8), 1e-13);
      EXPECT_LE(weight_gradient_error<float>(g, 9), 1e-5);
    }
  }
  ops::reset_winograd_isa();
}

// float32 error on resnet50's stride-1 3x3 layers (layer1..4 at batch 1) with inputs after a
// ReLU and He-initialized weights, against the float64 reference, next to im2col + GEMM's: the
// bound stated in conv2d.h.
TEST(ConvWinograd, Float32ErrorOnResnet50Layers) {
  for (const Conv2dGeometry& g : {conv3x3(1, 64, 64, 56, 56, 1, 1), conv3x3(1, 128, 128, 28, 28, 1, 1),
                                  conv3x3(1, 256, 256, 14, 14, 1, 1), conv3x3(1, 512, 512, 7, 7, 1, 1)}) {
    Generator gen(11);
    const double bound = std::sqrt(6.0 / (9.0 * double(g.in_channels)));
    const auto x = uniform_values<double>(g.batch * g.in_channels * g.in_h * g.in_w, 0, 1, gen);
    const auto w = uniform_values<double>(g.out_channels * g.in_channels * 9, -bound, bound, gen);
    const std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end());
    const auto expected = reference<double>(g, x, w, nullptr, {});
    std::vector<float> winograd(expected.size()), im2col(expected.size());
    ops::conv2d_forward_winograd<float>(g, xf.data(), wf.data(), nullptr, winograd.data());
    ops::conv2d_forward_im2col<float>(g, xf.data(), wf.data(), nullptr, im2col.data());
    const double winograd_rel = relative_error(winograd, expected, 0), im2col_rel = relative_error(im2col, expected, 0);
    std::printf("%s: float32 error / max |y|: winograd %.2e, im2col %.2e\n", describe(g).c_str(), winograd_rel,
                im2col_rel);
    EXPECT_LE(winograd_rel, 5e-6) << describe(g);
  }
}

// The weight gradient's float32 error, likewise, on the layers where Auto runs it (resnet50's
// layer1-2, DenseNet's 3x3 on 56x56), with He-scaled output gradients (a sum over the plane of
// mixed-sign products): relative to max |grad_weight|, next to im2col + GEMM's.
TEST(ConvWinograd, WeightGradientFloat32ErrorOnLayersItRuns) {
  for (const Conv2dGeometry& g : {conv3x3(1, 64, 64, 56, 56, 1, 1), conv3x3(1, 128, 128, 28, 28, 1, 1),
                                  conv3x3(2, 128, 32, 56, 56, 1, 1)}) {
    Generator gen(12);
    const auto x = uniform_values<double>(g.batch * g.in_channels * g.in_h * g.in_w, 0, 1, gen);
    const auto gy = uniform_values<double>(g.batch * g.out_channels * g.out_h * g.out_w, -1, 1, gen);
    const std::vector<float> xf(x.begin(), x.end()), gyf(gy.begin(), gy.end());
    const int64_t nw = g.out_channels * g.in_channels * 9;
    std::vector<double> expected(nw);
    ops::conv2d_backward_weight_reference(g, x.data(), gy.data(), expected.data());
    std::vector<float> winograd(nw), im2col(nw);
    ops::conv2d_backward_weight_winograd<float>(g, xf.data(), gyf.data(), winograd.data());
    ops::conv2d_backward_weight_im2col<float>(g, xf.data(), gyf.data(), im2col.data());
    const double winograd_rel = relative_error(winograd, expected, 0), im2col_rel = relative_error(im2col, expected, 0);
    std::printf("%s: float32 weight gradient error / max |grad|: winograd %.2e, im2col %.2e\n", describe(g).c_str(),
                winograd_rel, im2col_rel);
    EXPECT_LE(winograd_rel, 5e-6) << describe(g);
  }
}

// The automatic choice follows the measured break-even (layers/ops/conv2d.cpp): enough tiles
// per call to share the weight transform, and enough channels.
TEST(ConvWinograd, AutoChoosesItWhereItMeasuredFaster) {
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 64, 64, 56, 56, 1, 1)), CpuConvAlgorithm::Winograd);  // 196 tiles
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(8, 128, 128, 28, 28, 1, 1)),
            CpuConvAlgorithm::Winograd);  // 392 tiles
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(8, 256, 256, 14, 14, 1, 1)),
            CpuConvAlgorithm::Winograd);  // 128 tiles
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(8, 128, 32, 56, 56, 1, 1)),
            CpuConvAlgorithm::Winograd);  // 1568 tiles, 32 output channels (DenseNet)
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(8, 512, 512, 7, 7, 1, 1)),
            CpuConvAlgorithm::Im2colGemm);  // 32 tiles
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 256, 256, 14, 14, 1, 1)),
            CpuConvAlgorithm::Im2colGemm);  // 16 tiles
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(8, 128, 16, 56, 56, 1, 1)),
            CpuConvAlgorithm::Im2colGemm);  // 16 output channels
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 3, 64, 224, 224, 1, 1)),
            CpuConvAlgorithm::Im2colGemm);  // 3 channels
  // Weights transformed once (declared constant, small enough to keep) pay from 8 tiles.
  const bool constant = true;
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 128, 128, 28, 28, 1, 1)), CpuConvAlgorithm::Im2colGemm);
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 128, 128, 28, 28, 1, 1), constant),
            CpuConvAlgorithm::Winograd);  // 49 tiles
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(8, 96, 96, 7, 7, 1, 1), constant),
            CpuConvAlgorithm::Winograd);  // 32 tiles
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 128, 32, 14, 14, 1, 1), constant),
            CpuConvAlgorithm::Winograd);  // 16 tiles (DenseNet's third block at batch 1)
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(2, 128, 32, 7, 7, 1, 1), constant),
            CpuConvAlgorithm::Winograd);  // 8 tiles
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 128, 32, 7, 7, 1, 1), constant),
            CpuConvAlgorithm::Im2colGemm);  // 4 tiles (DenseNet's last block at batch 1: flat im2col)
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 128, 32, 3, 3, 1, 1), constant),
            CpuConvAlgorithm::Im2colGemm);  // 1 tile
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(8, 512, 512, 7, 7, 1, 1), constant),
            CpuConvAlgorithm::Im2colGemm);  // transformed weights too large to keep
  EXPECT_EQ(ops::choose_cpu_conv_algorithm(conv3x3(1, 256, 256, 14, 14, 1, 1), constant),
            CpuConvAlgorithm::Im2colGemm);  // 16 tiles
}

// The weight gradient's choice: by the tiles of one sample (its GEMMs reduce over those), with
// fewer tiles only while the transformed gradient fits in L2; the same at every batch size, so
// that data-parallel shards of a batch run the engine the whole batch runs.
TEST(ConvWinograd, WeightGradientAutoChoosesItPerSample) {
  for (int64_t batch : {1, 3, 8}) {
    SCOPED_TRACE(fmt::format("batch {}", batch));
    auto choice = [](const Conv2dGeometry& g) { return ops::choose_cpu_conv_weight_gradient_algorithm(g); };
    EXPECT_EQ(choice(conv3x3(batch, 64, 64, 56, 56, 1, 1)), CpuConvAlgorithm::Winograd);     // 196 tiles
    EXPECT_EQ(choice(conv3x3(batch, 128, 128, 28, 28, 1, 1)), CpuConvAlgorithm::Winograd);   // 49 tiles
    EXPECT_EQ(choice(conv3x3(batch, 128, 32, 14, 14, 1, 1)), CpuConvAlgorithm::Winograd);    // 16, dU 147k
    EXPECT_EQ(choice(conv3x3(batch, 256, 256, 14, 14, 1, 1)), CpuConvAlgorithm::Im2colGemm);  // 16, dU 2.4M
    EXPECT_EQ(choice(conv3x3(batch, 128, 32, 7, 7, 1, 1)), CpuConvAlgorithm::Im2colGemm);    // 4 tiles
    EXPECT_EQ(choice(conv3x3(batch, 512, 512, 7, 7, 1, 1)), CpuConvAlgorithm::Im2colGemm);
    EXPECT_EQ(choice(conv3x3(batch, 3, 64, 224, 224, 1, 1)), CpuConvAlgorithm::Im2colGemm);  // 3 channels
  }
}

// Weights declared constant (tensor/constants.h) are transformed on the first call and reused:
// the same bits as transforming per call; a later write to them (the contract's violation)
// stays invisible while the owner lives; the entry lapses with its owner.
TEST(ConvWinograd, ConstantWeightsAreTransformedOnceWithTheSameBits) {
  const Conv2dGeometry g = conv3x3(2, 24, 40, 13, 11, 1, 1);
  Generator gen(21);
  const Tensor x = randn({g.batch, g.in_channels, g.in_h, g.in_w}, gen);
  Tensor w = randn({g.out_channels, g.in_channels, 3, 3}, gen);
  auto run = [&] {
    std::vector<float> y(g.batch * g.out_channels * g.out_h * g.out_w);
    ops::conv2d_forward_winograd<float>(g, x.data<float>(), w.data<float>(), nullptr, y.data());
    return y;
  };
  const std::vector<float> per_call = run();
  auto owner = std::make_shared<int>(0);
  declare_constant(w.data<float>(), owner);
  EXPECT_EQ(run(), per_call);  // transformed now
  EXPECT_EQ(run(), per_call);  // reused
  float* wp = w.data<float>();
  for (int64_t i = 0; i < w.numel(); ++i) wp[i] *= 2.0f;
  EXPECT_EQ(run(), per_call) << "the weights were transformed again: the cache is not used";
  owner.reset();
  const std::vector<float> doubled = run();
  for (size_t i = 0; i < doubled.size(); ++i) ASSERT_FLOAT_EQ(doubled[i], 2.0f * per_call[i]) << i;
  EXPECT_EQ(declared_constant_count(), 0);
}

TEST(ConvWinograd, SupportsOnly3x3Stride1Dense) {
  const Conv2dGeometry plain = conv3x3(1, 4, 4, 8, 8, 1, 1);
  EXPECT_TRUE(ops::cpu_conv_algorithm_supports(CpuConvAlgorithm::Winograd, plain));
  Conv2dGeometry strided = plain, dilated = plain, grouped = plain, wide = plain;
  strided.stride_h = 2;
  dilated.dilation_w = 2;
  grouped.groups = 2;
  wide.kernel_w = 5;
  for (const Conv2dGeometry& g : {strided, dilated, grouped, wide}) {
    EXPECT_FALSE(ops::cpu_conv_algorithm_supports(CpuConvAlgorithm::Winograd, g));
    std::vector<float> x(1024), w(1024), y(1024);
    EXPECT_THROW(ops::conv2d_forward_winograd<float>(g, x.data(), w.data(), nullptr, y.data()), Error);
  }
  EXPECT_EQ(ops::cpu_conv_algorithm_name(CpuConvAlgorithm::Winograd), "winograd");
}

}  // namespace
}  // namespace scalpel
