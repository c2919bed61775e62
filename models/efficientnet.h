#pragma once
// EfficientNet B0..B7 (Tan & Le 2019), torchvision layout (torchvision/models/efficientnet.py):
//   features.0    ConvBNAct 3x3/2 (SiLU) to make_divisible(32 * width, 8)
//   features.1..7 stages of MBConv (layers/blocks.h); channels make_divisible(c * width, 8),
//                 blocks ceil(n * depth); stochastic depth grows linearly with the block index
//                 from 0 to drop_path * (B - 1) / B over the B blocks
//   features.8    ConvBNAct 1x1 (SiLU) to 4x the last stage's channels
//   avgpool, classifier.0 Dropout, classifier.1 = the head
// (width, depth, dropout) per variant as torchvision; B5..B7 use BatchNorm eps 1e-3 and
// momentum 0.01, B0..B4 PyTorch's 1e-5 / 0.1.
#include <memory>

#include "layers/blocks.h"
#include "models/model.h"

namespace scalpel::models {

struct EfficientNetScaling {
  double width, depth, dropout;
  int64_t resolution;  // default input size (torchvision's crop size)
};
// Error naming `variant` unless 0..7.
EfficientNetScaling efficientnet_scaling(int variant);

class EfficientNet : public Model {
 public:
  EfficientNet(std::string name, int variant, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;

  std::shared_ptr<nn::Sequential> features_seq, classifier;
  std::shared_ptr<nn::AdaptiveAvgPool2d> avgpool;

 protected:
  Tensor features(const Tensor& x) override { return (*features_seq)(x); }
};

}  // namespace scalpel::models
