// The fused inference conv: every engine with an epilogue (activation, residual) against the
// reference conv followed by the residual add and the activation op, on the case table and on
// random shapes; nn::conv2d_fused's checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "autograd/autograd.h"
#include "conv/conv_cases.h"
#include "layers/ops/activations.h"
#include "layers/ops/conv2d.h"
#include "tensor/error.h"

namespace scalpel {
namespace {

using ops::CpuConvAlgorithm;

constexpr EpilogueActivation kActivations[] = {EpilogueActivation::none, EpilogueActivation::relu,
                                               EpilogueActivation::relu6, EpilogueActivation::silu,
                                               EpilogueActivation::hardswish};

// The unfused op that the epilogue replaces (layers/ops/activations.h).
Tensor unfused_activation(EpilogueActivation a, const Tensor& x) {
  switch (a) {
    case EpilogueActivation::none: return x;
    case EpilogueActivation::relu: return ops::activation_forward(ops::ActivationKind::ReLU, x);
    case EpilogueActivation::relu6: return ops::activation_forward(ops::ActivationKind::ReLU6, x);
    case EpilogueActivation::silu: return ops::activation_forward(ops::ActivationKind::SiLU, x);
    case EpilogueActivation::hardswish: return ops::activation_forward(ops::ActivationKind::HardSwish, x);
  }
  fail("unknown activation");
}

Tensor uniform_tensor(const Shape& shape, DType dtype, Generator& gen, double scale) {
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(gen.uniform(-scale, scale));
  });
  return t;
}

// max |a - b| <= tol * max(1, max |b|)
void expect_close(const Tensor& a, const Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const Tensor ad = a.to(DType::F64).contiguous(), bd = b.to(DType::F64).contiguous();
  const double* pa = ad.data<double>();
  const double* pb = bd.data<double>();
  double scale = 1, worst = 0;
  for (int64_t i = 0; i < bd.numel(); ++i) scale = std::max(scale, std::abs(pb[i]));
  for (int64_t i = 0; i < bd.numel(); ++i) {
    const double d = std::abs(pa[i] - pb[i]);
    worst = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(worst, d);
  }
  EXPECT_LE(worst, tol * scale) << what;
}

// Each engine that runs g, with each activation, with and without a residual, against the
// reference conv + residual add + activation op. Returns the number of engines run.
int compare_fused(const Conv2dGeometry& g, DType dtype, bool with_bias, uint64_t seed, double tol) {
  Generator gen(seed);
  const Shape xs{g.batch, g.in_channels, g.in_h, g.in_w}, ys{g.batch, g.out_channels, g.out_h, g.out_w};
  const Tensor x = uniform_tensor(xs, dtype, gen, 2.0);
  const Tensor w = uniform_tensor({g.out_channels, g.in_per_group(), g.kernel_h, g.kernel_w}, dtype, gen, 1.0);
  const Tensor b = uniform_tensor({g.out_channels}, dtype, gen, 2.0);
  const Tensor residual = uniform_tensor(ys, dtype, gen, 3.0);
  int ran = 0;
  dispatch_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* bias = with_bias ? b.data<T>() : nullptr;
    Tensor conv = Tensor::empty(ys, dtype);
    ops::conv2d_forward_reference(g, x.data<T>(), w.data<T>(), bias, conv.data<T>());
    for (CpuConvAlgorithm engine :
         {CpuConvAlgorithm::Reference, CpuConvAlgorithm::Im2colGemm, CpuConvAlgorithm::Depthwise}) {
      if (!ops::cpu_conv_algorithm_supports(engine, g)) continue;
      ++ran;
      for (EpilogueActivation act : kActivations)
        for (bool with_residual : {false, true}) {
          const Tensor expected = unfused_activation(act, with_residual ? ops::add(conv, residual) : conv);
          Tensor y = Tensor::full(ys, std::nan(""), dtype);  // a sentinel every element must overwrite
          const ops::ConvEpilogue<T> epilogue{act, with_residual ? residual.data<T>() : nullptr};
          ops::conv2d_forward<T>(engine, g, x.data<T>(), w.data<T>(), bias, y.data<T>(), epilogue);
          expect_close(y, expected, tol,
                       fmt::format("{} act {} residual {} x {} k {}x{} s {} groups {} ({})",
                                   ops::cpu_conv_algorithm_name(engine), static_cast<int>(act), with_residual,
                                   shape_str(xs), g.kernel_h, g.kernel_w, g.stride_h, g.groups, dtype_name(dtype)));
        }
    }
  });
  return ran;
}

