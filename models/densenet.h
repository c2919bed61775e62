#pragma once
// DenseNet (Huang et al. 2017), torchvision layout (torchvision/models/densenet.py), so
// torchvision state dicts load 1:1:
//   features  conv0 7x7/2 (no bias), norm0, relu0, pool0 max 3x3/2 pad 1,
//             denseblock1..4 (denselayer1..L), transition1..3 between them, norm5
//   classifier  Linear = the head; forward_head: relu, global average, classifier
// A dense layer: norm1, relu1, conv1 1x1 (bn_size * growth), norm2, relu2, conv2 3x3
// (growth), applied to the concatenation of the block input and every earlier layer's output.
// A transition: norm, relu, conv 1x1 (half the channels), pool avg 2x2/2.
//
// Memory-efficient concatenation: a block allocates its output [N, in + L * growth, H, W]
// once (nn::ChannelBuffer) and each layer writes its growth channels into their slice; layer
// i reads the first in + i * growth channels as a view. torchvision's default forward
// instead runs torch.cat over all earlier outputs in every layer (O(L^2) channel copies).
// Old torchvision checkpoints name the layers' children "norm.1", "conv.2", ...; the weight
// loader renames them as torchvision's own loader does (models/weights.h).
#include <memory>
#include <vector>

#include "layers/modules.h"
#include "models/model.h"

namespace scalpel::models {

struct DenseNetConfig {
  int64_t growth_rate = 32;
  std::vector<int64_t> block_layers;  // dense layers per block
  int64_t init_features = 64;
  int64_t bn_size = 4;
};
// densenet121: (32, {6, 12, 24, 16}, 64); 169: {6, 12, 32, 32}; 201: {6, 12, 48, 32}.
DenseNetConfig densenet_config(const std::string& name, int depth);

class DenseLayer : public nn::Module {
 public:
  DenseLayer(int64_t in_channels, int64_t growth_rate, int64_t bn_size);
  Tensor forward(const Tensor& x) override;  // x: [N, in_channels, H, W] -> [N, growth, H, W]
  std::string describe() const override;
  const int64_t in_channels, growth_rate;
  std::shared_ptr<nn::BatchNorm2d> norm1, norm2;
  std::shared_ptr<nn::ActivationLayer> relu1, relu2;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
};

// [N, in, H, W] -> [N, in + layers * growth, H, W] through one ChannelBuffer.
class DenseBlock : public nn::Module {
 public:
  DenseBlock(int64_t layers, int64_t in_channels, int64_t growth_rate, int64_t bn_size);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t in_channels, out_channels;
  std::vector<std::shared_ptr<DenseLayer>> layers;  // denselayer1..L
};

class DenseNet : public Model {
 public:
  DenseNet(std::string name, const DenseNetConfig& config, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;

  std::shared_ptr<nn::Sequential> features_seq;  // "features"
  nn::ModulePtr classifier;                      // Linear, or Identity when headless

 protected:
  Tensor features(const Tensor& x) override { return (*features_seq)(x); }
};

}  // namespace scalpel::models
