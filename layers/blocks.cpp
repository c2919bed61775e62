#include "layers/blocks.h"

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "layers/ops/conv2d.h"
#include "tensor/cpu_isa.h"
#include "tensor/error.h"

namespace scalpel::nn {

int64_t make_divisible(double v, int64_t divisor, int64_t min_value) {
  SCALPEL_CHECK(divisor > 0, "make_divisible: divisor must be positive, got {}", divisor);
  if (min_value <= 0) min_value = divisor;
  // Python: max(min_value, int(v + divisor / 2) // divisor * divisor)
  int64_t rounded = static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor;
  rounded = std::max(min_value, rounded);
  if (static_cast<double>(rounded) < 0.9 * v) rounded += divisor;
  return rounded;
}

namespace {

Conv2dOptions conv_options(int64_t stride, Padding2d padding, int64_t groups = 1, int64_t dilation = 1) {
  Conv2dOptions o;
  o.stride = {stride, stride};
  o.padding = padding;
  o.groups = groups;
  o.dilation = {dilation, dilation};
  return o;
}

std::shared_ptr<BatchNorm2d> make_bn(int64_t channels, const BatchNormConfig& bn) {
  return std::make_shared<BatchNorm2d>(channels, bn.eps, bn.momentum);
}

bool is_identity(const Activation& a) { return a.kind == "identity"; }

}  // namespace

// ---------------------------------------------------------------- ConvBNAct

ConvBNAct::ConvBNAct(int64_t in_channels, int64_t out_channels, int64_t kernel, const ConvBNActOptions& options)
    : Sequential("ConvBNAct") {
  Conv2dOptions co = conv_options(
      options.stride, options.padding.value_or(Padding2d::symmetric((kernel - 1) / 2 * options.dilation)),
      options.groups, options.dilation);
  co.same = options.same;
  conv = std::make_shared<Conv2d>(in_channels, out_channels, kernel, co, /*bias=*/!options.norm);
  add(conv);
  if (options.norm) {
    bn = make_bn(out_channels, options.bn);
    add(bn);
  }
  if (!is_identity(options.activation)) add(std::make_shared<ActivationLayer>(options.activation));
}

// ---------------------------------------------------------------- DepthwiseSeparable

DepthwiseSeparable::DepthwiseSeparable(int64_t in_channels, int64_t out_channels,
                                       const DepthwiseSeparableOptions& options)
    : Sequential("DepthwiseSeparable"), in_channels(in_channels), out_channels(out_channels), options(options) {
  SCALPEL_CHECK(options.stride == 1 || options.stride == 2, "DepthwiseSeparable: stride must be 1 or 2, got {}",
                options.stride);
  SCALPEL_CHECK(options.depth_multiplier > 0, "DepthwiseSeparable: depth_multiplier must be positive, got {}",
                options.depth_multiplier);
  const bool keras_strided = options.keras_padding && options.stride == 2;
  const Padding2d padding = keras_strided ? Padding2d{0, 1, 0, 1} : Padding2d::symmetric(1);
  const int64_t dw_channels = in_channels * options.depth_multiplier;
  add(std::make_shared<Conv2d>(in_channels, dw_channels, 3, conv_options(options.stride, padding, in_channels), false));
  add(make_bn(dw_channels, options.bn));
  add(std::make_shared<ActivationLayer>(options.activation));
  add(std::make_shared<Conv2d>(dw_channels, out_channels, 1, conv_options(1, {}), false));
  add(make_bn(out_channels, options.bn));
  add(std::make_shared<ActivationLayer>(options.activation));
}

std::string DepthwiseSeparable::describe() const {
  return fmt::format("{}->{}, s{}{}, {}", in_channels, out_channels, options.stride,
                     options.depth_multiplier > 1 ? fmt::format(", x{}", options.depth_multiplier) : "",
                     options.keras_padding ? "keras padding" : "torch padding");
}

// ---------------------------------------------------------------- SeparableConv2d

SeparableConv2d::SeparableConv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, bool bias)
    : Module("SeparableConv2d"), in_channels(in_channels), out_channels(out_channels), kernel(kernel), stride(stride) {
  Conv2dOptions dw;
  dw.stride = {stride, stride};
  dw.same = true;
  dw.groups = in_channels;
  depthwise = register_module("depthwise", std::make_shared<Conv2d>(in_channels, in_channels, kernel, dw, false));
  pointwise = register_module("pointwise", std::make_shared<Conv2d>(in_channels, out_channels, 1, Conv2dOptions{}, bias));
}

