// The layer ops' CUDA device branches, forward and backward, on cuda-emu against the CPU
// reference ops: small odd shapes, every input gradient compared, under the forward, reverse
// and shuffled thread schedules. Sentinels: the emulated allocator fills fresh memory with
// NaN and its cache is emptied before each device run, so a gradient element no kernel wrote
// fails the comparison.
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/functions.h"
#include "cuda/caching_allocator.h"
#include "cuda/tensor_ops.h"
#include "cuda_test_util.h"
#include "layers/functional.h"
#include "layers/loss.h"
#include "layers/optim.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

const Device kEmu{DeviceType::CUDAEmu, 0};
using Inputs = std::vector<Tensor>;
using OpFn = std::function<Tensor(const Inputs&)>;

class DeviceOps : public cuda::testing::EmuScheduleTest {
 protected:
  void SetUp() override {
    EmuScheduleTest::SetUp();
    cuda::init();
  }
};

// Max |got - want| over max(1, max |want|): one relative figure per tensor.
double relative_error(const Tensor& got, const Tensor& want) {
  const double scale = std::max(1.0, ops::max_abs_diff(want, Tensor::zeros(want.shape())));
  return ops::max_abs_diff(got, want) / scale;
}

// Runs `op` on the CPU and on cuda-emu from the same inputs (those in `differentiable` get
// requires_grad), backpropagates the same random output gradient, and compares the outputs
// and every input gradient.
void expect_matches_cpu(const std::string& what, const OpFn& op, const Inputs& inputs,
                        const std::vector<bool>& differentiable, double tol = 1e-5) {
  Generator gen(11);
  Inputs cpu, dev;
  for (size_t i = 0; i < inputs.size(); ++i) {
    cpu.push_back(inputs[i].defined() ? inputs[i].clone() : Tensor());
    dev.push_back(inputs[i].defined() ? inputs[i].to(kEmu) : Tensor());
    if (differentiable[i]) {
      cpu.back().set_requires_grad(true);
      dev.back().set_requires_grad(true);
    }
  }
  const Tensor y_cpu = op(cpu);
  const Tensor gy = randn(y_cpu.shape(), gen);
  static_cast<cuda::CachingAllocator*>(cuda::emu_allocator())->empty_cache();  // fresh NaN memory
  const Tensor y_dev = op(dev);
  ASSERT_EQ(y_dev.device(), kEmu) << what;
  EXPECT_LT(relative_error(y_dev.to(Device::cpu()), y_cpu), tol) << what << " forward";
  backward(y_cpu, gy);
  static_cast<cuda::CachingAllocator*>(cuda::emu_allocator())->empty_cache();
  backward(y_dev, gy.to(kEmu));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!differentiable[i]) continue;
    ASSERT_TRUE(dev[i].grad().defined()) << what << " input " << i;
    ASSERT_EQ(dev[i].grad().device(), kEmu) << what << " input " << i;
    EXPECT_LT(relative_error(dev[i].grad().to(Device::cpu()), cpu[i].grad()), tol)
        << what << " gradient of input " << i;
  }
}

TEST_P(DeviceOps, Conv2dRegularGroupedDepthwisePointwise) {
  Generator gen(1);
  struct Case {
    const char* what;
    Shape x, w;
    nn::Conv2dOptions o;
    bool bias;
  };
  nn::Conv2dOptions strided;
  strided.stride = {2, 1};
  strided.padding = nn::Padding2d::symmetric(1, 2);
  nn::Conv2dOptions grouped;
  grouped.groups = 2;
  grouped.dilation = {2, 1};
  grouped.padding = nn::Padding2d::symmetric(1);
  nn::Conv2dOptions depthwise;
  depthwise.groups = 5;
  depthwise.stride = {2, 2};
  depthwise.padding = nn::Padding2d::symmetric(1);
  const Case cases[] = {
      {"3x3 stride 2x1", {2, 3, 7, 6}, {5, 3, 3, 3}, strided, true},
      {"grouped dilated", {2, 4, 7, 5}, {6, 2, 3, 3}, grouped, false},
      {"depthwise stride 2", {2, 5, 7, 6}, {5, 1, 3, 3}, depthwise, true},
      {"pointwise", {3, 4, 5, 3}, {7, 4, 1, 1}, {}, true},
  };
  for (const Case& c : cases) {
    const Tensor b = c.bias ? randn({c.w[0]}, gen) : Tensor();
    expect_matches_cpu(
        c.what, [&](const Inputs& in) { return nn::conv2d(in[0], in[1], in[2], c.o); },
        {randn(c.x, gen), randn(c.w, gen), b}, {true, true, c.bias}, 1e-4);
  }
}

