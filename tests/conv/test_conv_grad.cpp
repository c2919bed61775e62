// Gradient checks (float64, central differences) of nn::conv2d for input, weight and bias in
// every configuration of the case table, with the reference engine and the automatic choice
// (the other engines are compared with the reference in test_conv_engines.cpp); then
// conv_transpose2d (also against conv2d as its adjoint) and linear. Convolutions are linear in
// each input, so there are no kinks to skip.
#include <gtest/gtest.h>

#include <algorithm>

#include "autograd/gradcheck.h"
#include "conv/conv_cases.h"
#include "layers/ops/conv2d.h"
#include "layers/ops/conv_transpose2d.h"

namespace scalpel {
namespace {

using ops::CpuConvAlgorithm;
using testing_conv::ConvCase;

Tensor random_leaf(const Shape& shape, Generator& gen) {
  Tensor t = randn(shape, gen, DType::F64);
  t.set_requires_grad(true);
  return t;
}

GradcheckOptions linear_op() {
  GradcheckOptions o;
  o.skip_kinks = false;
  return o;
}

TEST(ConvGrad, Conv2dEveryCase) {
  for (const ConvCase& c : testing_conv::conv_cases()) {
    const Conv2dGeometry g = ops::conv2d_geometry(c.x, c.weight(), c.options, c.name);
    Generator gen(11);
    std::vector<Tensor> inputs{random_leaf(c.x, gen), random_leaf(c.weight(), gen)};
    if (c.bias) inputs.push_back(random_leaf({c.out_channels}, gen));
    auto fn = [&](const std::vector<Tensor>& in) {
      return nn::conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), c.options, c.name);
    };
    for (CpuConvAlgorithm engine : {CpuConvAlgorithm::Reference, ops::choose_cpu_conv_algorithm(g)}) {
      testing_conv::EngineGuard guard(engine);
      const GradcheckResult r = gradcheck(fn, inputs, linear_op());
      EXPECT_TRUE(r.ok) << c.name << " with " << ops::cpu_conv_algorithm_name(engine) << ": " << r.message;
    }
  }
}

// Only the gradients that are asked for are computed; the others stay undefined.
TEST(ConvGrad, Conv2dSkipsUnrequestedGradients) {
  const ConvCase c = testing_conv::conv_cases().front();
  Generator gen(3);
  Tensor x = randn(c.x, gen, DType::F64);  // no requires_grad: a network's input image
  Tensor w = random_leaf(c.weight(), gen), b = random_leaf({c.out_channels}, gen);
  Tensor y = nn::conv2d(x, w, b, c.options);
  const std::vector<Tensor> grads = grad(sum(y), {w, b});
  EXPECT_EQ(grads[0].shape(), c.weight());
  EXPECT_EQ(grads[1].shape(), Shape{c.out_channels});
  EXPECT_FALSE(y.grad_fn()->needs_input_grad(0));
}

struct TransposeCase {
  std::string name;
  Shape x;  // [N, C_in, H, W]
  int64_t out_channels, kernel;
  nn::ConvTranspose2dOptions options;
  bool bias = true;
  Shape weight() const { return {x[1], out_channels / options.groups, kernel, kernel}; }
};

nn::ConvTranspose2dOptions t_opts(int64_t stride, int64_t padding, int64_t output_padding,
                                  int64_t dilation = 1, int64_t groups = 1) {
  nn::ConvTranspose2dOptions o;
  o.stride = {stride, stride};
  o.padding = {padding, padding};
  o.output_padding = {output_padding, output_padding};
  o.dilation = {dilation, dilation};
  o.groups = groups;
  return o;
}

std::vector<TransposeCase> transpose_cases() {
  return {
      {"k2_s2_unet", {2, 4, 3, 4}, 3, 2, t_opts(2, 0, 0)},
      {"k3_s2_p1_outpad1", {2, 3, 4, 5}, 4, 3, t_opts(2, 1, 1)},
      {"groups2", {2, 4, 3, 3}, 6, 3, t_opts(2, 1, 0, 1, 2)},
      {"dilation2_nobias", {1, 3, 4, 3}, 4, 3, t_opts(1, 0, 0, 2), false},
      {"outpad_below_dilation", {1, 2, 3, 4}, 2, 3, t_opts(1, 1, 1, 2)},
      {"depthwise_s3", {2, 3, 3, 2}, 3, 3, t_opts(3, 1, 2, 1, 3)},
  };
}

TEST(ConvGrad, ConvTranspose2dEveryCase) {
  for (const TransposeCase& c : transpose_cases()) {
    const Conv2dGeometry g = ops::conv_transpose2d_geometry(c.x, c.weight(), c.options, c.name);
    Generator gen(5);
    std::vector<Tensor> inputs{random_leaf(c.x, gen), random_leaf(c.weight(), gen)};
    if (c.bias) inputs.push_back(random_leaf({c.out_channels}, gen));
    auto fn = [&](const std::vector<Tensor>& in) {
      return nn::conv_transpose2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), c.options, c.name);
    };
    for (CpuConvAlgorithm engine : {CpuConvAlgorithm::Reference, ops::choose_cpu_conv_algorithm(g)}) {
      testing_conv::EngineGuard guard(engine);
      const GradcheckResult r = gradcheck(fn, inputs, linear_op());
      EXPECT_TRUE(r.ok) << c.name << " with " << ops::cpu_conv_algorithm_name(engine) << ": " << r.message;
    }
  }
}

