#include "models/vgg.h"

#include "models/builders.h"
#include "models/init.h"
#include "tensor/error.h"

namespace scalpel::models {

VGG::VGG(std::string name, const std::vector<int64_t>& cfg, bool batch_norm, ModelOptions options)
    : Model("VGG", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  features_seq = std::make_shared<nn::Sequential>();
  int64_t channels = o.in_channels;
  for (int64_t v : cfg) {
    if (v == 0) {
      features_seq->add(std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions{}));
      continue;
    }
    nn::Conv2dOptions conv;
    conv.padding = nn::Padding2d::symmetric(1);
    features_seq->add(std::make_shared<nn::Conv2d>(channels, v, 3, conv));
    if (batch_norm) features_seq->add(std::make_shared<nn::BatchNorm2d>(v));
    features_seq->add(std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
    channels = v;
  }
  register_module("features", features_seq);
  avgpool = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(7, 7));
  const double p = o.dropout.value_or(0.5);
  classifier = std::make_shared<nn::Sequential>();
  classifier->add(std::make_shared<nn::Linear>(channels * 7 * 7, 4096));
  classifier->add(std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
  classifier->add(std::make_shared<nn::Dropout>(p));
  classifier->add(std::make_shared<nn::Linear>(4096, 4096));
  classifier->add(std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
  classifier->add(std::make_shared<nn::Dropout>(p));
  if (o.headless)
    classifier->add(std::make_shared<nn::Identity>());
  else
    classifier->add(std::make_shared<nn::Linear>(4096, o.classes));
  register_module("classifier", classifier);
  init_torchvision(*this, LinearInit::Normal001);
  // Five 2x2 max-pools without padding: 32 pixels leave one.
  set_layout("classifier.6", "features", 4096, 32);
}

Tensor VGG::forward_head(const Tensor& f) { return (*classifier)(flatten((*avgpool)(f), 1)); }

std::shared_ptr<Model> make_vgg(const std::string& name, int depth, bool batch_norm, const ModelOptions& options) {
  check_options(name, options, {"dropout"});
  // torchvision's cfgs "A", "B", "D", "E"; 0 = max-pool.
  std::vector<int64_t> cfg;
  switch (depth) {
    case 11: cfg = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}; break;
    case 13: cfg = {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}; break;
    case 16: cfg = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}; break;
    case 19:
      cfg = {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0};
      break;
    default: fail("{}: VGG depth must be 11, 13, 16 or 19, got {}", name, depth);
  }
  return std::make_shared<VGG>(name, cfg, batch_norm, options);
}

}  // namespace scalpel::models
