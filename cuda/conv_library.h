#pragma once
// Which implementation runs a convolution on a CUDA device: scalpel's handwritten kernels
// (cuda/kernels/conv.cu, depthwise_conv.cu) or cuDNN (cuda/cudnn.h). Chosen at run time,
// globally and per layer, so that both can be compared in one binary and one run (Caffe's
// per-layer `library`); cuda::conv2d (cuda/tensor_ops.cpp) asks resolve_conv_library each call
// and returns the library it ran, which the backward passes then use.
//
//   set_conv_library(ConvLibrary::Cudnn);                          // every convolution
//   set_layer_conv_library(conv1_weight, ConvLibrary::Handwritten);  // except this layer
//
// A layer is identified by its weight tensor: this library sits below layers/ and never sees
// module names. The override follows the weight's TensorImpl, which Module::to(device) keeps,
// and ends when the weight is destroyed. apps/model_flags maps module names ("layer1.0.conv1")
// to weights for the CLI's `--conv-engine cudnn,layer1.0.conv1=handwritten`.
//
// cuDNN cannot be emulated and is never a silent fallback: resolving to cuDNN for a cuda-emu
// or CPU tensor, or in a build without cuDNN, throws scalpel::Error saying how to proceed.
// (The CLI flag keeps its name, `--conv-engine`.)
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/op_params.h"  // enum ConvLibrary { Handwritten, Cudnn }
#include "tensor/tensor.h"

namespace scalpel::cuda {

const char* conv_library_name(ConvLibrary library);  // "handwritten" or "cudnn"
// "handwritten" or "cudnn"; anything else throws naming `text`.
ConvLibrary parse_conv_library(std::string_view text);

// What `--conv-engine` says: "ENGINE[,MODULE=ENGINE...]", e.g. "cudnn,layer1.0.conv1=handwritten"
// (the global engine first, then per-layer overrides by module name, as `scalpel summary`
// prints them). Throws on an empty, duplicated or malformed entry, naming it.
struct ConvLibrarySpec {
  ConvLibrary global = ConvLibrary::Handwritten;
  std::vector<std::pair<std::string, ConvLibrary>> layers;  // in the order given
  bool uses(ConvLibrary library) const;  // the global engine or any override is `library`
};
ConvLibrarySpec parse_conv_library_spec(std::string_view text);

// The global library (initially Handwritten). Process-wide.
void set_conv_library(ConvLibrary library);
ConvLibrary conv_library();

// Per-layer override for the convolution whose weight is `weight` (any device); replaces an
// earlier one for the same weight. Process-wide; lasts as long as the weight does.
void set_layer_conv_library(const Tensor& weight, ConvLibrary library);
void clear_layer_conv_libraries();

// The library a convolution with this weight runs on `device`: its override, else the global
// library. Throws (cudnn::require) when that is cuDNN and `device` cannot run it.
ConvLibrary resolve_conv_library(const Tensor& weight, Device device);

}  // namespace scalpel::cuda
