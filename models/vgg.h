#pragma once
// VGG (Simonyan & Zisserman 2014), torchvision layout (torchvision/models/vgg.py):
//   features    3x3 convs (bias, pad 1) [+ BatchNorm] + ReLU, 2x2 max-pools ("M")
//   avgpool     adaptive average pool to 7x7 (so any input >= 32x32 works)
//   classifier  Linear(512*7*7, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU, Dropout,
//               Linear(4096, classes) = "classifier.6", the head
#include <memory>
#include <vector>

#include "layers/modules.h"
#include "models/model.h"

namespace scalpel::models {

class VGG : public Model {
 public:
  // cfg: output channels of each conv, 0 for a max-pool.
  VGG(std::string name, const std::vector<int64_t>& cfg, bool batch_norm, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;

  std::shared_ptr<nn::Sequential> features_seq, classifier;
  std::shared_ptr<nn::AdaptiveAvgPool2d> avgpool;

 protected:
  Tensor features(const Tensor& x) override { return (*features_seq)(x); }
};

}  // namespace scalpel::models
