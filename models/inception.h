#pragma once
// Inception V3 (Szegedy et al. 2016), torchvision layout (torchvision/models/inception.py),
// so torchvision state dicts load 1:1. Default input 299x299 (75x75 at least; 299x299 when
// the auxiliary head runs).
//   Conv2d_1a_3x3 /2, Conv2d_2a_3x3, Conv2d_2b_3x3 (pad 1), maxpool1 3x3/2, Conv2d_3b_1x1,
//   Conv2d_4a_3x3, maxpool2 3x3/2, Mixed_5b..5d (InceptionA), Mixed_6a (B), Mixed_6b..6e (C),
//   [AuxLogits (InceptionAux) on Mixed_6e's output, training mode only], Mixed_7a (D),
//   Mixed_7b..7c (E); head: avgpool (global), dropout 0.5, fc = the head.
// Every conv is a BasicConv2d: conv (no bias), bn (eps 1e-3), ReLU. The branches of a block
// are concatenated on channels in torchvision's order.
//
// The auxiliary classifier (options.aux_logits, default on as torchvision) is a second head:
// in training mode forward() still returns the main logits and keeps the auxiliary ones in
// aux_logits() (torchvision returns both); it is absent when headless.
// torchvision's pretrained weights come with transform_input=True, which turns ImageNet-
// normalized input into (x - 0.5) / 0.5: our registry's "tf" preprocessing, so the network
// itself never transforms its input (torchvision's transform_input=False).
#include <memory>

#include "layers/modules.h"
#include "models/model.h"

namespace scalpel::models {

// conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU; children "conv", "bn".
class BasicConv2d : public nn::Module {
 public:
  BasicConv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, int64_t stride = 1,
              std::array<int64_t, 2> padding = {0, 0});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return conv->describe(); }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
};

// A block of parallel branches concatenated on channels. Each branch is a list of the block's
// BasicConv2d children applied in order, optionally after a pooling of the block input, or
// split into two convs whose outputs are concatenated (InceptionE's 1x3 / 3x1 pairs).
class InceptionBlock : public nn::Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  enum class Pool { none, avg3_s1, max3_s2 };
  struct Branch {
    Pool pool = Pool::none;
    std::vector<std::shared_ptr<BasicConv2d>> convs;
    std::vector<std::shared_ptr<BasicConv2d>> split;  // applied side by side to the convs' output
  };
  // type: "InceptionA" .. "InceptionE"
  InceptionBlock(std::string type, int64_t in_channels) : Module(std::move(type)), in_channels(in_channels) {}
  std::shared_ptr<BasicConv2d> add_conv(const std::string& name, int64_t in, int64_t out,
                                        std::array<int64_t, 2> kernel, int64_t stride = 1,
                                        std::array<int64_t, 2> padding = {0, 0});
  const int64_t in_channels;
  int64_t out_channels = 0;
  std::vector<Branch> branches;
};

// avg pool 5x5/3, conv0 1x1 (128), conv1 5x5 (768), global average, fc.
class InceptionAux : public nn::Module {
 public:
  InceptionAux(int64_t in_channels, int64_t classes);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<BasicConv2d> conv0, conv1;
  std::shared_ptr<nn::Linear> fc;
};

class InceptionV3 : public Model {
 public:
  InceptionV3(std::string name, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;
  // Logits of the auxiliary head from the last training-mode forward (undefined otherwise).
  const Tensor& aux_logits() const { return aux_logits_; }

  std::vector<nn::ModulePtr> stem;                       // Conv2d_1a_3x3 .. maxpool2
  std::vector<std::shared_ptr<InceptionBlock>> mixed_6;  // Mixed_5b .. Mixed_6e
  std::shared_ptr<InceptionAux> aux;                     // null without the auxiliary head
  std::vector<std::shared_ptr<InceptionBlock>> mixed_7;  // Mixed_7a .. Mixed_7c
  std::shared_ptr<nn::AdaptiveAvgPool2d> avgpool;
  std::shared_ptr<nn::Dropout> dropout;
  nn::ModulePtr fc;

 protected:
  Tensor features(const Tensor& x) override;

 private:
  Tensor aux_logits_;
};

}  // namespace scalpel::models
