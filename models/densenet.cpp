#include "models/densenet.h"

#include "models/builders.h"
#include "models/init.h"
#include "tensor/error.h"

namespace scalpel::models {

DenseNetConfig densenet_config(const std::string& name, int depth) {
  switch (depth) {
    case 121: return {32, {6, 12, 24, 16}, 64, 4};
    case 169: return {32, {6, 12, 32, 32}, 64, 4};
    case 201: return {32, {6, 12, 48, 32}, 64, 4};
    default: fail("{}: DenseNet depth must be 121, 169 or 201, got {}", name, depth);
  }
}

namespace {

std::shared_ptr<nn::ActivationLayer> relu() { return std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}); }

std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0) {
  nn::Conv2dOptions o;
  o.stride = {stride, stride};
  o.padding = nn::Padding2d::symmetric(padding);
  return std::make_shared<nn::Conv2d>(in, out, kernel, o, false);
}

}  // namespace

DenseLayer::DenseLayer(int64_t in_channels, int64_t growth_rate, int64_t bn_size)
    : Module("DenseLayer"), in_channels(in_channels), growth_rate(growth_rate) {
  norm1 = register_module("norm1", std::make_shared<nn::BatchNorm2d>(in_channels));
  relu1 = register_module("relu1", relu());
  conv1 = register_module("conv1", conv(in_channels, bn_size * growth_rate, 1));
  norm2 = register_module("norm2", std::make_shared<nn::BatchNorm2d>(bn_size * growth_rate));
  relu2 = register_module("relu2", relu());
  conv2 = register_module("conv2", conv(bn_size * growth_rate, growth_rate, 3, 1, 1));
}

Tensor DenseLayer::forward(const Tensor& x) {
  SCALPEL_CHECK(x.dim() == 4 && x.size(1) == in_channels, "{} (DenseLayer): expected {} channels, got input {}",
                label(), in_channels, shape_str(x.shape()));
  return (*conv2)((*relu2)((*norm2)((*conv1)((*relu1)((*norm1)(x))))));
}

std::string DenseLayer::describe() const { return fmt::format("{}->+{}", in_channels, growth_rate); }

DenseBlock::DenseBlock(int64_t layer_count, int64_t in_channels, int64_t growth_rate, int64_t bn_size)
    : Module("DenseBlock"), in_channels(in_channels), out_channels(in_channels + layer_count * growth_rate) {
  for (int64_t i = 0; i < layer_count; ++i)
    layers.push_back(register_module(fmt::format("denselayer{}", i + 1),
                                     std::make_shared<DenseLayer>(in_channels + i * growth_rate, growth_rate, bn_size)));
}

Tensor DenseBlock::forward(const Tensor& x) {
  SCALPEL_CHECK(x.dim() == 4 && x.size(1) == in_channels, "{} (DenseBlock): expected {} channels, got input {}",
                label(), in_channels, shape_str(x.shape()));
  nn::ChannelBuffer concat(x, out_channels, label());
  for (auto& layer : layers) concat.append((*layer)(concat.filled()));
  return concat.filled();
}

std::string DenseBlock::describe() const {
  return fmt::format("{}->{}, {} layers", in_channels, out_channels, layers.size());
}

DenseNet::DenseNet(std::string name, const DenseNetConfig& config, ModelOptions options)
    : Model("DenseNet", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  features_seq = std::make_shared<nn::Sequential>();
  features_seq->add("conv0", conv(o.in_channels, config.init_features, 7, 2, 3));
  features_seq->add("norm0", std::make_shared<nn::BatchNorm2d>(config.init_features));
  features_seq->add("relu0", relu());
  nn::Pool2dOptions pool0;
  pool0.kernel = {3, 3};
  pool0.stride = {2, 2};
  pool0.padding = nn::Padding2d::symmetric(1);
  features_seq->add("pool0", std::make_shared<nn::MaxPool2d>(pool0));
  int64_t channels = config.init_features;
  for (size_t b = 0; b < config.block_layers.size(); ++b) {
    auto block = std::make_shared<DenseBlock>(config.block_layers[b], channels, config.growth_rate, config.bn_size);
    features_seq->add(fmt::format("denseblock{}", b + 1), block);
    channels = block->out_channels;
    if (b + 1 == config.block_layers.size()) break;
    auto transition = std::make_shared<nn::Sequential>("Transition");
    transition->add("norm", std::make_shared<nn::BatchNorm2d>(channels));
    transition->add("relu", relu());
    transition->add("conv", conv(channels, channels / 2, 1));
    nn::Pool2dOptions avg;
    avg.kernel = {2, 2};
    avg.stride = {2, 2};
    transition->add("pool", std::make_shared<nn::AvgPool2d>(avg));
    features_seq->add(fmt::format("transition{}", b + 1), transition);
    channels /= 2;
  }
  features_seq->add("norm5", std::make_shared<nn::BatchNorm2d>(channels));
  register_module("features", features_seq);
  classifier = register_module("classifier", o.headless ? nn::ModulePtr(std::make_shared<nn::Identity>())
                                                        : nn::ModulePtr(std::make_shared<nn::Linear>(channels, o.classes)));
  // torchvision: convs kaiming_normal_ (fan_in), Linear default weight with bias 0.
  init_torchvision(*this, LinearInit::ZeroBias, ConvInit::KaimingFanIn);
  // 29x29 is the smallest input that leaves the last transition a 1x1 map.
  set_layout("classifier", "features", channels, 29);
}

Tensor DenseNet::forward_head(const Tensor& f) {
  return (*classifier)(flatten(nn::adaptive_avg_pool2d(nn::relu(f), 1, 1), 1));
}

std::shared_ptr<Model> make_densenet(const std::string& name, int depth, const ModelOptions& options) {
  check_options(name, options, {});
  return std::make_shared<DenseNet>(name, densenet_config(name, depth), options);
}

}  // namespace scalpel::models