std::string SeparableConv2d::describe() const {
  return fmt::format("{}->{}, k{}x{}, s{}, same", in_channels, out_channels, kernel, kernel, stride);
}

// ---------------------------------------------------------------- SqueezeExcite

SqueezeExcite::SqueezeExcite(int64_t channels, int64_t squeeze_channels, Activation activation,
                             Activation scale_activation)
    : Module("SqueezeExcite"), channels(channels), squeeze_channels(squeeze_channels),
      activation(std::move(activation)), scale_activation(std::move(scale_activation)) {
  fc1 = register_module("fc1", std::make_shared<Conv2d>(channels, squeeze_channels, 1));
  fc2 = register_module("fc2", std::make_shared<Conv2d>(squeeze_channels, channels, 1));
}

Tensor SqueezeExcite::forward(const Tensor& x) {
  SCALPEL_CHECK(x.dim() == 4 && x.size(1) == channels, "{} (SqueezeExcite {}): expected {} channels, got input {}",
                label(), describe(), channels, shape_str(x.shape()));
  return mul(x, scales(x));
}

Tensor SqueezeExcite::scales(const Tensor& x) {
  return scale_activation((*fc2)(activation((*fc1)(adaptive_avg_pool2d(x, 1, 1)))));
}

std::string SqueezeExcite::describe() const {
  return fmt::format("{}->{}->{}, {}, {}", channels, squeeze_channels, channels, activation.str(),
                     scale_activation.str());
}

// ---------------------------------------------------------------- MBConv

MBConv::MBConv(int64_t in_channels, int64_t out_channels, double expand_ratio, int64_t kernel, int64_t stride,
               const MBConvOptions& options)
    : Module("MBConv"), in_channels(in_channels), out_channels(out_channels),
      expanded_channels(make_divisible(static_cast<double>(in_channels) * expand_ratio, 8)), kernel(kernel),
      stride(stride), use_residual(stride == 1 && in_channels == out_channels) {
  SCALPEL_CHECK(stride == 1 || stride == 2, "MBConv: stride must be 1 or 2, got {}", stride);
  SCALPEL_CHECK(expand_ratio >= 1, "MBConv: expand ratio must be >= 1, got {}", expand_ratio);
  block = std::make_shared<Sequential>();
  ConvBNActOptions act;
  act.activation = options.activation;
  act.bn = options.bn;
  if (expanded_channels != in_channels) block->add(std::make_shared<ConvBNAct>(in_channels, expanded_channels, 1, act));
  ConvBNActOptions depthwise = act;
  depthwise.stride = stride;
  depthwise.groups = expanded_channels;
  block->add(std::make_shared<ConvBNAct>(expanded_channels, expanded_channels, kernel, depthwise));
  if (options.se_ratio > 0) {
    // torchvision: squeeze from the block's input channels, not the expanded ones.
    const auto squeeze = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(in_channels) * options.se_ratio));
    block->add(std::make_shared<SqueezeExcite>(expanded_channels, squeeze, options.activation, Activation{"sigmoid"}));
  }
  ConvBNActOptions project = act;
  project.activation = Activation{"identity"};
  block->add(std::make_shared<ConvBNAct>(expanded_channels, out_channels, 1, project));
  register_module("block", block);
  stochastic_depth = register_module("stochastic_depth", std::make_shared<DropPath>(options.stochastic_depth_prob));
}

// Inference on the CPU: eval mode (BatchNorm on running statistics, so each sample is computed
// alone) with nothing recorded.
static bool runs_inference_on_cpu(const Module& block, const Tensor& x) {
  return !block.is_training() && !grad_enabled() && x.device().is_cpu();
}

// Whether a block marked fused by models::fuse_for_inference (MBConv, the ResNet blocks) takes
// its fused form: only in CPU inference, as the fused Conv2d layers.
static bool runs_fused(const Module& block, bool fused, const Tensor& x) {
  return fused && runs_inference_on_cpu(block, x);
}

