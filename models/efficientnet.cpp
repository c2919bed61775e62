#include "models/efficientnet.h"

#include <cmath>

#include "models/builders.h"
#include "models/init.h"
#include "tensor/error.h"

namespace scalpel::models {

EfficientNetScaling efficientnet_scaling(int variant) {
  static const EfficientNetScaling table[] = {
      {1.0, 1.0, 0.2, 224}, {1.0, 1.1, 0.2, 240}, {1.1, 1.2, 0.3, 288}, {1.2, 1.4, 0.3, 300},
      {1.4, 1.8, 0.4, 380}, {1.6, 2.2, 0.4, 456}, {1.8, 2.6, 0.5, 528}, {2.0, 3.1, 0.5, 600},
  };
  SCALPEL_CHECK(variant >= 0 && variant <= 7, "EfficientNet variant must be b0..b7, got b{}", variant);
  return table[variant];
}

EfficientNet::EfficientNet(std::string name, int variant, ModelOptions options)
    : Model("EfficientNet", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  const EfficientNetScaling scaling = efficientnet_scaling(variant);
  const nn::BatchNormConfig bn = variant >= 5 ? nn::BatchNormConfig{1e-3, 0.01} : nn::BatchNormConfig{};
  auto channels = [&](int64_t c) { return nn::make_divisible(static_cast<double>(c) * scaling.width, 8); };
  auto depth = [&](int64_t n) { return static_cast<int64_t>(std::ceil(static_cast<double>(n) * scaling.depth)); };

  // torchvision's MBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels, num_layers)
  struct Spec {
    double expand;
    int64_t kernel, stride, in, out, n;
  };
  const Spec settings[] = {{1, 3, 1, 32, 16, 1},   {6, 3, 2, 16, 24, 2},   {6, 5, 2, 24, 40, 2},
                           {6, 3, 2, 40, 80, 3},   {6, 5, 1, 80, 112, 3},  {6, 5, 2, 112, 192, 4},
                           {6, 3, 1, 192, 320, 1}};
  int64_t total_blocks = 0;
  for (const Spec& s : settings) total_blocks += depth(s.n);
  const double drop_path = o.drop_path.value_or(0.2);

  features_seq = std::make_shared<nn::Sequential>();
  nn::ConvBNActOptions stem;
  stem.stride = 2;
  stem.activation = nn::Activation{"silu"};
  stem.bn = bn;
  features_seq->add(std::make_shared<nn::ConvBNAct>(o.in_channels, channels(settings[0].in), 3, stem));
  int64_t block_id = 0;
  for (const Spec& s : settings) {
    auto stage = std::make_shared<nn::Sequential>();
    for (int64_t i = 0; i < depth(s.n); ++i) {
      nn::MBConvOptions mb;
      mb.stochastic_depth_prob = drop_path * static_cast<double>(block_id++) / static_cast<double>(total_blocks);
      mb.bn = bn;
      stage->add(std::make_shared<nn::MBConv>(channels(i == 0 ? s.in : s.out), channels(s.out), s.expand, s.kernel,
                                              i == 0 ? s.stride : 1, mb));
    }
    features_seq->add(stage);
  }
  const int64_t last_in = channels(settings[6].out);
  const int64_t last_out = 4 * last_in;
  nn::ConvBNActOptions last;
  last.activation = nn::Activation{"silu"};
  last.bn = bn;
  features_seq->add(std::make_shared<nn::ConvBNAct>(last_in, last_out, 1, last));
  register_module("features", features_seq);

  avgpool = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1, 1));
  classifier = std::make_shared<nn::Sequential>();
  classifier->add(std::make_shared<nn::Dropout>(o.dropout.value_or(scaling.dropout)));
  if (o.headless)
    classifier->add(std::make_shared<nn::Identity>());
  else
    classifier->add(std::make_shared<nn::Linear>(last_out, o.classes));
  register_module("classifier", classifier);
  init_torchvision(*this, LinearInit::UniformFanOut);
  set_layout("classifier.1", "features", last_out, 32);
}

Tensor EfficientNet::forward_head(const Tensor& f) { return (*classifier)(flatten((*avgpool)(f), 1)); }

std::shared_ptr<Model> make_efficientnet(const std::string& name, int variant, const ModelOptions& options) {
  check_options(name, options, {"dropout", "drop_path"});
  return std::make_shared<EfficientNet>(name, variant, options);
}

}  // namespace scalpel::models
