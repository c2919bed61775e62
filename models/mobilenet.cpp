#include "models/mobilenet.h"

#include <cmath>

#include "models/builders.h"
#include "models/init.h"
#include "tensor/error.h"

namespace scalpel::models {

// ---------------------------------------------------------------- V1 (Keras layout)

MobileNetV1::MobileNetV1(std::string name, ModelOptions options)
    : Model("MobileNetV1", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  const double width = o.width.value_or(1.0);
  const bool keras = o.padding.value_or("keras") == "keras";
  const nn::Activation act = nn::Activation::parse(o.activation.value_or("relu6"));
  const nn::BatchNormConfig bn = keras ? nn::BatchNormConfig{1e-3, 0.01} : nn::BatchNormConfig{1e-5, 0.1};
  auto channels = [&](int64_t c) { return static_cast<int64_t>(static_cast<double>(c) * width); };

  nn::ConvBNActOptions stem;
  stem.stride = 2;
  stem.same = keras;  // torch: the default symmetric padding 1
  stem.activation = act;
  stem.bn = bn;
  nn::DepthwiseSeparableOptions block;
  block.activation = act;
  block.keras_padding = keras;
  block.bn = bn;

  // (output channels, stride) of the 13 depthwise-separable blocks, split into the stages.
  struct Spec {
    int64_t out, stride;
  };
  const std::vector<std::vector<Spec>> stages = {
      {{64, 1}, {128, 2}, {128, 1}, {256, 2}, {256, 1}},
      {{512, 2}, {512, 1}, {512, 1}, {512, 1}, {512, 1}, {512, 1}},
      {{1024, 2}, {1024, 1}},
  };
  int64_t in = channels(32);
  std::vector<std::shared_ptr<nn::Sequential>> seqs;
  for (size_t s = 0; s < stages.size(); ++s) {
    auto seq = std::make_shared<nn::Sequential>();
    if (s == 0) seq->add(std::make_shared<nn::ConvBNAct>(o.in_channels, in, 3, stem));
    for (const Spec& spec : stages[s]) {
      block.stride = spec.stride;
      seq->add(std::make_shared<nn::DepthwiseSeparable>(in, channels(spec.out), block));
      in = channels(spec.out);
    }
    seqs.push_back(register_module(fmt::format("stage{}", s + 1), seq));
  }
  stage1 = seqs[0];
  stage2 = seqs[1];
  stage3 = seqs[2];
  avgpool = register_module("avgpool", std::make_shared<nn::GlobalAvgPool>());
  dropout = register_module("dropout", std::make_shared<nn::Dropout>(o.dropout.value_or(keras ? 1e-3 : 0.0)));
  fc = register_module("fc", o.headless ? nn::ModulePtr(std::make_shared<nn::Identity>())
                                        : nn::ModulePtr(std::make_shared<nn::Linear>(in, o.classes)));
  init_keras(*this);
  set_layout("fc", "stage3", in, 32);
}

Tensor MobileNetV1::forward_head(const Tensor& f) { return (*fc)((*dropout)((*avgpool)(f))); }

std::shared_ptr<Model> make_mobilenet_v1(const std::string& name, const ModelOptions& options) {
  check_options(name, options, {"width", "activation", "padding", "dropout"});
  const double width = options.width.value_or(1.0);
  SCALPEL_CHECK(width == 0.25 || width == 0.5 || width == 0.75 || width == 1.0,
                "{}: width must be 0.25, 0.5, 0.75 or 1.0, got {:g}", name, width);
  const std::string padding = options.padding.value_or("keras");
  SCALPEL_CHECK(padding == "keras" || padding == "torch", "{}: padding must be keras or torch, got '{}'", name,
                padding);
  const nn::Activation act = nn::Activation::parse(options.activation.value_or("relu6"));
  SCALPEL_CHECK(act.kind == "relu6" || act.kind == "relu" || act.kind == "leaky_relu",
                "{}: activation must be relu6, relu or leaky_relu:<slope>, got '{}'", name, act.str());
  return std::make_shared<MobileNetV1>(name, options);
}

// ---------------------------------------------------------------- V2 (torchvision layout)

MobileNetV2::MobileNetV2(std::string name, ModelOptions options)
    : Model("MobileNetV2", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  const double width = o.width.value_or(1.0);
  // t (expansion), c (channels), n (blocks), s (stride of the first block)
  struct Spec {
    double t;
    int64_t c, n, s;
  };
  const Spec settings[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2},  {6, 64, 4, 2},
                           {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int64_t in = nn::make_divisible(32 * width, 8);
  const int64_t last_channel = nn::make_divisible(1280 * std::max(1.0, width), 8);

  features_seq = std::make_shared<nn::Sequential>();
  nn::ConvBNActOptions stem;
  stem.stride = 2;
  stem.activation = nn::Activation{"relu6"};
  features_seq->add(std::make_shared<nn::ConvBNAct>(o.in_channels, in, 3, stem));
  for (const Spec& spec : settings) {
    const int64_t out = nn::make_divisible(static_cast<double>(spec.c) * width, 8);
    for (int64_t i = 0; i < spec.n; ++i) {
      features_seq->add(std::make_shared<nn::InvertedResidual>(in, out, i == 0 ? spec.s : 1, spec.t));
      in = out;
    }
  }
  nn::ConvBNActOptions last;
  last.activation = nn::Activation{"relu6"};
  features_seq->add(std::make_shared<nn::ConvBNAct>(in, last_channel, 1, last));
  register_module("features", features_seq);

  classifier = std::make_shared<nn::Sequential>();
  classifier->add(std::make_shared<nn::Dropout>(o.dropout.value_or(0.2)));
  if (o.headless)
    classifier->add(std::make_shared<nn::Identity>());
  else
    classifier->add(std::make_shared<nn::Linear>(last_channel, o.classes));
  register_module("classifier", classifier);
  init_torchvision(*this, LinearInit::Normal001);
  set_layout("classifier.1", "features", last_channel, 32);
}

Tensor MobileNetV2::forward_head(const Tensor& f) { return (*classifier)(flatten(nn::adaptive_avg_pool2d(f, 1, 1), 1)); }

std::shared_ptr<Model> make_mobilenet_v2(const std::string& name, const ModelOptions& options) {
  check_options(name, options, {"width", "dropout"});
  const double width = options.width.value_or(1.0);
  SCALPEL_CHECK(width > 0 && width <= 4, "{}: width must be in (0, 4], got {:g}", name, width);
  return std::make_shared<MobileNetV2>(name, options);
}

}  // namespace scalpel::models