TEST(ConvFused, CaseTableEveryEngineAndActivation) {
  for (const testing_conv::ConvCase& c : testing_conv::conv_cases()) {
    SCOPED_TRACE(c.name);
    const Conv2dGeometry g = ops::conv2d_geometry(c.x, c.weight(), c.options, c.name);
    EXPECT_GE(compare_fused(g, DType::F64, c.bias, 3, 1e-12), 2);
    compare_fused(g, DType::F32, c.bias, 4, 1e-5);
  }
}

// The model zoo's shapes at a small size: 1x1 expand/project with odd channel counts,
// strided 1x1 downsample, 3x3 s1/s2, depthwise 3x3/5x5 s1/s2 (narrow planes run flat, wide
// ones row by row), the 7x7 stem; batch 1 and 3 (batch >= threads runs samples in parallel).
TEST(ConvFused, ModelShapesThreaded) {
  using P = nn::Padding2d;
  const std::vector<testing_conv::ConvCase> cases{
      {"expand_1x1", {1, 24, 13, 11}, 144, 1, 1, testing_conv::conv_opts({1, 1}, P{})},
      {"project_1x1", {3, 40, 7, 9}, 24, 1, 1, testing_conv::conv_opts({1, 1}, P{})},
      {"downsample_1x1_s2", {3, 16, 9, 9}, 32, 1, 1, testing_conv::conv_opts({2, 2}, P{})},
      {"conv_3x3", {3, 16, 10, 9}, 20, 3, 3, testing_conv::conv_opts({1, 1}, P::symmetric(1))},
      {"conv_3x3_s2", {1, 16, 11, 10}, 20, 3, 3, testing_conv::conv_opts({2, 2}, P::symmetric(1))},
      {"dw_3x3", {3, 32, 10, 11}, 32, 3, 3, testing_conv::conv_opts({1, 1}, P::symmetric(1), 32)},
      {"dw_3x3_wide_rows", {1, 8, 5, 45}, 8, 3, 3, testing_conv::conv_opts({1, 1}, P::symmetric(1), 8)},
      {"dw_5x5_s2", {1, 24, 13, 13}, 24, 5, 5, testing_conv::conv_opts({2, 2}, P::symmetric(2), 24)},
      {"stem_7x7_s2", {3, 3, 21, 19}, 16, 7, 7, testing_conv::conv_opts({2, 2}, P::symmetric(3))},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    compare_fused(ops::conv2d_geometry(c.x, c.weight(), c.options, c.name), DType::F32, true, 5, 1e-5);
  }
}

// g's forward with bias, ReLU and a residual, run on the whole batch and sample by sample
// (`one`: g at batch 1): the samples-side-by-side paths must give each sample its own bits.
struct BatchedAndAlone {
  Tensor batched, alone;
};
// Random input, weight, bias and residual for a side-by-side check of case c (geometry g).
struct SideBySideInputs {
  Tensor x, w, b, residual;
};
SideBySideInputs side_by_side_inputs(const testing_conv::ConvCase& c, const Conv2dGeometry& g, uint64_t seed) {
  Generator gen(seed);
  SideBySideInputs in;
  in.x = uniform_tensor(c.x, DType::F32, gen, 2.0);
  in.w = uniform_tensor(c.weight(), DType::F32, gen, 1.0);
  in.b = uniform_tensor({g.out_channels}, DType::F32, gen, 1.0);
  in.residual = uniform_tensor({g.batch, g.out_channels, g.out_h, g.out_w}, DType::F32, gen, 1.0);
  return in;
}

BatchedAndAlone forward_batched_and_alone(const Conv2dGeometry& g, const Conv2dGeometry& one, const Tensor& x,
                                          const Tensor& w, const Tensor& b, const Tensor& residual) {
  const Shape ys{g.batch, g.out_channels, g.out_h, g.out_w};
  const int64_t x_size = g.in_channels * g.in_h * g.in_w, y_size = g.out_channels * g.out_h * g.out_w;
  BatchedAndAlone r{Tensor::empty(ys), Tensor::empty(ys)};
  ops::conv2d_forward<float>(CpuConvAlgorithm::Im2colGemm, g, x.data<float>(), w.data<float>(), b.data<float>(),
                             r.batched.data<float>(), {EpilogueActivation::relu, residual.data<float>()});
  for (int64_t n = 0; n < g.batch; ++n)
    ops::conv2d_forward<float>(CpuConvAlgorithm::Im2colGemm, one, x.data<float>() + n * x_size, w.data<float>(),
                               b.data<float>(), r.alone.data<float>() + n * y_size,
                               {EpilogueActivation::relu, residual.data<float>() + n * y_size});
  return r;
}