// Whether an inverted residual block (MBConv, InvertedResidual) runs its batch sample by sample
// at inference: when the batch's expanded activations (if it expands) and their depthwise
// output outgrow 3/4 of the L3, batched they go out to memory and back, while one sample's stay
// in cache. On Zen 4 (32 MiB L3) at batch 8, mobilenet_v2's 16->96->24 s2 on 112x112 (38.5 +
// 9.6 MB) 3.5-3.6 vs 5.0 ms batched and 24->144->24 on 56x56 (14.4 + 14.4 MB) 2.5-2.6 vs 2.9;
// but 24->144->32 s2 (14.4 + 3.6 MB) 1.73-1.75 vs 1.57-1.61 and, without an expansion, 32->16 on
// 112x112 (12.8 MB) 1.70 vs 1.46-1.51. efficientnet_b0's first two likewise: 5.9 vs 7.2-8.2 ms,
// 4.3 vs 4.9. Each sample gets the same bits either way. Not under a forward hook, which is to
// see the layers' calls as the batch makes them (models::summarize's shapes).
static bool runs_sample_by_sample(const Module& block, int64_t in_channels, int64_t expanded_channels, int64_t stride,
                                  const Tensor& x) {
  const int64_t l3 = cpu_features().l3_bytes;
  if (l3 <= 0 || x.dim() != 4 || x.size(0) < 2 || !runs_inference_on_cpu(block, x) || ForwardHookGuard::installed())
    return false;
  const auto out = [stride](int64_t size) { return (size + stride - 1) / stride; };
  const int64_t expanded_plane = expanded_channels != in_channels ? x.size(2) * x.size(3) : 0;
  const int64_t pixels = expanded_plane + out(x.size(2)) * out(x.size(3));
  return x.size(0) * expanded_channels * pixels * static_cast<int64_t>(dtype_size(x.dtype())) > l3 / 4 * 3;
}

// The block's forward on each sample of x alone, the results stacked into one batch.
static Tensor sample_by_sample(Module& block, const Tensor& x) {
  std::vector<Tensor> samples;
  for (int64_t n = 0; n < x.size(0); ++n) samples.push_back(block.forward(x.slice(0, n, n + 1)));
  return concat(samples, 0);
}

bool MBConv::splits_batch(const Tensor& x) const {
  return runs_sample_by_sample(*this, in_channels, expanded_channels, stride, x);
}

Tensor MBConv::forward(const Tensor& x) {
  if (splits_batch(x)) return sample_by_sample(*this, x);
  if (runs_fused(*this, fused, x)) {  // [expand,] depthwise, SE, projection: see MBConv::fused
    const auto layers = block->named_children();
    Tensor h = x;
    for (size_t i = 0; i + 2 < layers.size(); ++i) h = (*layers[i].second)(h);
    auto& se = dynamic_cast<SqueezeExcite&>(*layers[layers.size() - 2].second);
    const Conv2d& project = *dynamic_cast<ConvBNAct&>(*layers.back().second).conv;
    return conv2d_fused(h, project.weight, project.bias, project.options, EpilogueActivation::none,
                        use_residual ? x : Tensor(), project.label(), {se.scales(h), Tensor()});
  }
  Tensor y = (*block)(x);
  if (!use_residual) return y;
  return add((*stochastic_depth)(y), x);
}

std::string MBConv::describe() const {
  return fmt::format("{}->{}->{}, k{}, s{}{}", in_channels, expanded_channels, out_channels, kernel, stride,
                     use_residual ? ", residual" : "");
}

// ---------------------------------------------------------------- InvertedResidual

