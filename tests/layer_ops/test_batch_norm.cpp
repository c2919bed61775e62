// Batch norm: hand values, running-statistics update (PyTorch's momentum and unbiased
// variance), gradient checks in train and eval mode, PyTorch parity, errors.
#include <gtest/gtest.h>

#include <cmath>

#include "layer_ops/op_cases.h"
#include "layer_ops/op_fixture.h"
#include "layers/functional.h"
#include "support/errors.h"

namespace scalpel {
namespace {

using testing::expect_gradcheck;
using testing::expect_parity;
using testing::random_leaf;
using testing::vec;

TEST(BatchNorm, TrainModeHandValuesAndRunningStats) {
  // One channel, values {1, 3} and {5, 7} in two samples: mean 4, biased var 5, unbiased 20/3.
  Tensor x = Tensor::from_vector({1, 3, 5, 7}, {2, 1, 1, 2}, DType::F64);
  Tensor rm = vec({1}), rv = vec({2});
  const double eps = 1e-5;
  Tensor y = nn::batch_norm(x, rm, rv, vec({2}), vec({0.5}), true, 0.1, eps);
  const double s = 1 / std::sqrt(5 + eps);
  const std::vector<double> got = y.to_vector();
  const double expected[] = {-3 * s * 2 + 0.5, -1 * s * 2 + 0.5, 1 * s * 2 + 0.5, 3 * s * 2 + 0.5};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], expected[i], 1e-12);
  EXPECT_NEAR(rm.item(), 0.9 * 1 + 0.1 * 4, 1e-12);
  EXPECT_NEAR(rv.item(), 0.9 * 2 + 0.1 * 20.0 / 3, 1e-12);
}

TEST(BatchNorm, EvalModeUsesRunningStatsAndLeavesThem) {
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {2, 2}, DType::F64);  // [N, C] input
  Tensor rm = vec({1, -1}), rv = vec({4, 0.25});
  Tensor y = nn::batch_norm(x, rm, rv, Tensor(), Tensor(), false, 0.1, 1e-3);
  const std::vector<double> got = y.to_vector();
  EXPECT_NEAR(got[0], (1 - 1) / std::sqrt(4.001), 1e-12);
  EXPECT_NEAR(got[1], (2 + 1) / std::sqrt(0.251), 1e-12);
  EXPECT_NEAR(got[2], (3 - 1) / std::sqrt(4.001), 1e-12);
  EXPECT_NEAR(got[3], (4 + 1) / std::sqrt(0.251), 1e-12);
  EXPECT_EQ(rm.to_vector(), (std::vector<double>{1, -1}));
  EXPECT_EQ(rv.to_vector(), (std::vector<double>{4, 0.25}));
}

TEST(BatchNorm, LargeMeanKeepsFloat32Precision) {
  // Mean 1000, spread 0.01. The float32 mean alone is off by up to ulp(1000) / 2 = 3e-5, i.e.
  // 3e-3 after dividing by the spread: that is the floor. Folding the mean into a shift
  // (x * scale + shift, with x * scale ~ 1e5 where the float32 ulp is 8e-3) or a one-pass
  // E[x^2] - E[x]^2 variance would land well above it.
  Generator gen(3);
  Tensor x64 = Tensor::empty({4, 2, 5, 5}, DType::F64);
  normal_(x64, 1000, 0.01, gen);
  Tensor x32 = x64.to(DType::F32);
  Tensor y32 = nn::batch_norm(x32, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
  Tensor y64 = nn::batch_norm(x32.to(DType::F64), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
  EXPECT_LT(ops::max_abs_diff(y32.to(DType::F64), y64), 4e-3);
}

TEST(BatchNorm, GradcheckTrainMode) {
  for (bool affine : {true, false}) {
    SCOPED_TRACE(affine);
    Tensor x = random_leaf({3, 4, 3, 3}, 1);
    std::vector<Tensor> inputs{x};
    if (affine) {
      inputs.push_back(random_leaf({4}, 2, 0.5, 1.5));
      inputs.push_back(random_leaf({4}, 3));
    }
    expect_gradcheck(
        [&](const std::vector<Tensor>& in) {
          Tensor rm = Tensor::zeros({4}, DType::F64), rv = Tensor::ones({4}, DType::F64);
          return nn::batch_norm(in[0], rm, rv, affine ? in[1] : Tensor(), affine ? in[2] : Tensor(), true, 0.1, 1e-5);
        },
        inputs);
  }
  // [N, C] input (the classifier-head case), no running statistics tracked.
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return nn::batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-3);
      },
      {random_leaf({5, 3}, 4), random_leaf({3}, 5), random_leaf({3}, 6)});
}

