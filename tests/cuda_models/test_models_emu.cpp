// Whole models through the CUDA code path on the CPU: the cuda-emu device runs every layer's
// handwritten kernels through the emulation, and must agree with the CPU reference ops on the
// same random weights (evaluation mode, one 32x32 image so the suite stays fast).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autograd/autograd.h"
#include "cuda/device.h"
#include "cuda/emu/emu.h"
#include "cuda/tensor_ops.h"
#include "layers/functional.h"
#include "models/registry.h"
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

INSTANTIATE_TEST_SUITE_P(Zoo, CudaEmuModels,
                         ::testing::Values("resnet18", "mobilenet_v2", "efficientnet_b0"));

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CudaEmuWiring, UnwiredOpsSayWhichAndWhere) {
  cuda::init();
  const Tensor x = Tensor::ones({1, 2, 5, 5}).to(kEmu);
  // Upsampling has kernels but no device branch yet: a clear error, never a CPU fall back.
  const std::string up = error_of([&] { nn::upsample(x, 10, 10, "nearest"); });
  EXPECT_NE(up.find("upsample"), std::string::npos) << up;
  EXPECT_NE(up.find("cuda-emu"), std::string::npos) << up;
  // Backward is not wired: the error names the op's backward and the device.
  Tensor w = Tensor::ones({3, 2, 3, 3}).to(kEmu);
  w.set_requires_grad(true);
  const Tensor y = nn::conv2d(x, w, Tensor(), {});
  const std::string back = error_of([&] { backward(y, Tensor::ones(y.shape()).to(kEmu)); });
  EXPECT_NE(back.find("conv2d backward"), std::string::npos) << back;
  EXPECT_NE(back.find("cuda-emu"), std::string::npos) << back;
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