InvertedResidual::InvertedResidual(int64_t in_channels, int64_t out_channels, int64_t stride, double expand_ratio,
                                   const InvertedResidualOptions& options)
    : Module("InvertedResidual"), in_channels(in_channels), out_channels(out_channels),
      // Python's round(): halves to even, as nearbyint in the default rounding mode.
      hidden_channels(static_cast<int64_t>(std::nearbyint(static_cast<double>(in_channels) * expand_ratio))),
      stride(stride), use_residual(stride == 1 && in_channels == out_channels) {
  SCALPEL_CHECK(stride == 1 || stride == 2, "InvertedResidual: stride must be 1 or 2, got {}", stride);
  SCALPEL_CHECK(hidden_channels > 0, "InvertedResidual: expand ratio {} gives no hidden channels", expand_ratio);
  conv = std::make_shared<Sequential>();
  ConvBNActOptions act;
  act.activation = options.activation;
  act.bn = options.bn;
  if (expand_ratio != 1) conv->add(std::make_shared<ConvBNAct>(in_channels, hidden_channels, 1, act));
  ConvBNActOptions depthwise = act;
  depthwise.stride = stride;
  depthwise.groups = hidden_channels;
  conv->add(std::make_shared<ConvBNAct>(hidden_channels, hidden_channels, 3, depthwise));
  conv->add(std::make_shared<Conv2d>(hidden_channels, out_channels, 1, Conv2dOptions{}, false));
  conv->add(make_bn(out_channels, options.bn));
  register_module("conv", conv);
}

bool InvertedResidual::splits_batch(const Tensor& x) const {
  return runs_sample_by_sample(*this, in_channels, hidden_channels, stride, x);
}

Tensor InvertedResidual::forward(const Tensor& x) {
  if (splits_batch(x)) return sample_by_sample(*this, x);
  if (runs_fused(*this, fused, x)) {  // [expand,] depthwise, projection + residual: see fused
    const auto layers = conv->named_children();
    Tensor h = x;
    for (size_t i = 0; i + 2 < layers.size(); ++i) h = (*layers[i].second)(h);
    const Conv2d& project = dynamic_cast<const Conv2d&>(*layers[layers.size() - 2].second);
    return conv2d_fused(h, project.weight, project.bias, project.options, EpilogueActivation::none, x,
                        project.label());
  }
  Tensor y = (*conv)(x);
  return use_residual ? add(x, y) : y;
}

std::string InvertedResidual::describe() const {
  return fmt::format("{}->{}->{}, s{}{}", in_channels, hidden_channels, out_channels, stride,
                     use_residual ? ", residual" : "");
}

// ---------------------------------------------------------------- ResNet

std::shared_ptr<Sequential> make_downsample(int64_t in_channels, int64_t out_channels, int64_t stride,
                                            const ResNetBlockOptions& options) {
  auto seq = std::make_shared<Sequential>();
  seq->add(std::make_shared<Conv2d>(in_channels, out_channels, 1, conv_options(stride, {}), options.conv_bias));
  seq->add(make_bn(out_channels, options.bn));
  return seq;
}

BasicBlock::BasicBlock(int64_t in_channels, int64_t planes, int64_t stride, const ResNetBlockOptions& options)
    : Module("BasicBlock"), in_channels(in_channels), planes(planes), stride(stride) {
  SCALPEL_CHECK(options.groups == 1 && options.base_width == 64,
                "BasicBlock only supports groups 1 and base width 64 (as torchvision), got {} and {}",
                options.groups, options.base_width);
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in_channels, planes, 3,
                                                            conv_options(stride, Padding2d::symmetric(1)),
                                                            options.conv_bias));
  bn1 = register_module("bn1", make_bn(planes, options.bn));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, conv_options(1, Padding2d::symmetric(1)),
                                                            options.conv_bias));
  bn2 = register_module("bn2", make_bn(planes, options.bn));
  if (stride != 1 || in_channels != planes * expansion)
    downsample = register_module("downsample", make_downsample(in_channels, planes * expansion, stride, options));
}


// The fused inference form of the ResNet blocks (models/fuse.h): BN already in the conv
// weights, relu(conv(x)) in the conv's store, relu(conv(y) + shortcut) in the last conv's store.
static Tensor last_conv_fused(const Conv2d& conv, const Tensor& y, const Tensor& shortcut) {
  return conv2d_fused(y, conv.weight, conv.bias, conv.options, EpilogueActivation::relu, shortcut, conv.label());
}

Tensor BasicBlock::forward(const Tensor& x) {
  if (runs_fused(*this, fused, x)) return last_conv_fused(*conv2, (*conv1)(x), downsample ? (*downsample)(x) : x);
  Tensor y = relu((*bn1)((*conv1)(x)));
  y = (*bn2)((*conv2)(y));
  return relu(add(y, downsample ? (*downsample)(x) : x));
}

