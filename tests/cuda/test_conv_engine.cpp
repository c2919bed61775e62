// The convolution engine setting (cuda/conv_library.h, --conv-engine): parsing, and the rule
// that cuDNN is never emulated and never a silent fallback. test_conv_engine_switch.cpp runs
// layers through the switch.
#include <gtest/gtest.h>

#include <string>

#include "cuda/conv_library.h"
#include "cuda/cudnn.h"
#include "support/cli_runner.h"
#include "support/errors.h"
#include "tensor/error.h"

namespace scalpel::cuda {
namespace {

using scalpel::test::error_of;

TEST(ConvEngineParse, NamesBothEnginesAndRejectsOthers) {
  EXPECT_EQ(parse_conv_library("handwritten"), ConvLibrary::Handwritten);
  EXPECT_EQ(parse_conv_library("cudnn"), ConvLibrary::Cudnn);
  EXPECT_STREQ(conv_library_name(ConvLibrary::Cudnn), "cudnn");
  EXPECT_STREQ(conv_library_name(ConvLibrary::Handwritten), "handwritten");
  EXPECT_NE(error_of([] { parse_conv_library("cuDNN"); }).find("unknown convolution engine 'cuDNN'"),
            std::string::npos);
}

TEST(ConvEngineParse, GlobalEngineThenPerLayerOverrides) {
  const ConvLibrarySpec spec = parse_conv_library_spec("cudnn, layer1.0.conv1=handwritten,features.0.0=cudnn");
  EXPECT_EQ(spec.global, ConvLibrary::Cudnn);
  ASSERT_EQ(spec.layers.size(), 2u);
  EXPECT_EQ(spec.layers[0].first, "layer1.0.conv1");
  EXPECT_EQ(spec.layers[0].second, ConvLibrary::Handwritten);
  EXPECT_EQ(spec.layers[1].first, "features.0.0");
  EXPECT_EQ(spec.layers[1].second, ConvLibrary::Cudnn);

  const ConvLibrarySpec only = parse_conv_library_spec("handwritten");
  EXPECT_TRUE(only.layers.empty());
  EXPECT_FALSE(only.uses(ConvLibrary::Cudnn));
  EXPECT_TRUE(parse_conv_library_spec("handwritten,conv1=cudnn").uses(ConvLibrary::Cudnn));
}

TEST(ConvEngineParse, MalformedSpecsNameTheCulprit) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty entry"},
      {"cudnn,", "empty entry"},
      {"layer1.0.conv1=cudnn", "must start with the global engine"},
      {"cudnn,layer1", "'layer1' is not MODULE=ENGINE"},
      {"cudnn,=handwritten", "names no module"},
      {"cudnn,conv1=fast", "unknown convolution engine 'fast'"},
      {"cudnn,conv1=cudnn,conv1=handwritten", "module 'conv1' is given twice"},
  };
  for (const auto& [text, message] : cases)
    EXPECT_NE(error_of([&] { parse_conv_library_spec(text); }).find(message), std::string::npos)
        << "'" << text << "' should fail with: " << message;
}

TEST(CudnnRequire, RefusesOtherDevicesSayingWhyAndHowToProceed) {
  EXPECT_NE(error_of([] { cudnn::require(Device{DeviceType::CUDAEmu, 0}); }).find("cuDNN cannot be emulated"),
            std::string::npos);
  EXPECT_NE(error_of([] { cudnn::require(Device{}); }).find("CUDA devices only, not on cpu"), std::string::npos);
  const std::string on_gpu = error_of([] { cudnn::require(Device{DeviceType::CUDA, 0}); });
  if (on_gpu.empty()) GTEST_SKIP() << "cuDNN works on this machine's GPU; nothing to refuse";
  if (!cudnn::compiled())
    EXPECT_NE(on_gpu.find("built without cuDNN"), std::string::npos) << on_gpu;
  else
    EXPECT_NE(on_gpu.find("--device cpu"), std::string::npos) << on_gpu;  // no GPU: the device check
}

TEST(ConvEngineCli, CudnnUnderCudaEmuIsAnError) {
  const auto r = test::run_cli({"bench", "--model", "resnet18", "--size", "32", "32", "--iters", "1",
                                "--device", "cuda-emu", "--conv-engine", "cudnn"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("cuDNN cannot be emulated"), std::string::npos) << r.err;
}

TEST(ConvEngineCli, UnknownLayerIsAnError) {
  const auto r = test::run_cli({"bench", "--model", "resnet18", "--size", "32", "32", "--iters", "1",
                                "--device", "cuda-emu", "--conv-engine", "handwritten,layer9.conv=handwritten"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no convolution named 'layer9.conv'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace scalpel::cuda
