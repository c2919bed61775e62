#pragma once
// U-Net (Ronneberger et al. 2015) with "same" padding, so the mask has the input's size, in
// the layout of milesial/Pytorch-UNet (unet/unet_model.py), whose checkpoints map 1:1:
//   inc         DoubleConv(in_channels, w)                 w = base_width (64)
//   down1..4    max-pool 2x2 + DoubleConv: w -> 2w -> 4w -> 8w -> 16w (8w when bilinear)
//   up1..4      Up: 2x2 transposed conv (or bilinear x2), pad to the skip, concat, DoubleConv
//   outc.conv   1x1 conv to `classes` channels = the head
// DoubleConv = (3x3 conv without bias, BatchNorm, ReLU) x 2 (layers/blocks.h).
// Any input of at least 16x16 works: odd sizes are zero-padded after up-sampling.
#include <memory>

#include "layers/blocks.h"
#include "models/model.h"

namespace scalpel::models {

class UNet : public Model {
 public:
  UNet(std::string name, ModelOptions options);
  // Mask logits [N, classes, H, W] (headless: the last decoder map [N, base_width, H, W]).
  Tensor forward_head(const Tensor& features) override { return (*outc)(features); }

  std::shared_ptr<nn::DoubleConv> inc;
  std::shared_ptr<nn::Down> down1, down2, down3, down4;
  std::shared_ptr<nn::Up> up1, up2, up3, up4;
  nn::ModulePtr outc;  // Sequential("OutConv") with child "conv", or Identity when headless

 protected:
  // The last decoder map, output of up4 (its DoubleConv "up4.conv", for forward hooks).
  Tensor features(const Tensor& x) override;
};

}  // namespace scalpel::models
