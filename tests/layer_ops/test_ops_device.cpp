// The layer ops' device branches, forward and backward, against the CPU reference ops, driven
// by the op-case table (op_cases.h) on every backend: cuda-emu under its forward, reverse and
// shuffled thread schedules, and where a GPU is usable, CUDA with the handwritten kernels and
// with cuDNN (convolutions). A backend this machine lacks skips, saying why.
// Sentinels: the emulated allocator fills fresh memory with NaN and its cache is emptied
// before each device run, so a gradient element no kernel wrote fails the comparison.
#include <algorithm>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/functions.h"
#include "cuda/caching_allocator.h"
#include "cuda/conv_library.h"
#include "cuda/cudnn.h"
#include "cuda/tensor_ops.h"
#include "cuda/cuda_test_util.h"
#include "layers/functional.h"
#include "layers/loss.h"
#include "layers/optim.h"
#include "layer_ops/op_cases.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

using testing_ops::Inputs;
using testing_ops::OpCase;
const Device kEmu{DeviceType::CUDAEmu, 0};
const Device kGpu{DeviceType::CUDA, 0};

// Max |got - want| over max(1, max |want|): one relative figure per tensor.
double relative_error(const Tensor& got, const Tensor& want) {
  const double scale = std::max(1.0, ops::max_abs_diff(want, Tensor::zeros(want.shape())));
  return ops::max_abs_diff(got, want) / scale;
}

// Where a row runs besides the CPU.
struct Backend {
  std::string name;
  Device device;
  ConvLibrary conv_library = ConvLibrary::Handwritten;
  cuda::emu::Schedule schedule = cuda::emu::Schedule::Forward;
};

const std::vector<Backend>& backends() {
  static const std::vector<Backend> all = {
      {"emu_forward", kEmu, ConvLibrary::Handwritten, cuda::emu::Schedule::Forward},
      {"emu_reverse", kEmu, ConvLibrary::Handwritten, cuda::emu::Schedule::Reverse},
      {"emu_shuffled", kEmu, ConvLibrary::Handwritten, cuda::emu::Schedule::Shuffled},
      {"cuda", kGpu, ConvLibrary::Handwritten},
      {"cudnn", kGpu, ConvLibrary::Cudnn},
  };
  return all;
}

struct BackendCase {
  const Backend* backend;
  const OpCase* op;
};
// What gtest (and so ctest's test list) prints for a parameter: "emu_forward relu".
void PrintTo(const BackendCase& c, std::ostream* os) { *os << c.backend->name << " " << c.op->name; }

// Every row on every backend; the cuDNN backend only changes convolutions, so it runs those.
std::vector<BackendCase> backend_cases() {
  std::vector<BackendCase> out;
  for (const Backend& b : backends())
    for (const OpCase& c : testing_ops::op_cases())
      if (b.conv_library != ConvLibrary::Cudnn || c.convolution) out.push_back({&b, &c});
  return out;
}

// The reason `b` cannot run here, or "" when it can.
std::string unavailable(const Backend& b) {
  try {
    if (b.device.type == DeviceType::CUDA) cuda::require_device(b.device);
    if (b.conv_library == ConvLibrary::Cudnn) cuda::cudnn::require(b.device);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void empty_device_cache(Device d) {
  if (d.type == DeviceType::CUDAEmu) static_cast<cuda::CachingAllocator*>(cuda::emu_allocator())->empty_cache();
}

class OpOnEveryBackend : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    cuda::init();
    const Backend& b = *GetParam().backend;
    if (const std::string why = unavailable(b); !why.empty()) GTEST_SKIP() << b.name << " is not available: " << why;
    cuda::emu::set_schedule(b.schedule, 7);
    cuda::set_conv_library(b.conv_library);
  }
  void TearDown() override {
    cuda::emu::set_schedule(cuda::emu::Schedule::Forward);
    cuda::set_conv_library(ConvLibrary::Handwritten);
  }
};

// Runs the row on the CPU and on the backend from the same inputs (the differentiable ones
// get requires_grad), backpropagates the same random output gradient, and compares the
// outputs, every input gradient and every input the op updates in place.
TEST_P(OpOnEveryBackend, MatchesTheCpu) {
  const OpCase& c = *GetParam().op;
  const Device device = GetParam().backend->device;
  Generator gen(11);
  const Inputs inputs = c.inputs(gen);
  ASSERT_EQ(inputs.size(), c.differentiable.size()) << c.name;
  Inputs cpu, dev;
  for (size_t i = 0; i < inputs.size(); ++i) {
    cpu.push_back(inputs[i].defined() ? inputs[i].clone() : Tensor());
    dev.push_back(inputs[i].defined() ? inputs[i].to(device) : Tensor());
    if (c.differentiable[i]) {
      cpu.back().set_requires_grad(true);
      dev.back().set_requires_grad(true);
    }
  }
  const Tensor y_cpu = c.op(cpu);
  empty_device_cache(device);  // fresh NaN memory
  const Tensor y_dev = c.op(dev);
  ASSERT_EQ(y_dev.device(), device);
  EXPECT_LE(relative_error(y_dev.to(Device::cpu()), y_cpu), c.tol) << "forward";
  for (size_t i : c.updated_in_place)
    if (inputs[i].defined())
      EXPECT_LE(relative_error(dev[i].to(Device::cpu()), cpu[i]), c.tol) << "input " << i << " updated in place";

  if (std::find(c.differentiable.begin(), c.differentiable.end(), true) == c.differentiable.end()) return;
  const Tensor gy = randn(y_cpu.shape(), gen);
  backward(y_cpu, gy);
  empty_device_cache(device);
  backward(y_dev, gy.to(device));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!c.differentiable[i]) continue;
    ASSERT_TRUE(dev[i].grad().defined()) << "input " << i;
    ASSERT_EQ(dev[i].grad().device(), device) << "input " << i;
    EXPECT_LE(relative_error(dev[i].grad().to(Device::cpu()), cpu[i].grad()), c.tol) << "gradient of input " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpOnEveryBackend, ::testing::ValuesIn(backend_cases()),
                         [](const ::testing::TestParamInfo<BackendCase>& info) {
                           return info.param.backend->name + "_" + info.param.op->name;
                         });

// What does not fit a row: errors, randomness, optimizer state. On cuda-emu.
class DeviceOps : public cuda::testing::EmuScheduleTest {
 protected:
  void SetUp() override {
    EmuScheduleTest::SetUp();
    cuda::init();
  }
};

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
