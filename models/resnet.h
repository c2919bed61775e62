#pragma once
// ResNet V1 (He et al. 2015), torchvision layout (torchvision/models/resnet.py, stride on the
// 3x3 conv of the bottleneck, "V1.5"):
//   conv1 7x7/2 (no bias), bn1, relu, maxpool 3x3/2 pad 1, layer1..layer4 (BasicBlock or
//   Bottleneck, stride 2 in the first block of layer2..4), avgpool, fc = the head.
//
// ResNet V2 (He et al. 2016, pre-activation) with the layout of Keras applications
// (keras/applications/resnet_v2.py), names chosen here after torchvision's:
//   conv1      7x7/2 with bias (Keras: ZeroPadding 3 + valid conv)
//   pool_pad   zero padding 1 (Keras pads the max-pool input with zeros, not -inf)
//   maxpool    3x3/2
//   layer1..4  PreActBottleneck stacks (layers/blocks.h): conv shortcut in the first block,
//              stride 2 in the last block of layer1..3 (1x1 max-pool shortcut there)
//   post_bn, post_relu, avgpool (global), fc = the head
// BatchNorm eps 1.001e-5 and momentum 0.01 (Keras 0.99) throughout.
#include <memory>
#include <vector>

#include "layers/blocks.h"
#include "models/model.h"

namespace scalpel::models {

class ResNet : public Model {
 public:
  // bottleneck: Bottleneck blocks (expansion 4) instead of BasicBlock; blocks per layer.
  ResNet(std::string name, bool bottleneck, const std::vector<int64_t>& blocks, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::ActivationLayer> relu;
  std::shared_ptr<nn::MaxPool2d> maxpool;  // null with the small stem
  std::vector<std::shared_ptr<nn::Sequential>> layers;  // layer1..layer4
  std::shared_ptr<nn::AdaptiveAvgPool2d> avgpool;
  nn::ModulePtr fc;  // Linear, or Identity when headless

 protected:
  Tensor features(const Tensor& x) override;
};

class ResNetV2 : public Model {
 public:
  ResNetV2(std::string name, const std::vector<int64_t>& blocks, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::ZeroPad2d> pool_pad;
  std::shared_ptr<nn::MaxPool2d> maxpool;
  std::vector<std::shared_ptr<nn::Sequential>> layers;
  std::shared_ptr<nn::BatchNorm2d> post_bn;
  std::shared_ptr<nn::ActivationLayer> post_relu;
  std::shared_ptr<nn::GlobalAvgPool> avgpool;
  nn::ModulePtr fc;

 protected:
  Tensor features(const Tensor& x) override;
};

}  // namespace scalpel::models
