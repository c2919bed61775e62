// Activations and softmax: hand values, PyTorch's gradients at the kinks, gradient checks,
// PyTorch parity fixtures, and Activation::parse.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "layer_ops/op_cases.h"
#include "layer_ops/op_fixture.h"
#include "layers/functional.h"
#include "layers/ops/activations.h"

namespace scalpel {
namespace {

using testing::expect_gradcheck;
using testing::expect_parity;
using testing::random_leaf;
using testing::vec;

void expect_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-6) {
  const std::vector<double> got = t.to_vector();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], tol) << "element " << i;
}

// Gradient of sum(f(x)) at x.
Tensor grad_of_sum(const std::function<Tensor(const Tensor&)>& f, const std::vector<double>& x_values) {
  Tensor x = vec(x_values);
  x.set_requires_grad(true);
  return grad(sum(f(x)), {x})[0];
}

TEST(Activations, HandValues) {
  expect_values(nn::relu(vec({-1, 0, 2})), {0, 0, 2});
  expect_values(nn::relu6(vec({-1, 3, 7})), {0, 3, 6});
  expect_values(nn::leaky_relu(vec({-2, 3}), 0.1), {-0.2, 3});
  expect_values(nn::sigmoid(vec({0, -1000, 1000})), {0.5, 0, 1});
  expect_values(nn::silu(vec({1, -1000})), {0.7310585786300049, 0});
  expect_values(nn::tanh(vec({0.5})), {0.46211715726000974});
  expect_values(nn::hardswish(vec({-4, 1, 4})), {0, 4.0 / 6, 4});
  expect_values(nn::hardsigmoid(vec({-4, 0, 1.5, 4})), {0, 0.5, 0.75, 1});
  expect_values(nn::gelu(vec({1, -1})), {0.8413447460685429, -0.15865525393145707});
  expect_values(nn::gelu_tanh(vec({1})), {0.8411919906082768});
}

TEST(Activations, Float32MatchesFloat64) {
  Tensor x64 = random_leaf({3, 5, 7}, 11, -6, 6).detach();
  Tensor x32 = x64.to(DType::F32);
  for (const char* name : {"relu", "relu6", "leaky_relu:0.2", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                           "gelu", "gelu_tanh"}) {
    nn::Activation act = nn::Activation::parse(name);
    Tensor y32 = act(x32), y64 = act(x64);
    EXPECT_EQ(y32.dtype(), DType::F32) << name;
    EXPECT_LT(ops::max_abs_diff(y32.to(DType::F64), y64), 1e-5) << name;
  }
}

TEST(Activations, GradientsAtKinksFollowPyTorch) {
  // relu'(0) = 0; relu6' = 0 at 0 and 6; hardswish' = -0.5 at -3 and 1.5 at 3; hardsigmoid' = 0 at +-3.
  expect_values(grad_of_sum(nn::relu, {-3, 3, 0, 6}), {0, 1, 0, 1});
  expect_values(grad_of_sum(nn::relu6, {-3, 3, 0, 6}), {0, 1, 0, 0});
  expect_values(grad_of_sum(nn::hardswish, {-3, 3, 0, 6}), {-0.5, 1.5, 0.5, 1});
  expect_values(grad_of_sum(nn::hardsigmoid, {-3, 3, 0, 6}), {0, 0, 1.0 / 6, 0});
  expect_values(grad_of_sum([](const Tensor& x) { return nn::leaky_relu(x, 0.1); }, {-1, 0, 2}), {0.1, 0.1, 1});
  // Where the derivative is 0 the gradient is 0 even for an infinite upstream gradient.
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(ops::activation_backward(ops::ActivationKind::ReLU, vec({inf, inf}), vec({-1, 1})).to_vector(),
            (std::vector<double>{0, inf}));
  expect_values(ops::activation_backward(ops::ActivationKind::HardSigmoid, vec({inf}), vec({4})), {0});
}

