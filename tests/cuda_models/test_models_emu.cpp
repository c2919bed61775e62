// Whole models through the CUDA code path on the CPU: the cuda-emu device runs every layer's
// handwritten kernels through the emulation, and must agree with the CPU reference ops on the
// same random weights: evaluation-mode forward on one 32x32 image, and one SGD training step
// (forward with batch statistics, cross entropy, backward, fused update) on two, so the
// suite stays fast.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autograd/autograd.h"
#include "cuda/device.h"
#include "cuda/emu/emu.h"
#include "cuda/tensor_ops.h"
#include "layers/functional.h"
#include "layers/loss.h"
#include "layers/optim.h"
#include "models/fuse.h"
#include "models/registry.h"
#include "support/errors.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

const Device kEmu{DeviceType::CUDAEmu, 0};

class CudaEmuModels : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { cuda::init(); }
  // One thread order: the kernel tests run all three; here the point is the wiring.
  cuda::emu::ScheduleGuard schedule_{cuda::emu::Schedule::Forward};
};

TEST_P(CudaEmuModels, ForwardMatchesCpu) {
  models::ModelOptions options;
  options.classes = 10;
  auto model = models::create_model(GetParam(), options);
  model->eval();
  Generator gen(7);
  const Tensor x = randn({1, 3, 32, 32}, gen);
  NoGradGuard no_grad;
  const Tensor expected = (*model)(x);

  cuda::reset_transfer_stats();
  model->to(kEmu);
  const Tensor y_device = (*model)(x.to(kEmu));
  EXPECT_EQ(y_device.device(), kEmu);
  const Tensor y = y_device.to(Device::cpu());
  const cuda::TransferStats stats = cuda::transfer_stats();

  ASSERT_EQ(y.shape(), expected.shape());
  const double scale = std::max(1.0, ops::max_abs_diff(expected, Tensor::zeros(expected.shape())));
  EXPECT_LT(ops::max_abs_diff(y, expected), 1e-4 * scale) << GetParam();
  // Every parameter and buffer went up once, the input once, the logits came back once:
  // nothing else crossed (no silent migration).
  const size_t tensors = model->state_dict().size();
  EXPECT_EQ(stats.h2d_copies, tensors + 1) << cuda::transfer_summary(stats);
  EXPECT_EQ(stats.d2h_copies, 1u) << cuda::transfer_summary(stats);
  EXPECT_EQ(stats.d2h_bytes, static_cast<uint64_t>(y.nbytes()));
}

// Relative error of a tensor on any device against the CPU one: max |diff| / max(1, max |want|).
double relative_error(const Tensor& got, const Tensor& want) {
  const double scale = std::max(1.0, ops::max_abs_diff(want, Tensor::zeros(want.shape())));
  return ops::max_abs_diff(got.to(Device::cpu()), want) / scale;
}

// The loss of one SGD step (momentum, weight decay) on `model`'s device; leaves the gradients.
double train_step(models::Model& model, const Tensor& x, const Tensor& labels) {
  nn::SGD sgd(nn::trainable_groups(model, 0.05, 1e-4), nn::SGDOptions{0.9, 0, false});
  const Device device = model.parameters().front().device();
  const Tensor loss = nn::cross_entropy(model(x.to(device)), labels.to(device));
  backward(loss);
  sgd.step();
  return loss.to(Device::cpu()).item();
}

// Float32 through a freshly initialized network amplifies rounding (the last BatchNorms see
// three values per channel), so the device is judged against a float64 run of the CPU model:
// it must be as close to it as the CPU's own float32 run, up to a factor 4 and a 1e-4 floor
// (measured: up to 2.1x for resnet18, 3.2x on the worst mobilenet_v2 parameter).
void expect_as_close_as_cpu(const Tensor& device, const Tensor& cpu32, const Tensor& cpu64, const std::string& what) {
  const Tensor exact = cpu64.to(DType::F32);
  EXPECT_LE(relative_error(device, exact), 4 * relative_error(cpu32, exact) + 1e-4) << what;
}

class CudaEmuTraining : public CudaEmuModels {};