// A pointwise conv on a small plane runs its samples side by side in one GEMM, forward and
// input gradient (layers/ops/conv2d_im2col.cpp): each sample must still get the bits it gets
// alone, epilogue included, grouped or not.
TEST(ConvFused, PointwiseSamplesSideBySideKeepEachSamplesBits) {
  using P = nn::Padding2d;
  for (int64_t groups : {1, 2}) {
    // 512 x 512 weights per group on 3x5: large enough for the side-by-side path; small ones
    // on 7x7, a plane that fills a sample's last tile with 1 column of 16.
    for (const testing_conv::ConvCase& c :
         {testing_conv::ConvCase{"pointwise_3x5", {3, 512 * groups, 3, 5}, 512 * groups, 1, 1,
                                 testing_conv::conv_opts({1, 1}, P{}, groups)},
          testing_conv::ConvCase{"pointwise_7x7", {3, 24 * groups, 7, 7}, 40 * groups, 1, 1,
                                 testing_conv::conv_opts({1, 1}, P{}, groups)}}) {
      const Conv2dGeometry g = ops::conv2d_geometry(c.x, c.weight(), c.options, c.name);
      ASSERT_TRUE(ops::im2col_runs_samples_side_by_side(g)) << c.name;
      Conv2dGeometry one = g;
      one.batch = 1;
      const auto [x, w, b, residual] = side_by_side_inputs(c, g, 12);
      const int64_t x_size = g.in_channels * g.in_h * g.in_w, y_size = g.out_channels * g.out_h * g.out_w;
      const auto [batched, alone] = forward_batched_and_alone(g, one, x, w, b, residual);
      EXPECT_EQ(std::memcmp(batched.data<float>(), alone.data<float>(), batched.numel() * sizeof(float)), 0)
          << "forward, " << c.name << ", groups " << groups;

      // The input gradient, W^T times each sample's gy, runs side by side too.
      Tensor gx_batched = Tensor::empty(c.x), gx_alone = Tensor::empty(c.x);
      ops::conv2d_backward_input<float>(CpuConvAlgorithm::Im2colGemm, g, residual.data<float>(), w.data<float>(),
                                        gx_batched.data<float>());
      for (int64_t n = 0; n < g.batch; ++n)
        ops::conv2d_backward_input<float>(CpuConvAlgorithm::Im2colGemm, one, residual.data<float>() + n * y_size,
                                          w.data<float>(), gx_alone.data<float>() + n * x_size);
      EXPECT_EQ(std::memcmp(gx_batched.data<float>(), gx_alone.data<float>(), gx_batched.numel() * sizeof(float)), 0)
          << "input gradient, " << c.name << ", groups " << groups;
    }
  }
}

// A 3x3 conv through im2col on a 7x7 plane with large weights puts its samples side by side in
// one GEMM (im2col_samples_per_gemm): each sample gets the bits it gets alone, epilogue included.
TEST(ConvFused, Im2colSamplesSideBySideKeepEachSamplesBits) {
  const testing_conv::ConvCase c{"conv3x3_7x7", {3, 64, 7, 7}, 512, 3, 3,
                                 testing_conv::conv_opts({1, 1}, nn::Padding2d::symmetric(1))};
  const Conv2dGeometry g = ops::conv2d_geometry(c.x, c.weight(), c.options, c.name);
  ASSERT_GT(ops::im2col_samples_per_gemm(g), 1);
  Conv2dGeometry one = g;
  one.batch = 1;
  ASSERT_EQ(ops::im2col_samples_per_gemm(one), 1);
  const auto [x, w, b, residual] = side_by_side_inputs(c, g, 13);
  const Shape ys{g.batch, g.out_channels, g.out_h, g.out_w};
  const auto [batched, alone] = forward_batched_and_alone(g, one, x, w, b, residual);
  EXPECT_EQ(std::memcmp(batched.data<float>(), alone.data<float>(), batched.numel() * sizeof(float)), 0);
  Tensor reference = Tensor::empty(ys);
  ops::conv2d_forward_reference<float>(g, x.data<float>(), w.data<float>(), b.data<float>(), reference.data<float>());
  float worst = 0;
  for (int64_t i = 0; i < reference.numel(); ++i) {
    const float want = std::max(reference.data<float>()[i] + residual.data<float>()[i], 0.0f);
    worst = std::max(worst, std::abs(batched.data<float>()[i] - want));
  }
  EXPECT_LE(worst, 1e-3f);
}