TEST(Activations, Gradcheck) {
  for (const char* name : {"relu", "relu6", "leaky_relu:0.3", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                           "gelu", "gelu_tanh"}) {
    SCOPED_TRACE(name);
    nn::Activation act = nn::Activation::parse(name);
    // Odd sizes; the range covers the kinks at 0, +-3 and 6 (skipped by the checker when hit).
    expect_gradcheck([&](const std::vector<Tensor>& in) { return act(in[0]); }, {random_leaf({3, 5, 7}, 7, -7, 7)});
  }
}

TEST(Activations, NonContiguousInput) {
  Tensor x = random_leaf({4, 6}, 3).detach();
  Tensor xt = x.transpose(0, 1);
  EXPECT_EQ(ops::max_abs_diff(nn::silu(xt), nn::silu(xt.contiguous())), 0.0);
}

struct ActivationFixture {
  const char* case_name;
  std::function<Tensor(const Tensor&)> fn;
};

TEST(Activations, PyTorchParity) {
  const ActivationFixture cases[] = {
      {"relu", nn::relu},
      {"relu6", nn::relu6},
      {"leaky_relu", [](const Tensor& x) { return nn::leaky_relu(x, 0.1); }},
      {"silu", nn::silu},
      {"sigmoid", nn::sigmoid},
      {"tanh", nn::tanh},
      {"hardswish", nn::hardswish},
      {"hardsigmoid", nn::hardsigmoid},
      {"gelu", nn::gelu},
      {"gelu_tanh", nn::gelu_tanh},
  };
  for (const ActivationFixture& c : cases)
    for (DType dtype : {DType::F32, DType::F64}) {
      // PyTorch's hardsigmoid backward multiplies by 1/6 rounded to float32, even in float64.
      std::optional<testing::ParityTolerance> tol;
      if (dtype == DType::F64 && std::string(c.case_name) == "hardsigmoid") tol = testing::ParityTolerance{1e-9, 1e-7};
      expect_parity(c.case_name, dtype, [&](const auto&, const auto& in, DType) { return c.fn(in.at("x")); }, tol);
    }
}

TEST(Activation, Parse) {
  EXPECT_EQ(nn::Activation::parse("relu").kind, "relu");
  EXPECT_EQ(nn::Activation::parse("swish").kind, "silu");
  EXPECT_EQ(nn::Activation::parse("identity").str(), "identity");
  nn::Activation leaky = nn::Activation::parse("leaky_relu:0.2");
  EXPECT_EQ(leaky.kind, "leaky_relu");
  EXPECT_DOUBLE_EQ(leaky.slope, 0.2);
  EXPECT_EQ(nn::Activation::parse(leaky.str()).slope, 0.2);
  EXPECT_DOUBLE_EQ(nn::Activation::parse("leaky_relu").slope, 0.01);
  expect_values(leaky(vec({-1, 1})), {-0.2, 1});
  Tensor x = vec({-1, 2});
  EXPECT_TRUE(nn::Activation::parse("identity")(x).shares_storage(x));
}

TEST(Activation, ParseErrorsNameTheText) {
  for (const char* bad : {"relu7", "leaky_relu:", "leaky_relu:abc", "leaky_relu:0.1x", "leaky_relu0.1", ""}) {
    try {
      nn::Activation::parse(bad);
      ADD_FAILURE() << "no error for '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad), std::string::npos) << e.what();
    }
  }
}

// ---------------------------------------------------------------- softmax

TEST(Softmax, HandValues) {
  Tensor x = Tensor::from_vector({1, 2, 3, 0, 0, 0}, {2, 3}, DType::F64);
  const double z = std::exp(1) + std::exp(2) + std::exp(3);
  expect_values(nn::softmax(x, 1), {std::exp(1) / z, std::exp(2) / z, std::exp(3) / z, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  expect_values(nn::log_softmax(x, -1), {1 - std::log(z), 2 - std::log(z), 3 - std::log(z), -std::log(3.0),
                                         -std::log(3.0), -std::log(3.0)});
  // Axis 0: columns.
  expect_values(nn::softmax(x, 0), {std::exp(1) / (1 + std::exp(1)), std::exp(2) / (1 + std::exp(2)),
                                    std::exp(3) / (1 + std::exp(3)), 1 / (1 + std::exp(1)), 1 / (1 + std::exp(2)),
                                    1 / (1 + std::exp(3))});
}

TEST(Softmax, LargeLogitsDoNotOverflowFloat32) {
  Tensor x = Tensor::from_vector({1000, 1001, 1002}, {1, 3}, DType::F32);
  const std::vector<double> p = nn::softmax(x, 1).to_vector();
  for (double v : p) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(p[2], 0.66524096, 1e-6);
  EXPECT_NEAR(nn::log_softmax(x, 1).to_vector()[0], -2.40760596, 1e-5);
}

TEST(Softmax, Gradcheck) {
  for (int64_t axis : {0, 1, 2, -1}) {
    SCOPED_TRACE(axis);
    expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::softmax(in[0], axis); },
                     {random_leaf({2, 3, 5}, 5)});
    expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::log_softmax(in[0], axis); },
                     {random_leaf({2, 3, 5}, 6)});
  }
}

