#pragma once
// The model zoo by name: `create_model("resnet50", options)`. Names and layouts are those of
// ../shared/interface.md; `list_models()` feeds `scalpel models`.
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace scalpel::models {

struct ModelInfo {
  std::string name;
  std::string task;           // "classification" or "segmentation"
  std::string layout;         // whose names and conventions: "torchvision", "keras", "pytorch" (mobilenet_v1 torch), "milesial"
  int64_t input_size = 224;   // default input height = width (torchvision's crop size)
  int64_t resize_size = 256;  // short side before the centre crop (= input_size: no crop)
  std::string interpolation;  // resize filter of the reference preprocessing: "bilinear" or "bicubic"
  // Normalization preset (data/transforms.h): "imagenet" (torchvision), "tf" ([-1, 1], Keras
  // MobileNet and ResNetV2), "unit" ([0, 1], U-Net).
  std::string preprocess;
};

// Every name, in registry order (families together, small to large).
std::vector<std::string> model_names();

// The description of `name` as built with `options` (mobilenet_v1 with padding torch uses the
// PyTorch port's ImageNet preprocessing). Error listing the known names when unknown.
ModelInfo model_info(const std::string& name, const ModelOptions& options = {});

// Builds `name` with random weights (the reference implementation's initialization, drawn
// from the default generator) in training mode. Error listing the known names when unknown,
// or naming the option a model does not take or cannot use. Build under nn::SkipInitGuard
// (layers/modules.h) when weights are loaded next: the VGGs take seconds to initialize.
std::shared_ptr<Model> create_model(const std::string& name, const ModelOptions& options = {});

struct ModelListing {
  ModelInfo info;
  int64_t trainable = 0;      // learnable parameters (default options, 1000 classes)
  int64_t non_trainable = 0;  // buffers: BatchNorm running mean and variance
};
// Every model with its parameter counts (builds each model once, without initializing it).
const std::vector<ModelListing>& list_models();

}  // namespace scalpel::models