// Stride-1 convs with few output channels run as one GEMM per tap on the padded input: against
// the reference with every activation and a residual, on DenseNet's shape, asymmetric and
// wide padding, a 5x3 kernel and no padding.
TEST(ConvFused, ShiftedProductsMatchTheReference) {
  using P = nn::Padding2d;
  const std::vector<testing_conv::ConvCase> cases{
      {"densenet_3x3", {3, 24, 17, 16}, 32, 3, 3, testing_conv::conv_opts({1, 1}, P::symmetric(1))},
      {"asymmetric_pad", {2, 5, 7, 6}, 4, 3, 3, testing_conv::conv_opts({1, 1}, P{1, 2, 0, 1})},
      {"pad_wider_than_kernel", {1, 3, 4, 5}, 2, 2, 2, testing_conv::conv_opts({1, 1}, P::symmetric(3))},
      {"rect_5x3_unpadded", {2, 6, 9, 7}, 7, 5, 3, testing_conv::conv_opts({1, 1}, P{})},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Conv2dGeometry g = ops::conv2d_geometry(c.x, c.weight(), c.options, c.name);
    ASSERT_TRUE(ops::im2col_uses_shifted_products(g));
    compare_fused(g, DType::F32, true, 6, 1e-5);
    compare_fused(g, DType::F64, false, 7, 1e-12);
  }
  // A padded input past im2col's scratch budget (2^21 values per sample) keeps im2col's bounded blocks.
  const testing_conv::ConvCase large{"large_plane", {1, 64, 300, 300}, 32, 3, 3,
                                     testing_conv::conv_opts({1, 1}, P::symmetric(1))};
  EXPECT_FALSE(ops::im2col_uses_shifted_products(ops::conv2d_geometry(large.x, large.weight(), large.options, "")));
}

TEST(ConvFused, FunctionalMatchesUnfusedAndChecksItsInputs) {
  Generator gen(9);
  const nn::Conv2dOptions options = testing_conv::conv_opts({1, 1}, nn::Padding2d::symmetric(1));
  const Tensor x = uniform_tensor({2, 3, 6, 5}, DType::F32, gen, 1.0);
  const Tensor w = uniform_tensor({4, 3, 3, 3}, DType::F32, gen, 1.0);
  const Tensor b = uniform_tensor({4}, DType::F32, gen, 1.0);
  const Tensor r = uniform_tensor({2, 4, 6, 5}, DType::F32, gen, 1.0);
  NoGradGuard no_grad;
  const Tensor expected = unfused_activation(EpilogueActivation::relu6, ops::add(nn::conv2d(x, w, b, options), r));
  expect_close(nn::conv2d_fused(x, w, b, options, EpilogueActivation::relu6, r), expected, 1e-5, "conv2d_fused");

  try {
    nn::conv2d_fused(x, w, b, options, EpilogueActivation::relu, uniform_tensor({2, 4, 6, 6}, DType::F32, gen, 1.0),
                     "block.conv3");
    ADD_FAILURE() << "a residual of the wrong shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block.conv3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 4, 6, 6]"), std::string::npos) << e.what();
  }
}