TEST_P(DeviceOps, LinearWithBatchAxes) {
  Generator gen(2);
  expect_matches_cpu(
      "linear", [](const Inputs& in) { return nn::linear(in[0], in[1], in[2]); },
      {randn({2, 3, 5}, gen), randn({4, 5}, gen), randn({4}, gen)}, {true, true, true}, 1e-4);
}

TEST_P(DeviceOps, BatchNormTrainingUpdatesRunningStatsAndEvalBackward) {
  Generator gen(3);
  const Tensor x = randn({3, 4, 5, 3}, gen), w = randn({4}, gen), b = randn({4}, gen);
  const Tensor rm = randn({4}, gen), rv = ops::add_scalar(rand({4}, gen), 0.5);
  for (bool training : {true, false}) {
    Tensor rm_cpu = rm.clone(), rv_cpu = rv.clone();
    Tensor rm_dev = rm.to(kEmu), rv_dev = rv.to(kEmu);
    expect_matches_cpu(
        training ? "batch_norm training" : "batch_norm eval",
        [&](const Inputs& in) {
          const bool on_device = !in[0].device().is_cpu();
          return nn::batch_norm(in[0], on_device ? rm_dev : rm_cpu, on_device ? rv_dev : rv_cpu, in[1], in[2],
                                training, 0.1, 1e-5);
        },
        {x, w, b}, {true, true, true}, 1e-4);
    EXPECT_LT(relative_error(rm_dev.to(Device::cpu()), rm_cpu), 1e-5);
    EXPECT_LT(relative_error(rv_dev.to(Device::cpu()), rv_cpu), 1e-5);
  }
  // Without affine parameters.
  expect_matches_cpu(
      "batch_norm without affine",
      [](const Inputs& in) { return nn::batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5); },
      {x}, {true}, 1e-4);
}

TEST_P(DeviceOps, Activations) {
  Generator gen(4);
  // Spread over [-8, 8] so every piece of relu6/hardswish/hardsigmoid is hit.
  const Tensor x = ops::mul_scalar(randn({3, 5, 7}, gen), 4.0);
  const std::vector<std::pair<const char*, Tensor (*)(const Tensor&)>> fns = {
      {"relu", nn::relu},         {"relu6", nn::relu6},       {"silu", nn::silu},
      {"sigmoid", nn::sigmoid},   {"tanh", nn::tanh},         {"hardswish", nn::hardswish},
      {"hardsigmoid", nn::hardsigmoid}, {"gelu", nn::gelu},
  };
  for (const auto& [name, fn] : fns)
    expect_matches_cpu(name, [fn = fn](const Inputs& in) { return fn(in[0]); }, {x}, {true}, 1e-5);
  expect_matches_cpu(
      "leaky_relu", [](const Inputs& in) { return nn::leaky_relu(in[0], 0.1); }, {x}, {true});
}

TEST_P(DeviceOps, BroadcastAddMulReduceTheirGradients) {
  Generator gen(5);
  // Residual add, squeeze-excite scale [N, C, 1, 1], a bias-like [C, 1, 1].
  const Tensor x = randn({2, 3, 5, 4}, gen), se = randn({2, 3, 1, 1}, gen), c = randn({3, 1, 1}, gen);
  expect_matches_cpu(
      "x * se + c + x", [](const Inputs& in) { return add(add(mul(in[0], in[1]), in[2]), in[0]); }, {x, se, c},
      {true, true, true});
  expect_matches_cpu(
      "mean and sum over axes",
      [](const Inputs& in) { return add(mul(mean(in[0], {2, 3}, true), 2.0), sum(in[0], {0, 2}, true)); }, {x},
      {true});
  // The raw reductions over non-adjacent and negative axes, without keepdim.
  const Tensor xd = x.to(kEmu);
  EXPECT_LT(relative_error(ops::max(xd, {1, -1}).to(Device::cpu()), ops::max(x, {1, -1})), 1e-6);
  EXPECT_LT(relative_error(ops::sum(xd).to(Device::cpu()), ops::sum(x)), 1e-5);
  EXPECT_LT(relative_error(ops::mean(xd, {0, 3}).to(Device::cpu()), ops::mean(x, {0, 3})), 1e-6);
  for (int64_t axis : {0, 1, 3})
    EXPECT_EQ(ops::argmax(xd, axis).to_vector(), ops::argmax(x, axis).to_vector()) << "argmax axis " << axis;
}