TEST(BatchNorm, GradcheckEvalMode) {
  Tensor rm = Tensor::from_vector({0.1, -0.2, 0.3}, {3}, DType::F64);
  Tensor rv = Tensor::from_vector({0.5, 1.5, 2.0}, {3}, DType::F64);
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) { return nn::batch_norm(in[0], rm, rv, in[1], in[2], false, 0.1, 1e-5); },
      {random_leaf({2, 3, 3, 5}, 7), random_leaf({3}, 8), random_leaf({3}, 9)});
}

// DenseNet's layers normalize a channel slice of a wider buffer (nn::ChannelBuffer): the
// kernels read that view in place. Same numbers as on a contiguous copy, forward, backward
// and running statistics, in both modes; and the float64 gradient check through the view.
TEST(BatchNorm, ChannelSliceOfAWiderTensorEqualsItsContiguousCopy) {
  Tensor wide = random_leaf({3, 7, 4, 5}, 11);
  for (bool training : {true, false}) {
    SCOPED_TRACE(training);
    Tensor view = wide.detach().slice(1, 1, 5);  // channels 1..4 of every sample: not contiguous
    ASSERT_FALSE(view.is_contiguous());
    Tensor copy = view.contiguous();
    Tensor w = random_leaf({4}, 12, 0.5, 1.5), b = random_leaf({4}, 13);
    Tensor rm1 = Tensor::zeros({4}, DType::F64), rv1 = Tensor::ones({4}, DType::F64);
    Tensor rm2 = rm1.clone(), rv2 = rv1.clone();
    view.set_requires_grad(true);
    copy.set_requires_grad(true);
    Tensor y1 = nn::batch_norm(view, rm1, rv1, w, b, training, 0.1, 1e-5);
    Tensor y2 = nn::batch_norm(copy, rm2, rv2, w, b, training, 0.1, 1e-5);
    EXPECT_EQ(ops::max_abs_diff(y1, y2), 0.0);
    EXPECT_EQ(ops::max_abs_diff(rm1, rm2), 0.0);
    EXPECT_EQ(ops::max_abs_diff(rv1, rv2), 0.0);
    const Tensor gy = random_leaf({3, 4, 4, 5}, 14).detach();
    const auto g1 = grad(y1, {view, w, b}, gy), g2 = grad(y2, {copy, w, b}, gy);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(ops::max_abs_diff(g1[i], g2[i]), 0.0) << i;
  }
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        Tensor rm = Tensor::zeros({3}, DType::F64), rv = Tensor::ones({3}, DType::F64);
        return nn::batch_norm(slice(in[0], 1, 2, 5), rm, rv, in[1], in[2], true, 0.1, 1e-5);
      },
      {random_leaf({2, 6, 3, 3}, 15), random_leaf({3}, 16, 0.5, 1.5), random_leaf({3}, 17)});
}

TEST(BatchNorm, FrozenWeightGetsNoGradient) {
  Tensor x = random_leaf({2, 3, 2, 2}, 1);
  Tensor w = random_leaf({3}, 2).detach();  // requires_grad off (a frozen layer)
  Tensor b = random_leaf({3}, 3);
  Tensor y = nn::batch_norm(x, Tensor(), Tensor(), w, b, true, 0.1, 1e-5);
  backward(sum(mul(y, y)));
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(b.grad().defined());
  EXPECT_FALSE(w.grad().defined());
}

