// Autograd engine semantics and the gradient of every differentiable tensor function.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "tensor/random.h"

using namespace scalpel;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

static Tensor leaf(const Shape& shape, uint64_t seed, double shift = 0) {
  Generator gen(seed);
  Tensor t = ops::add_scalar(randn(shape, gen, DType::F64), shift);
  t.set_requires_grad();
  return t;
}

static void expect_gradcheck(const Fn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options = {}) {
  GradcheckResult r = gradcheck(fn, inputs, options);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.checked, 0);
}

TEST(Autograd, AccumulatesIntoLeaves) {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3}, DType::F64).set_requires_grad();
  Tensor y = sum(x * x);
  backward(y);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 4, 6}));
  backward(sum(x * 3.0));  // a second backward accumulates
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{5, 7, 9}));
  EXPECT_TRUE(x.is_leaf());
  EXPECT_FALSE(y.is_leaf());
  EXPECT_EQ(y.grad_fn()->name, "sum");
}

TEST(Autograd, SharedSubexpressionsSumTheirGradients) {
  Tensor x = Tensor::from_vector({2}, {1}, DType::F64).set_requires_grad();
  Tensor a = x * x;       // used twice below
  Tensor y = sum(a * a + a);  // x^4 + x^2 -> 4x^3 + 2x = 36
  backward(y);
  EXPECT_DOUBLE_EQ(x.grad().item(), 36);
}

// The grad-ready hook (data-parallel training sends gradients from it while backward runs):
// each leaf once, when its gradient is final, outputs' leaves first; an unused leaf never.
TEST(Autograd, GradReadyReportsEachLeafOnceItsGradientIsFinal) {
  Tensor x = Tensor::from_vector({2}, {1}, DType::F64).set_requires_grad();
  Tensor w1 = Tensor::from_vector({3}, {1}, DType::F64).set_requires_grad();
  Tensor w2 = Tensor::from_vector({5}, {1}, DType::F64).set_requires_grad();
  Tensor unused = Tensor::from_vector({7}, {1}, DType::F64).set_requires_grad();
  Tensor h = x * w1;
  // w1 feeds two nodes (its gradient is final only after both); w2 only the last one.
  Tensor y = sum((h + w1) * w2);
  std::vector<std::pair<std::string, double>> reported;
  const auto name = [&](const Tensor& t) -> std::string {
    for (const auto& [n, leaf] : {std::pair{"x", x}, std::pair{"w1", w1}, std::pair{"w2", w2}})
      if (t.autograd_meta_ptr() == leaf.autograd_meta_ptr()) return n;
    return "other";
  };
  backward_with_grad_ready(y, [&](const Tensor& leaf) { reported.push_back({name(leaf), leaf.grad().item()}); });
  (void)unused;
  ASSERT_EQ(reported.size(), 3u);
  EXPECT_EQ(reported[0], (std::pair<std::string, double>{"w2", 9}));  // h + w1 = 9
  // dy/dw1 = (x + 1) * w2 = 15, dy/dx = w1 * w2 = 15: reported with their final values.
  const std::pair<std::string, double> w1_final{"w1", 15}, x_final{"x", 15};
  EXPECT_TRUE((reported[1] == w1_final && reported[2] == x_final) || (reported[1] == x_final && reported[2] == w1_final));
  EXPECT_DOUBLE_EQ(w1.grad().item(), 15);
  EXPECT_FALSE(unused.grad().defined());
}

TEST(Autograd, NoGradDetachAndRequiresGrad) {
  Tensor x = leaf({3}, 1);
  {
    NoGradGuard guard;
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
  }
  EXPECT_TRUE(grad_enabled());
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.shares_storage(x));
  Tensor c = Tensor::ones({3}, DType::F64);
  EXPECT_FALSE((c * 2.0).requires_grad());
  EXPECT_THROW(backward(c), Error);
  EXPECT_THROW(Tensor::zeros({2}, DType::I64).set_requires_grad(), Error);
}

TEST(Autograd, GraphIsFreedUnlessRetained) {
  Tensor x = leaf({2}, 2);
  Tensor y = sum(exp(x));
  backward(y, Tensor(), /*retain_graph=*/true);
  backward(y);  // allowed: the graph was retained
  EXPECT_THROW(backward(y), Error);  // freed now: a clear error, no crash
  Tensor expected = ops::mul_scalar(ops::exp(x.detach()), 2);
  EXPECT_LT(ops::max_abs_diff(x.grad(), expected), 1e-12);
}

TEST(Autograd, NonScalarNeedsExplicitGradient) {
  Tensor x = leaf({2, 2}, 3);
  Tensor y = x * 2.0;
  EXPECT_THROW(backward(y), Error);
  backward(y, Tensor::ones({2, 2}, DType::F64));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 2, 2, 2}));
  EXPECT_THROW(backward(x * 2.0, Tensor::ones({3}, DType::F64)), Error);
}

TEST(Autograd, GradFunctionLeavesDotGradAlone) {
  Tensor x = leaf({3}, 4);
  std::vector<Tensor> g = grad(sum(x * x), {x});
  EXPECT_FALSE(x.grad().defined());
  EXPECT_LT(ops::max_abs_diff(g[0], ops::mul_scalar(x.detach(), 2)), 1e-12);
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  Tensor x = leaf({1}, 5);
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0;
  backward(sum(y));
  EXPECT_DOUBLE_EQ(x.grad().item(), 1.0);
}

TEST(Gradcheck, CatchesAWrongGradient) {
  Tensor x = leaf({4}, 6);
  Fn wrong = [](const std::vector<Tensor>& in) {
    return record("wrong_square", ops::mul(in[0], in[0]), {in[0]},
                  [x = in[0].detach()](const Tensor& g) { return std::vector<Tensor>{ops::mul(g, x)}; });  // misses the 2
  };
  EXPECT_FALSE(gradcheck(wrong, {x}).ok);
}

