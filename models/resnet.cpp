#include "models/resnet.h"

#include "models/builders.h"
#include "models/init.h"
#include "tensor/error.h"

namespace scalpel::models {

namespace {

nn::ModulePtr make_head(const ModelOptions& o, int64_t features) {
  if (o.headless) return std::make_shared<nn::Identity>();
  return std::make_shared<nn::Linear>(features, o.classes);
}

std::vector<int64_t> resnet_blocks(const std::string& name, int depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
    default: fail("{}: ResNet depth must be 18, 34, 50, 101 or 152, got {}", name, depth);
  }
}

}  // namespace

// ---------------------------------------------------------------- V1 (torchvision)

ResNet::ResNet(std::string name, bool bottleneck, const std::vector<int64_t>& blocks, ModelOptions options)
    : Model("ResNet", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  const std::string stem_kind = o.stem.value_or("imagenet");
  SCALPEL_CHECK(stem_kind == "imagenet" || stem_kind == "small", "{}: unknown stem '{}' (imagenet, small)",
                this->name(), stem_kind);
  const bool small = stem_kind == "small";
  nn::Conv2dOptions stem;
  stem.stride = small ? std::array<int64_t, 2>{1, 1} : std::array<int64_t, 2>{2, 2};
  stem.padding = nn::Padding2d::symmetric(small ? 1 : 3);
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(o.in_channels, 64, small ? 3 : 7, stem, false));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(64));
  relu = register_module("relu", std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
  if (!small) {
    nn::Pool2dOptions pool;
    pool.kernel = {3, 3};
    pool.stride = {2, 2};
    pool.padding = nn::Padding2d::symmetric(1);
    maxpool = register_module("maxpool", std::make_shared<nn::MaxPool2d>(pool));
  }

  const int64_t expansion = bottleneck ? nn::Bottleneck::expansion : nn::BasicBlock::expansion;
  int64_t in = 64;
  for (size_t stage = 0; stage < blocks.size(); ++stage) {
    const int64_t planes = int64_t{64} << stage;
    auto layer = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < blocks[stage]; ++b) {
      const int64_t stride = (b == 0 && stage > 0) ? 2 : 1;
      if (bottleneck)
        layer->add(std::make_shared<nn::Bottleneck>(in, planes, stride));
      else
        layer->add(std::make_shared<nn::BasicBlock>(in, planes, stride));
      in = planes * expansion;
    }
    layers.push_back(register_module(fmt::format("layer{}", stage + 1), layer));
  }
  avgpool = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1, 1));
  fc = register_module("fc", make_head(o, in));
  init_torchvision(*this, LinearInit::Default);
  set_layout("fc", "layer4", in, small ? 8 : 32);
}

Tensor ResNet::features(const Tensor& x) {
  Tensor y = (*relu)((*bn1)((*conv1)(x)));
  if (maxpool) y = (*maxpool)(y);
  for (auto& layer : layers) y = (*layer)(y);
  return y;
}

Tensor ResNet::forward_head(const Tensor& f) { return (*fc)(flatten((*avgpool)(f), 1)); }

std::shared_ptr<Model> make_resnet(const std::string& name, int depth, const ModelOptions& options) {
  check_options(name, options, {"stem"});
  return std::make_shared<ResNet>(name, depth >= 50, resnet_blocks(name, depth), options);
}

// ---------------------------------------------------------------- V2 (Keras)

ResNetV2::ResNetV2(std::string name, const std::vector<int64_t>& blocks, ModelOptions options)
    : Model("ResNetV2", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  const nn::BatchNormConfig bn{1.001e-5, 0.01};
  nn::Conv2dOptions stem;
  stem.stride = {2, 2};
  stem.padding = nn::Padding2d::symmetric(3);
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(o.in_channels, 64, 7, stem, true));
  pool_pad = register_module("pool_pad", std::make_shared<nn::ZeroPad2d>(nn::Padding2d::symmetric(1)));
  nn::Pool2dOptions pool;
  pool.kernel = {3, 3};
  pool.stride = {2, 2};
  maxpool = register_module("maxpool", std::make_shared<nn::MaxPool2d>(pool));

  // Keras stack2(filters, blocks, stride1): block 1 has the conv shortcut, the last block
  // the stride (2, except in the last stack).
  int64_t in = 64;
  for (size_t stage = 0; stage < blocks.size(); ++stage) {
    const int64_t filters = int64_t{64} << stage;
    const int64_t last_stride = stage + 1 < blocks.size() ? 2 : 1;
    auto layer = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < blocks[stage]; ++b) {
      const int64_t stride = b + 1 == blocks[stage] ? last_stride : 1;
      layer->add(std::make_shared<nn::PreActBottleneck>(in, filters, stride, /*conv_shortcut=*/b == 0, bn));
      in = filters * nn::PreActBottleneck::expansion;
    }
    layers.push_back(register_module(fmt::format("layer{}", stage + 1), layer));
  }
  post_bn = register_module("post_bn", std::make_shared<nn::BatchNorm2d>(in, bn.eps, bn.momentum));
  post_relu = register_module("post_relu", std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
  avgpool = register_module("avgpool", std::make_shared<nn::GlobalAvgPool>());
  fc = register_module("fc", make_head(o, in));
  init_keras(*this);
  set_layout("fc", "post_relu", in, 32);
}

Tensor ResNetV2::features(const Tensor& x) {
  Tensor y = (*maxpool)((*pool_pad)((*conv1)(x)));
  for (auto& layer : layers) y = (*layer)(y);
  return (*post_relu)((*post_bn)(y));
}

Tensor ResNetV2::forward_head(const Tensor& f) { return (*fc)((*avgpool)(f)); }

std::shared_ptr<Model> make_resnet_v2(const std::string& name, int depth, const ModelOptions& options) {
  check_options(name, options, {});
  SCALPEL_CHECK(depth == 50 || depth == 101 || depth == 152, "{}: ResNet V2 depth must be 50, 101 or 152, got {}",
                name, depth);
  return std::make_shared<ResNetV2>(name, resnet_blocks(name, depth), options);
}

}  // namespace scalpel::models