TEST_P(DeviceOps, Pooling) {
  Generator gen(6);
  const Tensor x = randn({2, 3, 7, 6}, gen);
  nn::Pool2dOptions max3;
  max3.kernel = {3, 3};
  max3.stride = {2, 2};
  max3.padding = nn::Padding2d::symmetric(1);
  expect_matches_cpu("max_pool2d", [&](const Inputs& in) { return nn::max_pool2d(in[0], max3); }, {x}, {true});
  // TF "SAME" (Xception's pools: the odd pixel bottom/right) and ceil_mode: an explicitly
  // -inf-padded input on the device.
  nn::Pool2dOptions same = max3;
  same.padding = nn::same_padding(7, 6, 3, 3, 2, 2);
  ASSERT_NE(same.padding.left, same.padding.right);
  expect_matches_cpu("max_pool2d SAME", [&](const Inputs& in) { return nn::max_pool2d(in[0], same); }, {x}, {true});
  nn::Pool2dOptions ceil = max3;
  ceil.padding = {};
  ceil.ceil_mode = true;
  expect_matches_cpu("max_pool2d ceil_mode", [&](const Inputs& in) { return nn::max_pool2d(in[0], ceil); }, {x},
                     {true});
  nn::Pool2dOptions avg = max3;
  avg.count_include_pad = false;
  expect_matches_cpu("avg_pool2d", [&](const Inputs& in) { return nn::avg_pool2d(in[0], avg); }, {x}, {true});
  expect_matches_cpu("global_avg_pool", [](const Inputs& in) { return nn::global_avg_pool(in[0]); }, {x}, {true});
  expect_matches_cpu(
      "adaptive 7x6 -> 7x2", [](const Inputs& in) { return nn::adaptive_avg_pool2d(in[0], 7, 2); }, {x}, {true});
}

TEST_P(DeviceOps, SoftmaxAndLogSoftmaxOverAnyAxis) {
  Generator gen(7);
  const Tensor x = ops::mul_scalar(randn({2, 5, 3, 4}, gen), 3.0);
  for (int64_t axis : {-1, 1}) {
    expect_matches_cpu(
        "softmax axis " + std::to_string(axis), [axis](const Inputs& in) { return nn::softmax(in[0], axis); }, {x},
        {true});
    expect_matches_cpu(
        "log_softmax axis " + std::to_string(axis),
        [axis](const Inputs& in) { return nn::log_softmax(in[0], axis); }, {x}, {true});
  }
}

TEST_P(DeviceOps, CrossEntropyMeanAndSum) {
  Generator gen(8);
  const Tensor logits = ops::mul_scalar(randn({5, 7}, gen), 3.0);
  const Tensor labels = Tensor::from_vector({0, 6, 3, 3, 1}, {5}, DType::I64);
  for (nn::Reduction r : {nn::Reduction::Mean, nn::Reduction::Sum}) {
    nn::CrossEntropyOptions o;
    o.reduction = r;
    expect_matches_cpu(
        "cross_entropy",
        [&](const Inputs& in) { return nn::cross_entropy(in[0], in[0].device().is_cpu() ? labels : labels.to(kEmu), o); },
        {logits}, {true});
  }
}

TEST_P(DeviceOps, CrossEntropyRefusesOutOfRangeTargets) {
  const Tensor logits = Tensor::zeros({2, 3}).to(kEmu);
  const Tensor labels = Tensor::from_vector({1, 3}, {2}, DType::I64).to(kEmu);
  try {
    nn::cross_entropy(logits, labels);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 3 at position 1"), std::string::npos) << e.what();
  }
}

TEST_P(DeviceOps, DropoutScalesKeptElementsAndRoutesGradientsThroughTheSameMask) {
  Generator gen(9);
  const Tensor x = ops::add_scalar(rand({4, 250}, gen), 1.0);  // no zeros: kept <=> y != 0
  Tensor xd = x.to(kEmu);
  xd.set_requires_grad(true);
  Generator drop(21);
  const Tensor y = nn::dropout(xd, 0.3, true, drop);
  backward(y, Tensor::ones(y.shape()).to(kEmu));
  const std::vector<double> yv = y.to(Device::cpu()).to_vector(), xv = x.to_vector();
  const std::vector<double> gv = xd.grad().to(Device::cpu()).to_vector();
  int64_t kept = 0;
  for (size_t i = 0; i < yv.size(); ++i) {
    const bool keep = yv[i] != 0;
    kept += keep;
    EXPECT_NEAR(yv[i], keep ? xv[i] / 0.7 : 0.0, 1e-5) << i;
    EXPECT_NEAR(gv[i], keep ? 1.0 / 0.7 : 0.0, 1e-5) << i;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 1000.0, 0.7, 0.05);
  // Stochastic depth: whole samples are kept (scaled) or dropped.
  const Tensor z = nn::drop_path(xd.detach(), 0.5, true, drop).to(Device::cpu());
  for (int64_t n = 0; n < 4; ++n) {
    const double ratio = z.at({n, 0}) / x.at({n, 0});
    EXPECT_TRUE(std::abs(ratio) < 1e-6 || std::abs(ratio - 2.0) < 1e-5) << ratio;
    for (int64_t i = 1; i < 250; ++i) EXPECT_NEAR(z.at({n, i}), x.at({n, i}) * ratio, 1e-5);
  }
}