TEST(Softmax, PyTorchParity) {
  for (const char* suffix : {"2d", "4d", "large"})
    for (DType dtype : {DType::F32, DType::F64}) {
      expect_parity(std::string("softmax_") + suffix, dtype,
                    [](const auto&, const auto& in, DType) { return nn::softmax(in.at("x"), 1); });
      expect_parity(std::string("log_softmax_") + suffix, dtype,
                    [](const auto&, const auto& in, DType) { return nn::log_softmax(in.at("x"), 1); });
    }
}

TEST(Softmax, PyTorchParityOtherAxes) {
  for (DType dtype : {DType::F32, DType::F64}) {
    expect_parity("ops_extra/softmax_4d_dim3", dtype,
                  [](const auto&, const auto& in, DType) { return nn::softmax(in.at("x"), 3); });
    expect_parity("ops_extra/log_softmax_4d_dim0", dtype,
                  [](const auto&, const auto& in, DType) { return nn::log_softmax(in.at("x"), 0); });
  }
}

TEST(Softmax, BadAxis) { EXPECT_THROW(nn::softmax(Tensor::zeros({2, 3}), 2), Error); }

}  // namespace
}  // namespace scalpel

// ---- device rows (layer_ops/op_cases.h): forward and backward against the CPU on every backend
namespace scalpel::testing_ops {
namespace {
using namespace op_cases_detail;

OpCase unary(const std::string& name, Tensor (*fn)(const Tensor&)) {
  // Spread over [-8, 8] so every piece of relu6/hardswish/hardsigmoid is hit.
  return {name, [](Generator& gen) { return Inputs{ops::mul_scalar(randn({3, 5, 7}, gen), 4.0)}; }, {true},
          [fn](const Inputs& in) { return fn(in[0]); }};
}

SCALPEL_OP_CASES(activations) {
  std::vector<OpCase> c;
  c.push_back(unary("relu", nn::relu));
  c.push_back(unary("relu6", nn::relu6));
  c.push_back(unary("silu", nn::silu));
  c.push_back(unary("sigmoid", nn::sigmoid));
  c.push_back(unary("tanh", nn::tanh));
  c.push_back(unary("hardswish", nn::hardswish));
  c.push_back(unary("hardsigmoid", nn::hardsigmoid));
  c.push_back(unary("gelu", nn::gelu));
  c.push_back({"leaky_relu", [](Generator& gen) { return Inputs{ops::mul_scalar(randn({3, 5, 7}, gen), 4.0)}; },
               {true},
               [](const Inputs& in) { return nn::leaky_relu(in[0], 0.1); }});
  return c;
}

SCALPEL_OP_CASES(softmax) {
  std::vector<OpCase> c;
  for (int64_t axis : {-1, 1}) {
    const std::string suffix = axis < 0 ? "_last_axis" : "_axis1";
    auto inputs = [](Generator& gen) { return Inputs{ops::mul_scalar(randn({2, 5, 3, 4}, gen), 3.0)}; };
    c.push_back({"softmax" + suffix, inputs, {true}, [axis](const Inputs& in) { return nn::softmax(in[0], axis); }});
    c.push_back({"log_softmax" + suffix, inputs, {true},
                 [axis](const Inputs& in) { return nn::log_softmax(in[0], axis); }});
  }
  return c;
}

}  // namespace
}  // namespace scalpel::testing_ops