std::string BasicBlock::describe() const {
  return fmt::format("{}->{}, s{}{}", in_channels, planes, stride, downsample ? ", downsample" : "");
}

Bottleneck::Bottleneck(int64_t in_channels, int64_t planes, int64_t stride, const ResNetBlockOptions& options)
    : Module("Bottleneck"), in_channels(in_channels), planes(planes),
      width(static_cast<int64_t>(static_cast<double>(planes) * (static_cast<double>(options.base_width) / 64.0)) *
            options.groups),
      stride(stride) {
  const int64_t stride_1x1 = options.stride_on_3x3 ? 1 : stride;
  const int64_t stride_3x3 = options.stride_on_3x3 ? stride : 1;
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in_channels, width, 1, conv_options(stride_1x1, {}),
                                                            options.conv_bias));
  bn1 = register_module("bn1", make_bn(width, options.bn));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(width, width, 3,
                                                            conv_options(stride_3x3, Padding2d::symmetric(1),
                                                                         options.groups),
                                                            options.conv_bias));
  bn2 = register_module("bn2", make_bn(width, options.bn));
  conv3 = register_module("conv3", std::make_shared<Conv2d>(width, planes * expansion, 1, conv_options(1, {}),
                                                            options.conv_bias));
  bn3 = register_module("bn3", make_bn(planes * expansion, options.bn));
  if (stride != 1 || in_channels != planes * expansion)
    downsample = register_module("downsample", make_downsample(in_channels, planes * expansion, stride, options));
}

Tensor Bottleneck::forward(const Tensor& x) {
  if (runs_fused(*this, fused, x))
    return last_conv_fused(*conv3, (*conv2)((*conv1)(x)), downsample ? (*downsample)(x) : x);
  Tensor y = relu((*bn1)((*conv1)(x)));
  y = relu((*bn2)((*conv2)(y)));
  y = (*bn3)((*conv3)(y));
  return relu(add(y, downsample ? (*downsample)(x) : x));
}

std::string Bottleneck::describe() const {
  return fmt::format("{}->{}->{}, s{}{}", in_channels, width, planes * expansion, stride,
                     downsample ? ", downsample" : "");
}

PreActBottleneck::PreActBottleneck(int64_t in_channels, int64_t filters, int64_t stride, bool conv_shortcut,
                                   BatchNormConfig bn)
    : Module("PreActBottleneck"), in_channels(in_channels), filters(filters), stride(stride) {
  SCALPEL_CHECK(conv_shortcut || in_channels == filters * expansion,
                "PreActBottleneck: without a conv shortcut the input must have {} channels (4 x {} filters), not {}",
                filters * expansion, filters, in_channels);
  preact_bn = register_module("preact_bn", make_bn(in_channels, bn));
  if (conv_shortcut)
    shortcut = register_module("shortcut", std::make_shared<Conv2d>(in_channels, filters * expansion, 1,
                                                                    conv_options(stride, {}), true));
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in_channels, filters, 1, conv_options(1, {}), false));
  bn1 = register_module("bn1", make_bn(filters, bn));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(filters, filters, 3,
                                                            conv_options(stride, Padding2d::symmetric(1)), false));
  bn2 = register_module("bn2", make_bn(filters, bn));
  conv3 = register_module("conv3", std::make_shared<Conv2d>(filters, filters * expansion, 1, conv_options(1, {}), true));
}

Tensor PreActBottleneck::forward(const Tensor& x) {
  Tensor preact = relu((*preact_bn)(x));
  Tensor skip = x;
  if (shortcut) {
    skip = (*shortcut)(preact);
  } else if (stride > 1) {
    Pool2dOptions pool;
    pool.kernel = {1, 1};
    pool.stride = {stride, stride};
    skip = max_pool2d(x, pool, label() + " shortcut");
  }
  Tensor y = relu((*bn1)((*conv1)(preact)));
  y = relu((*bn2)((*conv2)(y)));
  return add((*conv3)(y), skip);
}

std::string PreActBottleneck::describe() const {
  return fmt::format("{}->{}->{}, s{}{}", in_channels, filters, filters * expansion, stride,
                     shortcut ? ", conv shortcut" : "");
}

// ---------------------------------------------------------------- U-Net