// ---- every differentiable function ----

TEST(Gradients, ElementwiseBinaryWithBroadcasting) {
  Tensor a = leaf({2, 3}, 10), b = leaf({3}, 11), c = leaf({2, 1}, 12, 3.0);
  expect_gradcheck([](const auto& x) { return add(x[0], x[1]); }, {a, b});
  expect_gradcheck([](const auto& x) { return sub(x[0], x[1]); }, {a, c});
  expect_gradcheck([](const auto& x) { return mul(x[0], x[1]); }, {a, b});
  expect_gradcheck([](const auto& x) { return div(x[0], x[1]); }, {a, c});
  Tensor pos = leaf({2, 3}, 13, 3.0);
  expect_gradcheck([](const auto& x) { return pow(x[0], x[1]); }, {pos, b});
  expect_gradcheck([](const auto& x) { return pow(x[0], 3.0); }, {a});
  expect_gradcheck([](const auto& x) { return maximum(x[0], x[1]); }, {a, b});
  expect_gradcheck([](const auto& x) { return minimum(x[0], x[1]); }, {a, b});
  expect_gradcheck([](const auto& x) { return x[0] * 2.5 + 1.0 - x[1] / 4.0; }, {a, b});
  expect_gradcheck([](const auto& x) { return where(ops::gt(x[0], Tensor::scalar(0, DType::F64)), x[0], x[1]); },
                   {a, b});
}

TEST(Gradients, ElementwiseUnary) {
  Tensor a = leaf({3, 2}, 20);
  Tensor pos = leaf({3, 2}, 21, 4.0);
  expect_gradcheck([](const auto& x) { return neg(x[0]); }, {a});
  expect_gradcheck([](const auto& x) { return exp(x[0]); }, {a});
  expect_gradcheck([](const auto& x) { return log(x[0]); }, {pos});
  expect_gradcheck([](const auto& x) { return sqrt(x[0]); }, {pos});
  expect_gradcheck([](const auto& x) { return abs(x[0]); }, {a});
  expect_gradcheck([](const auto& x) { return clamp(x[0], -0.5, 0.5); }, {a});
}

TEST(Gradients, Reductions) {
  Tensor a = leaf({2, 3, 4}, 30);
  expect_gradcheck([](const auto& x) { return sum(x[0]); }, {a});
  expect_gradcheck([](const auto& x) { return sum(x[0], {0, 2}); }, {a});
  expect_gradcheck([](const auto& x) { return mean(x[0], {1}, true); }, {a});
  expect_gradcheck([](const auto& x) { return max(x[0], {2}); }, {a});
  expect_gradcheck([](const auto& x) { return min(x[0], {0, 1}); }, {a});
  expect_gradcheck([](const auto& x) { return var(x[0], {2}); }, {a});
  expect_gradcheck([](const auto& x) { return var(x[0], {}, 0); }, {a});
}

TEST(Gradients, MaxSplitsTiesEvenly) {
  Tensor x = Tensor::from_vector({1, 3, 3}, {3}, DType::F64).set_requires_grad();
  backward(max(x));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 0.5, 0.5}));
}

TEST(Gradients, Matmul) {
  Tensor a = leaf({2, 3}, 40), b = leaf({3, 4}, 41);
  expect_gradcheck([](const auto& x) { return matmul(x[0], x[1]); }, {a, b});
  Tensor ba = leaf({2, 1, 2, 3}, 42), bb = leaf({3, 3, 2}, 43);
  expect_gradcheck([](const auto& x) { return matmul(x[0], x[1]); }, {ba, bb});
  Tensor v = leaf({3}, 44);
  expect_gradcheck([](const auto& x) { return matmul(x[0], x[1]); }, {a, v});
  expect_gradcheck([](const auto& x) { return matmul(x[1], x[0]); }, {b, v});
}

TEST(Gradients, ShapeFunctions) {
  Tensor a = leaf({2, 3, 4}, 50);
  expect_gradcheck([](const auto& x) { return reshape(x[0], {4, -1}); }, {a});
  expect_gradcheck([](const auto& x) { return permute(x[0], {2, 0, 1}); }, {a});
  expect_gradcheck([](const auto& x) { return transpose(x[0], 0, 2); }, {a});
  expect_gradcheck([](const auto& x) { return slice(x[0], 2, 1, 4, 2); }, {a});
  expect_gradcheck([](const auto& x) { return select(x[0], 1, 2); }, {a});
  expect_gradcheck([](const auto& x) { return unsqueeze(squeeze(unsqueeze(x[0], 1), 1), 0); }, {a});
  expect_gradcheck([](const auto& x) { return expand(slice(x[0], 1, 0, 1), {2, 3, 4}); }, {a});
  expect_gradcheck([](const auto& x) { return flatten(x[0], 1); }, {a});
  expect_gradcheck([](const auto& x) { return contiguous(transpose(x[0], 0, 1)); }, {a});
  Tensor b = leaf({2, 2, 4}, 51);
  expect_gradcheck([](const auto& x) { return concat({x[0], x[1]}, 1); }, {a, b});
  Tensor c = leaf({2, 3, 4}, 52);
  expect_gradcheck([](const auto& x) { return stack({x[0], x[1]}, 1); }, {a, c});
  // Through float32 the numeric derivative needs a step float32 can resolve (the map is linear).
  GradcheckOptions coarse;
  coarse.eps = 1e-2;
  coarse.rtol = 1e-3;
  expect_gradcheck([](const auto& x) { return to_dtype(to_dtype(x[0], DType::F32), DType::F64); }, {a}, coarse);
}