TEST_P(DeviceOps, ConvTranspose2dUpsamplePadConcat) {
  Generator gen(13);
  nn::ConvTranspose2dOptions up2;
  up2.stride = {2, 2};
  nn::ConvTranspose2dOptions odd;
  odd.stride = {2, 3};
  odd.padding = {1, 0};
  odd.output_padding = {1, 2};
  odd.groups = 2;
  expect_matches_cpu(
      "conv_transpose2d 2x2 stride 2",
      [&](const Inputs& in) { return nn::conv_transpose2d(in[0], in[1], in[2], up2); },
      {randn({2, 4, 3, 5}, gen), randn({4, 3, 2, 2}, gen), randn({3}, gen)}, {true, true, true}, 1e-4);
  expect_matches_cpu(
      "conv_transpose2d grouped, output_padding",
      [&](const Inputs& in) { return nn::conv_transpose2d(in[0], in[1], in[2], odd); },
      {randn({2, 4, 3, 4}, gen), randn({4, 3, 3, 3}, gen), Tensor()}, {true, true, false}, 1e-4);
  const Tensor x = randn({2, 3, 5, 4}, gen);
  expect_matches_cpu(
      "upsample nearest", [](const Inputs& in) { return nn::upsample(in[0], 10, 9, "nearest"); }, {x}, {true});
  expect_matches_cpu(
      "upsample bilinear", [](const Inputs& in) { return nn::upsample(in[0], 11, 8, "bilinear"); }, {x}, {true});
  expect_matches_cpu(
      "pad2d", [](const Inputs& in) { return nn::pad2d(in[0], nn::Padding2d{1, 0, 2, 3}, -0.5); }, {x}, {true});
  expect_matches_cpu(
      "concat channels",
      [](const Inputs& in) { return concat({in[0], in[1], in[0]}, 1); }, {x, randn({2, 2, 5, 4}, gen)},
      {true, true});
}

TEST_P(DeviceOps, ContiguousCopyOfViews) {
  Generator gen(10);
  const Tensor x = randn({3, 4, 5}, gen);
  const Tensor view = x.permute({2, 0, 1}).slice(1, 1, 3);
  const Tensor dev = x.to(kEmu).permute({2, 0, 1}).slice(1, 1, 3).contiguous();
  EXPECT_TRUE(dev.is_contiguous());
  EXPECT_EQ(ops::max_abs_diff(dev.to(Device::cpu()), view.contiguous()), 0.0);
}

// Three steps of each optimizer on the device against the CPU optimizer.
TEST_P(DeviceOps, FusedOptimizersMatchTheCpuOptimizers) {
  Generator gen(12);
  const Tensor w0 = randn({7, 3}, gen);
  const std::vector<Tensor> grads = {randn({7, 3}, gen), randn({7, 3}, gen), randn({7, 3}, gen)};
  using Make = std::function<std::unique_ptr<nn::Optimizer>(Tensor)>;
  auto group = [](Tensor p) { return std::vector<nn::ParamGroup>{{{p}, 0.05, 0.01}}; };
  const std::vector<std::pair<std::string, Make>> optimizers = {
      {"sgd nesterov", [&](Tensor p) { return std::make_unique<nn::SGD>(group(p), nn::SGDOptions{0.9, 0, true}); }},
      {"sgd dampening", [&](Tensor p) { return std::make_unique<nn::SGD>(group(p), nn::SGDOptions{0.8, 0.3, false}); }},
      {"adam", [&](Tensor p) { return std::make_unique<nn::Adam>(group(p)); }},
      {"adamw", [&](Tensor p) { return std::make_unique<nn::Adam>(group(p), nn::AdamOptions{0.9, 0.99, 1e-8, true}); }},
      {"rmsprop momentum",
       [&](Tensor p) { return std::make_unique<nn::RMSprop>(group(p), nn::RMSpropOptions{0.9, 1e-8, 0.5}); }},
  };
  for (const auto& [name, make] : optimizers) {
    Tensor p_cpu = w0.clone(), p_dev = w0.to(kEmu);
    p_cpu.set_requires_grad(true);
    p_dev.set_requires_grad(true);
    auto opt_cpu = make(p_cpu), opt_dev = make(p_dev);
    for (const Tensor& g : grads) {
      p_cpu.set_grad(g.clone());
      p_dev.set_grad(g.to(kEmu));
      opt_cpu->step();
      opt_dev->step();
    }
    EXPECT_EQ(p_dev.device(), kEmu) << name;
    EXPECT_LT(relative_error(p_dev.to(Device::cpu()), p_cpu), 1e-5) << name;
  }
}

SCALPEL_ALL_SCHEDULES(DeviceOps);

}  // namespace
}  // namespace scalpel