// <conv2d(u), v> == <u, conv_transpose2d(v)> with the same weight: the transpose really is
// the adjoint (independently of the kernels' own backward code).
TEST(ConvGrad, ConvTransposeIsAdjointOfConv) {
  for (const TransposeCase& c : transpose_cases()) {
    const Conv2dGeometry g = ops::conv_transpose2d_geometry(c.x, c.weight(), c.options, c.name);
    Generator gen(9);
    const Tensor v = randn(c.x, gen, DType::F64);
    const Tensor w = randn(c.weight(), gen, DType::F64);
    const Tensor u = randn({g.batch, g.in_channels, g.in_h, g.in_w}, gen, DType::F64);
    nn::Conv2dOptions co;
    co.stride = c.options.stride;
    // Bottom/right padding such that the conv of u has exactly v's size: output_padding
    // pixels are dropped by the stride when output_padding < stride, else cropped.
    const auto& p = c.options.padding;
    const auto& op = c.options.output_padding;
    co.padding = {p[0], op[0] < co.stride[0] ? p[0] : p[0] - op[0], p[1],
                  op[1] < co.stride[1] ? p[1] : p[1] - op[1]};
    co.dilation = c.options.dilation;
    co.groups = c.options.groups;
    const Tensor conv_u = nn::conv2d(u, w, Tensor(), co);
    ASSERT_EQ(conv_u.shape(), v.shape()) << c.name;
    const double lhs = sum(mul(conv_u, v)).item();
    const double rhs = sum(mul(u, nn::conv_transpose2d(v, w, Tensor(), c.options))).item();
    EXPECT_NEAR(lhs, rhs, 1e-10 * std::max(1.0, std::abs(lhs))) << c.name;
  }
}

TEST(ConvGrad, Linear) {
  Generator gen(4);
  for (bool bias : {true, false}) {
    for (const Shape& xs : {Shape{3, 5}, Shape{2, 3, 5}, Shape{5}}) {
      std::vector<Tensor> inputs{random_leaf(xs, gen), random_leaf({4, 5}, gen)};
      if (bias) inputs.push_back(random_leaf({4}, gen));
      const GradcheckResult r = gradcheck(
          [](const std::vector<Tensor>& in) {
            return nn::linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor());
          },
          inputs, linear_op());
      EXPECT_TRUE(r.ok) << shape_str(xs) << " bias " << bias << ": " << r.message;
    }
  }
}

// Data-parallel training gives one process's bits only if linear's weight and bias gradients
// of a batch are the sums of its halves' (the ranks' shards), bit for bit (float32).
TEST(ConvGrad, LinearGradientsOfABatchAreItsShardsAdded) {
  Generator gen(6);
  const Tensor x = randn({8, 64}, gen), w = randn({10, 64}, gen), b = randn({10}, gen), coef = randn({8, 10}, gen);
  // The weight and bias gradients of sum(linear(x) * coef) over rows [begin, end).
  const auto grads = [&](int64_t begin, int64_t end) {
    Tensor wl = w.clone().set_requires_grad(true), bl = b.clone().set_requires_grad(true);
    backward(sum(mul(nn::linear(x.slice(0, begin, end).contiguous(), wl, bl), coef.slice(0, begin, end).contiguous())));
    return std::pair{wl.grad().to_vector(), bl.grad().to_vector()};
  };
  const auto added = [](std::vector<double> a, const std::vector<double>& c) {
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(static_cast<float>(a[i]) + static_cast<float>(c[i]));
    return a;
  };
  const auto [gw, gb] = grads(0, 8);
  const auto [gw0, gb0] = grads(0, 4);
  const auto [gw1, gb1] = grads(4, 8);
  EXPECT_TRUE(gw == added(gw0, gw1));
  EXPECT_TRUE(gb == added(gb0, gb1));
}

// A row's float32 outputs are the same bits in a batch of any size from 2 on (a few rows run as
// y^T = W x^T, many as x W^T; a single row is a matrix-vector product with its own order), with
// and without bias. (Double goes through Eigen, whose order depends on the batch size.)
TEST(ConvGrad, LinearRowsGiveTheSameBitsAtEveryBatchSize) {
  Generator gen(8);
  const Tensor x = randn({300, 700}, gen), w = randn({90, 700}, gen), b = randn({90}, gen);
  for (const Tensor& bias : {b, Tensor()}) {
    const std::vector<double> all = nn::linear(x, w, bias).to_vector();
    for (int64_t rows : {2, 7, 255, 256}) {
      const std::vector<double> some = nn::linear(x.slice(0, 0, rows).contiguous(), w, bias).to_vector();
      EXPECT_TRUE(std::equal(some.begin(), some.end(), all.begin()))
          << rows << " rows" << (bias.defined() ? " with" : " without") << " bias";
    }
  }
}

}  // namespace
}  // namespace scalpel
