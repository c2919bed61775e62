#include "models/xception.h"

#include "models/builders.h"
#include "models/init.h"
#include "tensor/error.h"

namespace scalpel::models {

namespace {

const nn::BatchNormConfig kKerasBN{1e-3, 0.01};

std::shared_ptr<nn::BatchNorm2d> keras_bn(int64_t channels) {
  return std::make_shared<nn::BatchNorm2d>(channels, kKerasBN.eps, kKerasBN.momentum);
}

std::shared_ptr<nn::ActivationLayer> relu() { return std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}); }

}  // namespace

XceptionBlock::XceptionBlock(int64_t in_channels, const std::vector<int64_t>& channels, bool first_relu, bool strided)
    : Module("XceptionBlock"), in_channels(in_channels), out_channels(channels.back()), strided(strided) {
  int64_t in = in_channels;
  for (size_t i = 0; i < channels.size(); ++i) {
    const std::string prefix = fmt::format("sepconv{}", i + 1);
    Step step;
    if (i > 0 || first_relu) step.act = register_module(prefix + "_act", relu());
    step.sepconv = register_module(prefix, std::make_shared<nn::SeparableConv2d>(in, channels[i], 3));
    step.bn = register_module(prefix + "_bn", keras_bn(channels[i]));
    steps.push_back(step);
    in = channels[i];
  }
  if (strided) {
    nn::Conv2dOptions o;
    o.stride = {2, 2};
    o.same = true;
    residual = register_module("residual", std::make_shared<nn::Conv2d>(in_channels, out_channels, 1, o, false));
    residual_bn = register_module("residual_bn", keras_bn(out_channels));
  } else {
    SCALPEL_CHECK(in_channels == out_channels, "XceptionBlock: an identity shortcut needs {} == {} channels", in_channels,
                  out_channels);
  }
}

Tensor XceptionBlock::forward(const Tensor& x) {
  SCALPEL_CHECK(x.dim() == 4 && x.size(1) == in_channels, "{} (XceptionBlock): expected {} channels, got input {}",
                label(), in_channels, shape_str(x.shape()));
  Tensor y = x;
  for (Step& s : steps) {
    if (s.act) y = (*s.act)(y);
    y = (*s.bn)((*s.sepconv)(y));
  }
  if (!strided) return add(y, x);
  nn::Pool2dOptions pool;  // Keras MaxPooling2D(3, 2, padding="same"): the padding never wins
  pool.kernel = {3, 3};
  pool.stride = {2, 2};
  pool.padding = nn::same_padding(y.size(2), y.size(3), 3, 3, 2, 2);
  return add(nn::max_pool2d(y, pool, label() + ".pool"), (*residual_bn)((*residual)(x)));
}

std::string XceptionBlock::describe() const {
  return fmt::format("{}->{}{}", in_channels, out_channels, strided ? ", s2" : "");
}

Xception::Xception(std::string name, ModelOptions options) : Model("Xception", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  auto add_body = [&](const std::string& n, nn::ModulePtr m) { body.push_back(register_module(n, std::move(m))); };
  nn::Conv2dOptions s2;
  s2.stride = {2, 2};
  add_body("block1_conv1", std::make_shared<nn::Conv2d>(o.in_channels, 32, 3, s2, false));
  add_body("block1_conv1_bn", keras_bn(32));
  add_body("block1_conv1_act", relu());
  add_body("block1_conv2", std::make_shared<nn::Conv2d>(32, 64, 3, nn::Conv2dOptions{}, false));
  add_body("block1_conv2_bn", keras_bn(64));
  add_body("block1_conv2_act", relu());
  add_body("block2", std::make_shared<XceptionBlock>(64, std::vector<int64_t>{128, 128}, false, true));
  add_body("block3", std::make_shared<XceptionBlock>(128, std::vector<int64_t>{256, 256}, true, true));
  add_body("block4", std::make_shared<XceptionBlock>(256, std::vector<int64_t>{728, 728}, true, true));
  for (int b = 5; b <= 12; ++b)
    add_body(fmt::format("block{}", b), std::make_shared<XceptionBlock>(728, std::vector<int64_t>{728, 728, 728}, true, false));
  add_body("block13", std::make_shared<XceptionBlock>(728, std::vector<int64_t>{728, 1024}, true, true));
  add_body("block14_sepconv1", std::make_shared<nn::SeparableConv2d>(1024, 1536, 3));
  add_body("block14_sepconv1_bn", keras_bn(1536));
  add_body("block14_sepconv1_act", relu());
  add_body("block14_sepconv2", std::make_shared<nn::SeparableConv2d>(1536, 2048, 3));
  add_body("block14_sepconv2_bn", keras_bn(2048));
  add_body("block14_sepconv2_act", relu());
  avg_pool = register_module("avg_pool", std::make_shared<nn::GlobalAvgPool>());
  predictions = register_module("predictions", o.headless ? nn::ModulePtr(std::make_shared<nn::Identity>())
                                                          : nn::ModulePtr(std::make_shared<nn::Linear>(2048, o.classes)));
  init_keras(*this);
  // The last ReLU's map is Keras' Grad-CAM example layer for Xception.
  set_layout("predictions", "block14_sepconv2_act", 2048, 71);
}

Tensor Xception::features(const Tensor& x) {
  Tensor y = x;
  for (auto& m : body) y = (*m)(y);
  return y;
}

Tensor Xception::forward_head(const Tensor& f) { return (*predictions)((*avg_pool)(f)); }

std::shared_ptr<Model> make_xception(const std::string& name, const ModelOptions& options) {
  check_options(name, options, {});
  return std::make_shared<Xception>(name, options);
}

}  // namespace scalpel::models