TEST_P(CudaEmuTraining, OneSgdTrainingStepMatchesCpu) {
  models::ModelOptions options;
  options.classes = 3;
  // The device draws other dropout masks than the CPU (tests/cuda covers them): none here.
  if (GetParam() != "resnet18") options.dropout = 0.0;
  if (GetParam() == "efficientnet_b0") options.drop_path = 0.0;
  manual_seed(3);  // the same initialization whichever tests ran before
  auto cpu_model = models::create_model(GetParam(), options);
  auto f64_model = models::create_model(GetParam(), options);
  auto dev_model = models::create_model(GetParam(), options);
  for (auto* m : {cpu_model.get(), f64_model.get(), dev_model.get()}) {
    m->train();
    m->load_state_dict(cpu_model->state_dict());
  }
  f64_model->to(DType::F64);
  dev_model->to(kEmu);
  Generator gen(5);
  // Three images: with two, the last BatchNorms (a 1x1 plane) would give pure rounding noise
  // as their input gradient (x_hat = +-1 makes it vanish exactly).
  const Tensor x = randn({3, 3, 32, 32}, gen);
  const Tensor labels = Tensor::from_vector({2, 0, 1}, {3}, DType::I64);

  const double loss_cpu = train_step(*cpu_model, x, labels);
  const double loss_dev = train_step(*dev_model, x, labels);
  const double loss_f64 = train_step(*f64_model, x.to(DType::F64), labels);
  EXPECT_LE(std::abs(loss_dev - loss_f64),
            4 * std::abs(loss_cpu - loss_f64) + 1e-4 * std::max(1.0, std::abs(loss_f64)));

  // Every parameter's gradient, then every parameter and buffer after the update (running
  // statistics included).
  const auto cpu_params = cpu_model->named_parameters(), dev_params = dev_model->named_parameters();
  const auto f64_params = f64_model->named_parameters();
  ASSERT_EQ(cpu_params.size(), dev_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const std::string& name = cpu_params[i].name;
    ASSERT_EQ(dev_params[i].tensor.grad().device(), kEmu) << name;
    expect_as_close_as_cpu(dev_params[i].tensor.grad(), cpu_params[i].tensor.grad(), f64_params[i].tensor.grad(),
                           name + " grad");
  }
  const auto cpu_state = cpu_model->state_dict(), dev_state = dev_model->state_dict();
  const auto f64_state = f64_model->state_dict();
  for (size_t i = 0; i < cpu_state.size(); ++i) {
    const Tensor& want = cpu_state[i].tensor;
    if (want.dtype() == DType::F32)
      expect_as_close_as_cpu(dev_state[i].tensor, want, f64_state[i].tensor, cpu_state[i].name);
    else  // num_batches_tracked
      EXPECT_EQ(dev_state[i].tensor.to_vector(), want.to_vector()) << cpu_state[i].name;
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, CudaEmuModels,
                         ::testing::Values("resnet18", "mobilenet_v2", "efficientnet_b0"));
// resnet18 takes seconds; mobilenet_v2 and efficientnet_b0 about a minute of CPU each under
// emulation (every depthwise and BatchNorm barrier is a fiber switch), which `make test`
// affords: the issue asks for a training step of all three through cuda-emu.
INSTANTIATE_TEST_SUITE_P(Zoo, CudaEmuTraining, ::testing::Values("resnet18"));
INSTANTIATE_TEST_SUITE_P(Slow, CudaEmuTraining, ::testing::Values("mobilenet_v2", "efficientnet_b0"));

// U-Net's own ops (max pooling, transposed convolution, padding, concatenation) on the device,
// at width 8 so the test stays fast; evaluation mode as the forward tests above.
TEST(CudaEmuUnet, ForwardMatchesCpu) {
  cuda::init();
  cuda::emu::ScheduleGuard schedule(cuda::emu::Schedule::Forward);
  models::ModelOptions options;
  options.classes = 2;
  options.base_width = 8;
  auto model = models::create_model("unet", options);
  model->eval();
  Generator gen(9);
  const Tensor x = randn({1, 3, 36, 20}, gen);  // odd pooled sizes make the up path pad
  NoGradGuard no_grad;
  const Tensor expected = (*model)(x);
  model->to(kEmu);
  const Tensor y = (*model)(x.to(kEmu)).to(Device::cpu());
  ASSERT_EQ(y.shape(), expected.shape());
  const double scale = std::max(1.0, ops::max_abs_diff(expected, Tensor::zeros(expected.shape())));
  EXPECT_LT(ops::max_abs_diff(y, expected), 1e-4 * scale);
}

using scalpel::test::error_of;

// The training fusion leaves a model on a device alone (it would probe it with CPU zeros; the
// fused op there is the two ops anyway), and marks the same model's pairs on the CPU.
TEST(CudaEmuWiring, TrainingFusionLeavesADeviceModelAlone) {
  cuda::init();
  auto model = models::create_model("densenet121");
  model->to(kEmu);
  EXPECT_EQ(models::fuse_for_training(*model, {1, 3, 32, 32}), 0);
  auto on_cpu = models::create_model("densenet121");
  EXPECT_GT(models::fuse_for_training(*on_cpu, {1, 3, 32, 32}), 0);
}

TEST(CudaEmuWiring, UnwiredOpsSayWhichAndWhere) {
  cuda::init();
  const Tensor x = Tensor::ones({1, 2, 5, 5}).to(kEmu);
  // Bilinear upsampling with align_corners has no kernel: a clear error, never a CPU fall back.
  const std::string up = error_of([&] { nn::upsample(x, 10, 10, "bilinear", /*align_corners=*/true); });
  EXPECT_NE(up.find("upsample"), std::string::npos) << up;
  EXPECT_NE(up.find("cuda-emu"), std::string::npos) << up;
  // Nor has adaptive average pooling over unequal windows (asymmetric conv padding has one now:
  // tests/layer_ops/op_cases.h runs the asymmetric and SAME conv cases on every backend).
  const std::string pool = error_of([&] { nn::adaptive_avg_pool2d(x, 3, 3); });
  EXPECT_NE(pool.find("adaptive_avg_pool2d 5x5 -> 3x3"), std::string::npos) << pool;
  EXPECT_NE(pool.find("cuda-emu"), std::string::npos) << pool;
  // Mixed devices are refused with both named.
  const std::string mixed = error_of([&] { nn::conv2d(x, Tensor::ones({3, 2, 3, 3}), Tensor(), {}); });
  EXPECT_NE(mixed.find("cpu"), std::string::npos) << mixed;
}

TEST(CudaEmuWiring, ResidualAddBroadcastsOnTheDevice) {
  cuda::init();
  Generator gen(3);
  const Tensor a = randn({2, 3, 4, 4}, gen);
  const Tensor b = randn({2, 3, 1, 1}, gen);  // squeeze-excite scale
  const Tensor sum_d = add(a.to(kEmu), b.to(kEmu));
  const Tensor prod_d = mul(a.to(kEmu), b.to(kEmu));
  EXPECT_EQ(sum_d.device(), kEmu);
  EXPECT_LT(ops::max_abs_diff(sum_d.to(Device::cpu()), ops::add(a, b)), 1e-6);
  EXPECT_LT(ops::max_abs_diff(prod_d.to(Device::cpu()), ops::mul(a, b)), 1e-6);
}

}  // namespace
}  // namespace scalpel
