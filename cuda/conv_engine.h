#pragma once
// Which implementation runs a convolution on a CUDA device: scalpel's handwritten kernels
// (cuda/kernels/conv.cu, depthwise_conv.cu) or cuDNN (cuda/cudnn.h). Chosen at run time,
// globally and per layer, so that both can be compared in one binary and one run (Caffe's
// per-layer `engine`); cuda::conv2d (cuda/tensor_ops.h) asks resolve_conv_engine each call.
//
//   set_conv_engine(ConvEngine::Cudnn);                          // every convolution
//   set_layer_conv_engine(conv1_weight, ConvEngine::Handwritten);  // except this layer
//
// A layer is identified by its weight tensor: this library sits below layers/ and never sees
// module names. The override follows the weight's TensorImpl, which Module::to(device) keeps,
// and ends when the weight is destroyed. apps/model_flags maps module names ("layer1.0.conv1")
// to weights for the CLI's `--conv-engine cudnn,layer1.0.conv1=handwritten`.
//
// cuDNN cannot be emulated and is never a silent fallback: resolving to cuDNN for a cuda-emu
// or CPU tensor, or in a build without cuDNN, throws scalpel::Error saying how to proceed.
// (Not to be confused with ops::ConvEngine of layers/ops/conv2d.h, the CPU algorithms.)
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace scalpel::cuda {

enum class ConvEngine : uint8_t { Handwritten, Cudnn };

const char* conv_engine_name(ConvEngine engine);  // "handwritten" or "cudnn"
// "handwritten" or "cudnn"; anything else throws naming `text`.
ConvEngine parse_conv_engine(std::string_view text);

// What `--conv-engine` says: "ENGINE[,MODULE=ENGINE...]", e.g. "cudnn,layer1.0.conv1=handwritten"
// (the global engine first, then per-layer overrides by module name, as `scalpel summary`
// prints them). Throws on an empty, duplicated or malformed entry, naming it.
struct ConvEngineSpec {
  ConvEngine global = ConvEngine::Handwritten;
  std::vector<std::pair<std::string, ConvEngine>> layers;  // in the order given
  bool uses(ConvEngine engine) const;  // the global engine or any override is `engine`
};
ConvEngineSpec parse_conv_engine_spec(std::string_view text);

// The global engine (initially Handwritten). Process-wide.
void set_conv_engine(ConvEngine engine);
ConvEngine conv_engine();

// Per-layer override for the convolution whose weight is `weight` (any device); replaces an
// earlier one for the same weight. Process-wide; lasts as long as the weight does.
void set_layer_conv_engine(const Tensor& weight, ConvEngine engine);
void clear_layer_conv_engines();

// The engine a convolution with this weight runs on `device`: its override, else the global
// engine. Throws (cudnn::require) when that is cuDNN and `device` cannot run it.
ConvEngine resolve_conv_engine(const Tensor& weight, Device device);

}  // namespace scalpel::cuda
