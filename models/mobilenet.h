#pragma once
// MobileNet V1 (Howard et al. 2017) in the layout of Keras applications
// (keras/applications/mobilenet.py): 3x3/2 stem conv, 13 depthwise-separable blocks, global
// average pool, dropout 1e-3, classifier; channels int(c * width); ReLU6; BatchNorm eps 1e-3.
// Names follow the usual PyTorch port (stage1 = stem + 5 blocks, stage2 = 6 blocks, stage3 =
// 2 blocks, fc), so that real PyTorch checkpoints of that port map 1:1:
//   stage1.0     ConvBNAct stem ("0" conv, "1" bn, "2" act)
//   stageS.i     DepthwiseSeparable ("0" dw conv, "1" bn, "2" act, "3" pw conv, "4" bn, "5" act)
//   avgpool, dropout, fc = the head
// padding "keras": TF "SAME" stem conv, zero padding (0, 1, 0, 1) before strided depthwise
//                  convs, BatchNorm eps 1e-3 / momentum 0.01, dropout 1e-3, "tf" preprocessing;
// padding "torch": symmetric padding 1 everywhere, BatchNorm eps 1e-5 / momentum 0.1, no
//                  dropout, ImageNet preprocessing (the PyTorch port's conventions).
//
// MobileNet V2 (Sandler et al. 2018), torchvision layout (torchvision/models/mobilenetv2.py):
//   features.0 ConvBNAct 3x3/2, features.1..17 InvertedResidual, features.18 ConvBNAct 1x1
//   to last_channel; (functional) global average pool; classifier.0 Dropout, classifier.1 =
//   the head. Channels make_divisible(c * width, 8), last_channel 1280 * max(1, width).
#include <memory>

#include "layers/blocks.h"
#include "models/model.h"

namespace scalpel::models {

class MobileNetV1 : public Model {
 public:
  MobileNetV1(std::string name, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;

  std::shared_ptr<nn::Sequential> stage1, stage2, stage3;
  std::shared_ptr<nn::GlobalAvgPool> avgpool;
  std::shared_ptr<nn::Dropout> dropout;
  nn::ModulePtr fc;

 protected:
  Tensor features(const Tensor& x) override { return (*stage3)((*stage2)((*stage1)(x))); }
};

class MobileNetV2 : public Model {
 public:
  MobileNetV2(std::string name, ModelOptions options);
  Tensor forward_head(const Tensor& features) override;

  std::shared_ptr<nn::Sequential> features_seq, classifier;

 protected:
  Tensor features(const Tensor& x) override { return (*features_seq)(x); }
};

}  // namespace scalpel::models
