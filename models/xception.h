#pragma once
// Xception (Chollet 2017) with the layout of Keras applications (keras/applications/
// xception.py), 299x299 by default (71x71 at least, as Keras). Names follow Keras' layer
// names: block1 and block14 are flat children ("block1_conv1", "block14_sepconv2_act", as in
// Keras' Grad-CAM example), blocks 2-13 are XceptionBlocks whose children drop the "blockN_"
// prefix ("block5.sepconv2_bn"). Every SeparableConv2D is depthwise + pointwise without bias
// and without anything between them (nn::SeparableConv2d); BatchNorm eps 1e-3, momentum 0.01
// (Keras 0.99); convs and pools of blocks 2-13 use TF "SAME" padding, block1's convs "valid".
//   block1_conv1 3x3/2 (32), block1_conv1_bn, block1_conv1_act, block1_conv2 3x3 (64), _bn, _act
//   block2..4    entry flow: 128, 256, 728 channels, stride 2 (max pool + 1x1/2 conv shortcut)
//   block5..12   middle flow: three relu-sepconv-bn, identity shortcut
//   block13      exit: 728 then 1024 channels, stride 2 with a conv shortcut
//   block14_sepconv1 (1536), _bn, _act, block14_sepconv2 (2048), _bn, _act
//   avg_pool (global), predictions = the head (logits; Keras applies the softmax in it)
#include <memory>
#include <vector>

#include "layers/blocks.h"
#include "models/model.h"

namespace scalpel::models {

// Keras' relu -> SeparableConv2D -> BN triples ("sepconv{i}_act", "sepconv{i}", "sepconv{i}_bn";
// the first block of the entry flow starts without the relu), then either the entry/exit
// shortcut (max pool 3x3/2 SAME on the main path, "residual" 1x1/2 conv + "residual_bn" on the
// shortcut) or the identity shortcut of the middle flow.
class XceptionBlock : public nn::Module {
 public:
  XceptionBlock(int64_t in_channels, const std::vector<int64_t>& channels, bool first_relu, bool strided);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t in_channels, out_channels;
  const bool strided;
  struct Step {
    std::shared_ptr<nn::ActivationLayer> act;  // null for the entry flow's first step
    std::shared_ptr<nn::SeparableConv2d> sepconv;
    std::shared_ptr<nn::BatchNorm2d> bn;
  };
  std::vector<Step> steps;
  std::shared_ptr<nn::Conv2d> residual;  // null in the middle flow
  std::shared_ptr<nn::BatchNorm2d> residual_bn;
};

class Xception : public Model {
 public:
  Xception(std::string name, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;

  std::vector<nn::ModulePtr> body;  // block1_conv1 .. block14_sepconv2_act, in order
  std::shared_ptr<nn::GlobalAvgPool> avg_pool;
  nn::ModulePtr predictions;  // Linear, or Identity when headless

 protected:
  Tensor features(const Tensor& x) override;
};

}  // namespace scalpel::models