DoubleConv::DoubleConv(int64_t in_channels, int64_t out_channels, int64_t mid_channels, BatchNormConfig bn)
    : Module("DoubleConv"), in_channels(in_channels), mid_channels(mid_channels > 0 ? mid_channels : out_channels),
      out_channels(out_channels) {
  const Conv2dOptions same3x3 = conv_options(1, Padding2d::symmetric(1));
  double_conv = std::make_shared<Sequential>();
  double_conv->add(std::make_shared<Conv2d>(in_channels, this->mid_channels, 3, same3x3, false));
  double_conv->add(make_bn(this->mid_channels, bn));
  double_conv->add(std::make_shared<ActivationLayer>(Activation{"relu"}));
  double_conv->add(std::make_shared<Conv2d>(this->mid_channels, out_channels, 3, same3x3, false));
  double_conv->add(make_bn(out_channels, bn));
  double_conv->add(std::make_shared<ActivationLayer>(Activation{"relu"}));
  register_module("double_conv", double_conv);
}

std::string DoubleConv::describe() const {
  return fmt::format("{}->{}->{}", in_channels, mid_channels, out_channels);
}

Down::Down(int64_t in_channels, int64_t out_channels, BatchNormConfig bn) : Module("Down") {
  Pool2dOptions pool;
  pool.kernel = {2, 2};
  maxpool_conv = std::make_shared<Sequential>();
  maxpool_conv->add(std::make_shared<MaxPool2d>(pool));
  maxpool_conv->add(std::make_shared<DoubleConv>(in_channels, out_channels, 0, bn));
  register_module("maxpool_conv", maxpool_conv);
}

std::string Down::describe() const { return maxpool_conv->named_children()[1].second->describe(); }

Up::Up(int64_t in_channels, int64_t out_channels, bool bilinear, BatchNormConfig bn)
    : Module("Up"), in_channels(in_channels), out_channels(out_channels), bilinear(bilinear) {
  SCALPEL_CHECK(in_channels >= 2 && in_channels % 2 == 0, "Up: in_channels must be even, got {}", in_channels);
  if (bilinear) {
    up = register_module("up", std::make_shared<Upsample>(2.0, "bilinear", /*align_corners=*/true));
    conv = register_module("conv", std::make_shared<DoubleConv>(in_channels, out_channels, in_channels / 2, bn));
  } else {
    ConvTranspose2dOptions t;
    t.stride = {2, 2};
    up = register_module("up", std::make_shared<ConvTranspose2d>(in_channels, in_channels / 2,
                                                                 std::array<int64_t, 2>{2, 2}, t));
    conv = register_module("conv", std::make_shared<DoubleConv>(in_channels, out_channels, 0, bn));
  }
}

Tensor Up::forward(const Tensor& x1, const Tensor& x2) {
  SCALPEL_CHECK(x1.dim() == 4 && x2.dim() == 4 && x1.size(0) == x2.size(0),
                "{} (Up {}): expected NCHW inputs with the same batch, got {} and skip {}", label(), describe(),
                shape_str(x1.shape()), shape_str(x2.shape()));
  Tensor u = (*up)(x1);
  const int64_t dy = x2.size(2) - u.size(2), dx = x2.size(3) - u.size(3);
  SCALPEL_CHECK(dy >= 0 && dx >= 0, "{} (Up {}): up-sampled input {} is larger than the skip input {}", label(),
                describe(), shape_str(u.shape()), shape_str(x2.shape()));
  SCALPEL_CHECK(u.size(1) + x2.size(1) == in_channels,
                "{} (Up {}): up-sampled {} and skip {} must have {} channels together", label(), describe(),
                shape_str(u.shape()), shape_str(x2.shape()), in_channels);
  if (dy > 0 || dx > 0) u = pad2d(u, Padding2d{dy / 2, dy - dy / 2, dx / 2, dx - dx / 2});
  return (*conv)(concat({x2, u}, 1));
}

Tensor Up::forward(const Tensor&) {
  fail("{} (Up): needs the coarse input and the skip input; call forward(x1, x2)", label());
}

std::string Up::describe() const {
  return fmt::format("{}->{}, {}", in_channels, out_channels, bilinear ? "bilinear" : "transposed conv");
}

}  // namespace scalpel::nn