// A BatchNorm + ReLU folded into a 1x1 conv's input reads (nn::ConvInputTransform), or a
// squeeze-excite's per-sample scales: the conv of relu(x * scale + shift) or of x * scale[n], on x read in place from a channel slice of a wider buffer (as
// DenseNet's concatenation), per sample and with samples side by side (512 x 512 weights on
// 7x7), one and two groups, float and double, with an output activation on top.
TEST(ConvFused, InputTransformIsTheConvOfTheTransformedInput) {
  struct Case {
    int64_t batch, channels, buffer_channels, out_channels, size, groups;
  };
  const Case cases[] = {{3, 24, 40, 16, 9, 1}, {2, 24, 24, 16, 5, 2}, {1, 12, 20, 8, 6, 1}, {2, 512, 544, 512, 7, 1}};
  Generator gen(12);
  NoGradGuard no_grad;
  for (const Case& c : cases)
    for (DType dtype : {DType::F32, DType::F64}) {
      const Tensor buffer = uniform_tensor({c.batch, c.buffer_channels, c.size, c.size}, dtype, gen, 1.0);
      const Tensor x = buffer.slice(1, 0, c.channels);  // samples further apart than their values
      const Tensor w = uniform_tensor({c.out_channels, c.channels / c.groups, 1, 1}, dtype, gen, 0.2);
      const Tensor b = uniform_tensor({c.out_channels}, dtype, gen, 1.0);
      nn::Conv2dOptions options;
      options.groups = c.groups;
      const Conv2dGeometry g = ops::conv2d_geometry(x.shape(), w.shape(), options, "");
      // A BatchNorm + ReLU per channel, and a squeeze-excite's scales per sample and channel.
      const nn::ConvInputTransform transforms[] = {
          {uniform_tensor({c.channels}, dtype, gen, 2.0), uniform_tensor({c.channels}, dtype, gen, 1.0),
           EpilogueActivation::relu},
          {uniform_tensor({c.batch, c.channels, 1, 1}, dtype, gen, 1.0), Tensor(), EpilogueActivation::none}};
      for (const nn::ConvInputTransform& t : transforms) {
        const bool per_sample = t.scale.dim() == 4;
        // The transformed input, in float64 from the same values.
        Tensor transformed = x.to(DType::F64).clone();  // never x itself: x is read below
        const Tensor s64 = t.scale.to(DType::F64);
        const Tensor t64 = t.shift.defined() ? t.shift.to(DType::F64) : Tensor::zeros({c.channels}, DType::F64);
        double* v = transformed.data<double>();
        const int64_t plane = c.size * c.size;
        for (int64_t i = 0; i < transformed.numel(); ++i) {
          const int64_t ch = i / plane % c.channels, n = i / plane / c.channels;
          v[i] = v[i] * s64.data<double>()[per_sample ? n * c.channels + ch : ch] + t64.data<double>()[ch];
          if (t.activation == EpilogueActivation::relu) v[i] = std::max(0.0, v[i]);
        }
        const Tensor expected = unfused_activation(
            EpilogueActivation::relu6, nn::conv2d(transformed, w.to(DType::F64), b.to(DType::F64), options));
        const Tensor got =
            nn::conv2d_fused(x, w, b, options, EpilogueActivation::relu6, Tensor(), "dense.conv1", t);
        const std::string what = fmt::format("{} {} side_by_side={} per_sample={}", shape_str(x.shape()),
                                             dtype_name(dtype), ops::im2col_runs_samples_side_by_side(g), per_sample);
        expect_close(got, expected, dtype == DType::F32 ? 1e-5 : 1e-12, what);
      }
    }
  EXPECT_TRUE(ops::im2col_runs_samples_side_by_side(
      ops::conv2d_geometry({2, 512, 7, 7}, {512, 512, 1, 1}, nn::Conv2dOptions{}, "")));  // the last case's path

  // Only a pointwise conv takes one; the error names the layer.
  const Tensor x = uniform_tensor({1, 4, 5, 5}, DType::F32, gen, 1.0);
  const Tensor w3 = uniform_tensor({2, 4, 3, 3}, DType::F32, gen, 1.0);
  try {
    nn::conv2d_fused(x, w3, Tensor(), nn::Conv2dOptions{}, EpilogueActivation::none, Tensor(), "dense.conv2",
                     {Tensor(), uniform_tensor({4}, DType::F32, gen, 1.0), EpilogueActivation::relu});
    ADD_FAILURE() << "an input transform on a 3x3 conv was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dense.conv2"), std::string::npos) << e.what();
  }
  const Tensor w1 = uniform_tensor({2, 4, 1, 1}, DType::F32, gen, 1.0);
  EXPECT_THROW(nn::conv2d_fused(x, w1, Tensor(), nn::Conv2dOptions{}, EpilogueActivation::none, Tensor(), "conv",
                                {uniform_tensor({3}, DType::F32, gen, 1.0), Tensor(), EpilogueActivation::none}),
               Error);  // scale of 3 channels for 4
}

TEST(ConvFused, RefusesToRecordGradients) {
  Generator gen(10);
  Tensor w = uniform_tensor({4, 3, 1, 1}, DType::F32, gen, 1.0);
  w.set_requires_grad(true);
  const Tensor x = uniform_tensor({1, 3, 4, 4}, DType::F32, gen, 1.0);
  EXPECT_THROW(nn::conv2d_fused(x, w, Tensor(), nn::Conv2dOptions{}, EpilogueActivation::relu, Tensor()), Error);
  NoGradGuard no_grad;  // nothing recorded: allowed
  EXPECT_EQ(nn::conv2d_fused(x, w, Tensor(), nn::Conv2dOptions{}, EpilogueActivation::relu, Tensor()).shape(),
            (Shape{1, 4, 4, 4}));
}

}  // namespace
}  // namespace scalpel
