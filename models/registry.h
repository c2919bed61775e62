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

// Keras applications' names accepted wherever a model name is (create_model, model_info,
// --model): (alias, registry name), e.g. ("DenseNet201", "densenet201"), ("MobileNet",
// "mobilenet_v1"). Names only: the model keeps the zoo's layout (torchvision's for DenseNet
// and Inception V3, whose Keras versions differ in BatchNorm details).
const std::vector<std::pair<std::string, std::string>>& keras_model_aliases();

// The registry name of `name` (itself, or what its alias stands for). Error for an unknown
// name, suggesting the closest name or alias by edit distance ("did you mean ...") and
// listing the known ones.
std::string canonical_model_name(const std::string& name);

// The description of `name` (or an alias; info.name is the registry name) as built with `options` (mobilenet_v1 with padding torch uses the
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
