#pragma once
// Weight initialisation of the zoo, as the reference implementations do it after building
// (layers start with PyTorch's per-layer defaults, see layers/modules.h). Only matters when
// training from scratch; loaded checkpoints overwrite it. BatchNorm keeps weight 1, bias 0.
// Both do nothing under nn::SkipInitGuard, as the layers' own defaults.
#include <map>
#include <string>

#include "layers/module.h"

namespace scalpel::models {

enum class LinearInit {
  Default,        // keep PyTorch's default (torchvision ResNet)
  Normal001,      // normal(0, 0.01), bias 0 (torchvision VGG, MobileNetV2)
  UniformFanOut,  // uniform(-1/sqrt(out), 1/sqrt(out)), bias 0 (torchvision EfficientNet)
  ZeroBias,       // PyTorch's default weight, bias 0 (torchvision DenseNet)
};

enum class ConvInit {
  KaimingFanOut,  // kaiming_normal_(mode="fan_out"): most torchvision models
  KaimingFanIn,   // kaiming_normal_() (fan_in): torchvision DenseNet
};

// torchvision: every Conv2d kaiming_normal_(gain sqrt(2), fan_out unless told), bias 0.
void init_torchvision(nn::Module& model, LinearInit linear, ConvInit conv = ConvInit::KaimingFanOut);

// torchvision Inception3: every Conv2d and Linear trunc_normal_(0, std, a=-2, b=2) (std <= 0.1)
// with std the module's entry in `stds` (dotted module name), else `default_std`; biases 0.
void init_truncated_normal(nn::Module& model, double default_std, const std::map<std::string, double>& stds);

// Keras defaults: Conv2d and Linear glorot_uniform (fans computed as PyTorch does for the
// PyTorch weight layout), biases 0.
void init_keras(nn::Module& model);

}  // namespace scalpel::models
