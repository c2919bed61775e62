// The engine switch in cuda::conv2d (cuda/conv_library.h): a per-layer override follows its
// layer's weight, overrides beat the global engine, and cuDNN under cuda-emu is an error at
// the convolution itself, never a silent fallback to the handwritten kernels.
#include <gtest/gtest.h>

#include <string>

#include "autograd/autograd.h"
#include "cuda/conv_library.h"
#include "cuda/tensor_ops.h"
#include "layers/modules.h"
#include "support/errors.h"
#include "tensor/error.h"

namespace scalpel::cuda {
namespace {

const Device kEmu{DeviceType::CUDAEmu, 0};

using scalpel::test::error_of;

// Restores the process-wide engine settings the tests change.
class ConvEngineSwitch : public ::testing::Test {
 protected:
  void SetUp() override { init(); }
  void TearDown() override {
    set_conv_library(ConvLibrary::Handwritten);
    clear_layer_conv_libraries();
  }
};

TEST_F(ConvEngineSwitch, OverrideFollowsItsLayerAcrossDeviceMoves) {
  nn::Conv2d asked_cudnn(3, 4, 3), plain(3, 4, 3);
  set_layer_conv_library(asked_cudnn.weight, ConvLibrary::Cudnn);  // bound on the CPU...
  asked_cudnn.to(kEmu);                                           // ...kept after the move
  plain.to(kEmu);
  EXPECT_EQ(resolve_conv_library(plain.weight, kEmu), ConvLibrary::Handwritten);
  EXPECT_NE(error_of([&] { resolve_conv_library(asked_cudnn.weight, kEmu); }).find("cuDNN cannot be emulated"),
            std::string::npos);

  // Through the layer: the overridden conv refuses to run on cuda-emu, the other one runs.
  const Tensor x = Tensor::ones({1, 3, 6, 6}).to(kEmu);
  EXPECT_NE(error_of([&] { asked_cudnn(x); }).find("--conv-engine handwritten"), std::string::npos);
  EXPECT_EQ(plain(x).shape(), (Shape{1, 4, 4, 4}));
}

TEST_F(ConvEngineSwitch, GlobalCudnnUnderEmulationIsAnErrorAndOverridesWin) {
  nn::Conv2d global(3, 4, 3), kept(3, 4, 3);
  global.to(kEmu);
  kept.to(kEmu);
  set_conv_library(ConvLibrary::Cudnn);
  set_layer_conv_library(kept.weight, ConvLibrary::Handwritten);
  const Tensor x = Tensor::ones({2, 3, 5, 5}).to(kEmu);
  EXPECT_NE(error_of([&] { global(x); }).find("cuDNN cannot be emulated"), std::string::npos);
  const std::vector<double> got = kept(x).to(Device{}).to_vector();
  kept.to(Device{});  // the CPU reference engine
  const std::vector<double> expected = kept(Tensor::ones({2, 3, 5, 5})).to_vector();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-5) << i;
}

TEST_F(ConvEngineSwitch, BackwardRunsOnTheEngineItsForwardUsed) {
  // The global engine is cuDNN, this layer's override handwritten: its forward runs, and its
  // backward must follow the layer's engine, not the global one (which would be an error on
  // cuda-emu). That backward really reaches cuDNN is checked on a GPU only (test_cudnn).
  nn::Conv2d conv(3, 4, 3);
  conv.to(kEmu);
  set_layer_conv_library(conv.weight, ConvLibrary::Handwritten);
  set_conv_library(ConvLibrary::Cudnn);
  Tensor x = Tensor::ones({2, 3, 5, 5}).to(kEmu);
  x.set_requires_grad(true);
  const Tensor y = conv(x);
  backward(y, Tensor::ones(y.shape()).to(kEmu));
  ASSERT_TRUE(x.grad().defined());
  ASSERT_TRUE(conv.weight.grad().defined());
  // d(sum y)/d bias = number of output pixels per channel, for every channel.
  for (const double g : conv.bias.grad().to(Device{}).to_vector()) EXPECT_DOUBLE_EQ(g, 2 * 3 * 3);
}

}  // namespace
}  // namespace scalpel::cuda