TEST(BatchNorm, PyTorchParity) {
  const char* cases[] = {"ops_extra/batch_norm1d_train", "batch_norm2d_train_eps1e-5", "batch_norm2d_train_eps1e-3",
                         "batch_norm2d_train_eps1.001e-5_momentum0.01", "batch_norm2d_train_offset",
                         "batch_norm2d_eval_eps1e-5", "batch_norm2d_eval_eps1e-3", "batch_norm2d_eval_eps1.001e-5"};
  for (const char* name : cases)
    for (DType dtype : {DType::F32, DType::F64}) {
      Tensor rm, rv;
      testing::OpCase c = expect_parity(name, dtype, [&](const testing::OpCase& c, const auto& in, DType dt) {
        rm = c.get("running_mean", dt);
        rv = c.get("running_var", dt);
        return nn::batch_norm(in.at("x"), rm, rv, in.at("weight"), in.at("bias"), c.meta().at("training").as_bool(),
                              c.meta().at("momentum").as_number(), c.meta().at("eps").as_number());
      });
      const double tol = testing::ParityTolerance::for_dtype(dtype).forward;
      const bool training = c.meta().at("training").as_bool();
      testing::expect_close(rm, c.get(training ? "running_mean_after" : "running_mean", dtype), tol,
                            std::string(name) + " running_mean");
      testing::expect_close(rv, c.get(training ? "running_var_after" : "running_var", dtype), tol,
                            std::string(name) + " running_var");
    }
}

using scalpel::test::expect_error;

TEST(BatchNorm, Errors) {
  Tensor x = Tensor::zeros({2, 3, 4, 4}, DType::F64);
  expect_error([&] { nn::batch_norm(x, Tensor::zeros({4}, DType::F64), Tensor::ones({4}, DType::F64), Tensor(), Tensor(),
                                    false, 0.1, 1e-5, "layer1.bn1"); },
               {"layer1.bn1", "running_mean", "[4]", "[2, 3, 4, 4]"});
  expect_error([&] { nn::batch_norm(x, Tensor(), Tensor(), Tensor::ones({2}, DType::F64), Tensor(), true, 0.1, 1e-5, "bn"); },
               {"bn", "weight", "[2]"});
  expect_error([&] { nn::batch_norm(Tensor::zeros({1, 3, 1, 1}, DType::F64), Tensor(), Tensor(), Tensor(), Tensor(), true,
                                    0.1, 1e-5, "head.bn"); },
               {"head.bn", "more than 1 value per channel", "[1, 3, 1, 1]"});
  expect_error([&] { nn::batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1, 1e-5, "bn"); },
               {"bn", "running statistics"});
  expect_error([&] { nn::batch_norm(Tensor::zeros({3}, DType::F64), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5); },
               {"batch_norm", "[3]"});
}

}  // namespace
}  // namespace scalpel

// ---- device rows (layer_ops/op_cases.h): forward and backward against the CPU on every backend
namespace scalpel::testing_ops {
namespace {
using namespace op_cases_detail;

// Inputs x, weight, bias, running mean, running var; without affine parameters there are no
// running statistics either.
OpCase batch_norm(const std::string& name, bool training, bool affine) {
  return {name,
          [affine](Generator& gen) {
            const Tensor x = randn({3, 4, 5, 3}, gen);
            if (!affine) return Inputs{x, Tensor(), Tensor(), Tensor(), Tensor()};
            const Tensor w = randn({4}, gen), b = randn({4}, gen);
            const Tensor rm = randn({4}, gen), rv = ops::add_scalar(rand({4}, gen), 0.5);
            return Inputs{x, w, b, rm, rv};
          },
          {true, affine, affine, false, false},
          [training](const Inputs& in) { return nn::batch_norm(in[0], in[3], in[4], in[1], in[2], training, 0.1, 1e-5); },
          1e-4,
          false,
          {3, 4}};
}

SCALPEL_OP_CASES(batch_norm) {
  std::vector<OpCase> c;
  c.push_back(batch_norm("batch_norm_training", true, true));
  c.push_back(batch_norm("batch_norm_eval", false, true));
  c.push_back(batch_norm("batch_norm_training_without_affine_or_running_stats", true, false));
  return c;
}

}  // namespace
}  // namespace scalpel::testing_ops
