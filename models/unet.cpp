#include "models/unet.h"

#include "models/builders.h"
#include "tensor/error.h"

namespace scalpel::models {

UNet::UNet(std::string name, ModelOptions options) : Model("UNet", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  const int64_t w = o.base_width.value_or(64);
  const bool bilinear = o.bilinear.value_or(false);
  const int64_t factor = bilinear ? 2 : 1;
  inc = register_module("inc", std::make_shared<nn::DoubleConv>(o.in_channels, w));
  down1 = register_module("down1", std::make_shared<nn::Down>(w, 2 * w));
  down2 = register_module("down2", std::make_shared<nn::Down>(2 * w, 4 * w));
  down3 = register_module("down3", std::make_shared<nn::Down>(4 * w, 8 * w));
  down4 = register_module("down4", std::make_shared<nn::Down>(8 * w, 16 * w / factor));
  up1 = register_module("up1", std::make_shared<nn::Up>(16 * w, 8 * w / factor, bilinear));
  up2 = register_module("up2", std::make_shared<nn::Up>(8 * w, 4 * w / factor, bilinear));
  up3 = register_module("up3", std::make_shared<nn::Up>(4 * w, 2 * w / factor, bilinear));
  up4 = register_module("up4", std::make_shared<nn::Up>(2 * w, w, bilinear));
  if (o.headless) {
    outc = register_module("outc", std::make_shared<nn::Identity>());
  } else {
    auto out = std::make_shared<nn::Sequential>("OutConv");
    out->add("conv", std::make_shared<nn::Conv2d>(w, o.classes, 1));
    outc = register_module("outc", out);
  }
  // Layers keep PyTorch's default init, as in the reference implementation.
  set_layout("outc", "up4.conv", w, 16);
}

Tensor UNet::features(const Tensor& x) {
  Tensor x1 = (*inc)(x);
  Tensor x2 = (*down1)(x1);
  Tensor x3 = (*down2)(x2);
  Tensor x4 = (*down3)(x3);
  Tensor x5 = (*down4)(x4);
  Tensor y = up1->forward(x5, x4);
  y = up2->forward(y, x3);
  y = up3->forward(y, x2);
  return up4->forward(y, x1);
}

std::shared_ptr<Model> make_unet(const std::string& name, const ModelOptions& options) {
  check_options(name, options, {"base_width", "bilinear"});
  const int64_t w = options.base_width.value_or(64);
  const bool bilinear = options.bilinear.value_or(false);
  // Bilinear mode halves 16w, 8w, 4w and 2w: w must be even there.
  SCALPEL_CHECK(w >= 1 && (!bilinear || w % 2 == 0), "{}: base_width must be positive{}, got {}", name,
                bilinear ? " and even with bilinear up-sampling" : "", w);
  return std::make_shared<UNet>(name, options);
}

}  // namespace scalpel::models
