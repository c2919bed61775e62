#pragma once
// Composite blocks of the model zoo. Where torchvision has the block, the children carry
// torchvision's names, so state-dict keys map 1:1 (sources in
// torchvision/models/{resnet,mobilenetv2,efficientnet}.py and torchvision/ops/misc.py):
//   ConvBNAct           torchvision.ops.Conv2dNormActivation   "0" conv, "1" bn, "2" act
//   SqueezeExcite       torchvision.ops.SqueezeExcitation      fc1, fc2
//   MBConv              efficientnet.MBConv                    block.{0..3}
//   InvertedResidual    mobilenetv2.InvertedResidual           conv.{0..3}
//   BasicBlock          resnet.BasicBlock                      conv1, bn1, conv2, bn2, downsample.{0,1}
//   Bottleneck          resnet.Bottleneck                      conv1..3, bn1..3, downsample.{0,1}
// The others follow the layout of well-known PyTorch code for that block:
//   DepthwiseSeparable  MobileNet V1 "conv_dw" (0 dw conv, 1 bn, 2 act, 3 pw conv, 4 bn, 5 act)
//   SeparableConv2d     Keras SeparableConv2D (depthwise, pointwise)
//   PreActBottleneck    Keras ResNetV2 block2 (names chosen here, see the class)
//   DoubleConv/Down/Up  milesial/Pytorch-UNet (double_conv.*, maxpool_conv.*, up, conv)
#include <memory>

#include "layers/modules.h"

namespace scalpel::nn {

// BatchNorm settings of a block: PyTorch 1e-5 / 0.1; Keras layers use eps 1e-3 (MobileNet,
// EfficientNet) or 1.001e-5 (ResNet) and momentum 0.01 (Keras momentum 0.99).
struct BatchNormConfig {
  double eps = 1e-5;
  double momentum = 0.1;
};

// torchvision's _make_divisible: round v to a multiple of `divisor` (at least min_value, which
// defaults to divisor), never going below 90% of v.
int64_t make_divisible(double v, int64_t divisor, int64_t min_value = 0);

// ---------------------------------------------------------------- Conv-BN-Act

struct ConvBNActOptions {
  int64_t stride = 1;
  int64_t dilation = 1;
  int64_t groups = 1;
  // Default: symmetric (kernel - 1) / 2 * dilation, as torchvision. Set for Keras-style
  // asymmetric padding ({0, 1, 0, 1} before a strided conv).
  std::optional<Padding2d> padding;
  bool same = false;                // TF "SAME", computed per input size (overrides padding)
  Activation activation{"relu"};    // "identity": no activation child
  bool norm = true;                 // false: no BatchNorm, and the conv gets a bias
  BatchNormConfig bn;
};

// conv ("0", bias only without norm) -> BatchNorm2d ("1") -> activation ("2").
class ConvBNAct : public Sequential {
 public:
  ConvBNAct(int64_t in_channels, int64_t out_channels, int64_t kernel, const ConvBNActOptions& options = {});
  std::string describe() const override { return conv->describe(); }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;  // null without norm
};

// ---------------------------------------------------------------- MobileNet V1

struct DepthwiseSeparableOptions {
  int64_t stride = 1;
  int64_t depth_multiplier = 1;  // depthwise output channels = in * depth_multiplier
  Activation activation{"relu6"};
  // keras: padding 1 at stride 1, and (top 0, bottom 1, left 0, right 1) before a strided
  // depthwise conv (Keras applications' ZeroPadding2D((0, 1), (0, 1))); torch: symmetric 1.
  bool keras_padding = true;
  BatchNormConfig bn{1e-3, 0.01};
};

// Depthwise 3x3 conv-BN-act, then pointwise 1x1 conv-BN-act; all convs bias-free.
// Children "0".."5" as the usual PyTorch MobileNet V1 (conv_dw = Sequential of six layers).
class DepthwiseSeparable : public Sequential {
 public:
  DepthwiseSeparable(int64_t in_channels, int64_t out_channels, const DepthwiseSeparableOptions& options = {});
  std::string describe() const override;
  const int64_t in_channels, out_channels;
  const DepthwiseSeparableOptions options;
};

// ---------------------------------------------------------------- Keras SeparableConv2D

// Keras SeparableConv2D (depth_multiplier 1, padding "same"): a depthwise kxk conv (stride,
// TF SAME padding, no bias) straight into a pointwise 1x1 conv, nothing between them (unlike
// DepthwiseSeparable). Children "depthwise" [in, 1, k, k] and "pointwise" [out, in, 1, 1]:
// Keras' depthwise_kernel [k, k, in, 1] and pointwise_kernel [1, 1, in, out] transposed.
class SeparableConv2d : public Module {
 public:
  SeparableConv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1, bool bias = false);
  Tensor forward(const Tensor& x) override { return (*pointwise)((*depthwise)(x)); }
  std::string describe() const override;
  const int64_t in_channels, out_channels, kernel, stride;
  std::shared_ptr<Conv2d> depthwise, pointwise;
};

// ---------------------------------------------------------------- squeeze-excite, MBConv

// x * scale_activation(fc2(activation(fc1(avgpool(x))))), fc1/fc2 1x1 convs with bias.
class SqueezeExcite : public Module {
 public:
  SqueezeExcite(int64_t channels, int64_t squeeze_channels, Activation activation = Activation{"relu"},
                Activation scale_activation = Activation{"sigmoid"});
  Tensor forward(const Tensor& x) override;  // x * scales(x)
  // The per-channel scales [N, C, 1, 1]: scale_activation(fc2(activation(fc1(avg_pool(x))))).
  Tensor scales(const Tensor& x);
  std::string describe() const override;
  const int64_t channels, squeeze_channels;
  const Activation activation, scale_activation;
  std::shared_ptr<Conv2d> fc1, fc2;
};

struct MBConvOptions {
  double se_ratio = 0.25;               // squeeze = max(1, in * se_ratio); 0: no SE
  double stochastic_depth_prob = 0.0;  // drop-path probability of the residual branch
  Activation activation{"silu"};
  BatchNormConfig bn;
};

// EfficientNet's MBConv (torchvision efficientnet.MBConv), children under "block":
//   expand 1x1 ConvBNAct (absent when expanded == in), depthwise kxk ConvBNAct (stride),
//   SqueezeExcite(expanded, squeeze; activation, sigmoid), project 1x1 ConvBN (no act).
// expanded = make_divisible(in * expand_ratio, 8). Residual (with drop-path) when stride 1
// and in == out.
class MBConv : public Module {
 public:
  MBConv(int64_t in_channels, int64_t out_channels, double expand_ratio, int64_t kernel, int64_t stride,
         const MBConvOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t in_channels, out_channels, expanded_channels, kernel, stride;
  const bool use_residual;
  std::shared_ptr<Sequential> block;
  std::shared_ptr<DropPath> stochastic_depth;
  // Set by models::fuse_for_inference when the block ends with a squeeze-excite and a 1x1
  // projection conv (its BN folded, no activation): in eval mode on the CPU with nothing
  // recorded, that conv multiplies its input by the SE's scales as its GEMM packs it and adds
  // the residual in its output store (nn::conv2d_fused), instead of a pass for each.
  bool fused = false;
  // Whether forward(x) runs x's samples one by one: at inference on the CPU, when the batch's
  // expanded activations and their depthwise output would not fit in 3/4 of the L3 (and no
  // forward hook is installed). Each sample gets the same bits either way.
  bool splits_batch(const Tensor& x) const;
};

// ---------------------------------------------------------------- MobileNet V2

struct InvertedResidualOptions {
  Activation activation{"relu6"};
  BatchNormConfig bn;
};

// torchvision mobilenetv2.InvertedResidual, children under "conv": [expand 1x1 ConvBNAct
// when expand_ratio != 1], depthwise 3x3 ConvBNAct (stride), 1x1 Conv2d, BatchNorm2d.
// hidden = round(in * expand_ratio); residual when stride 1 and in == out.
class InvertedResidual : public Module {
 public:
  InvertedResidual(int64_t in_channels, int64_t out_channels, int64_t stride, double expand_ratio,
                   const InvertedResidualOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t in_channels, out_channels, hidden_channels, stride;
  const bool use_residual;
  std::shared_ptr<Sequential> conv;
  // Set by models::fuse_for_inference on a residual block whose projection's BN is folded: in
  // eval mode on the CPU with nothing recorded, the projection conv adds the residual in its
  // output store (nn::conv2d_fused) instead of a pass of its own.
  bool fused = false;
  // As MBConv::splits_batch.
  bool splits_batch(const Tensor& x) const;
};

// ---------------------------------------------------------------- ResNet

struct ResNetBlockOptions {
  // Bottleneck only: stride on the 3x3 conv (torchvision "V1.5") or on the first 1x1 (the
  // original paper and Keras ResNet50).
  bool stride_on_3x3 = true;
  int64_t groups = 1;       // Bottleneck only (ResNeXt)
  int64_t base_width = 64;  // Bottleneck only (wide ResNet)
  bool conv_bias = false;   // Keras ResNet convs have biases
  BatchNormConfig bn;
};

// A 1x1 conv (stride) + BatchNorm projection, added by the blocks when stride != 1 or the
// channel count changes (torchvision _make_layer's downsample).
std::shared_ptr<Sequential> make_downsample(int64_t in_channels, int64_t out_channels, int64_t stride,
                                            const ResNetBlockOptions& options);

// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), 3x3 convs, stride on conv1.
class BasicBlock : public Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in_channels, int64_t planes, int64_t stride = 1, const ResNetBlockOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t in_channels, planes, stride;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> downsample;  // null when the shortcut is the identity
  // Set by models::fuse_for_inference (models/fuse.h) once the block's BatchNorms are folded:
  // on the CPU in eval mode with gradients off, the inner ReLUs run in the convs' stores, and
  // the last conv adds the shortcut and applies the final ReLU in its own (nn::conv2d_fused).
  bool fused = false;
};

// 1x1 (width) -> 3x3 (width, groups) -> 1x1 (planes * 4), BN after each, ReLU after the sum.
// width = planes * base_width / 64 * groups.
class Bottleneck : public Module {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t in_channels, int64_t planes, int64_t stride = 1, const ResNetBlockOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t in_channels, planes, width, stride;
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<Sequential> downsample;  // null when the shortcut is the identity
  // Set by models::fuse_for_inference (models/fuse.h) once the block's BatchNorms are folded:
  // on the CPU in eval mode with gradients off, the inner ReLUs run in the convs' stores, and
  // the last conv adds the shortcut and applies the final ReLU in its own (nn::conv2d_fused).
  bool fused = false;
};

// Keras ResNetV2 block2 (pre-activation bottleneck), BN eps 1.001e-5 by default:
//   preact = relu(preact_bn(x))
//   shortcut = shortcut_conv(preact) [1x1, 4*filters, stride, bias]  if conv_shortcut
//            = max_pool 1x1 stride(x)                               if stride > 1
//            = x                                                    otherwise
//   y = conv3(relu(bn2(conv2(relu(bn1(conv1(preact))))))) + shortcut
// conv1 1x1 and conv2 3x3 (stride, padding 1) are bias-free; conv3 1x1 has a bias. Keras puts
// the conv shortcut in the first block of a stage and the stride in the last one. Children in
// Keras' creation order: preact_bn, shortcut, conv1, bn1, conv2, bn2, conv3.
class PreActBottleneck : public Module {
 public:
  static constexpr int64_t expansion = 4;
  PreActBottleneck(int64_t in_channels, int64_t filters, int64_t stride, bool conv_shortcut,
                   BatchNormConfig bn = {1.001e-5, 0.01});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t in_channels, filters, stride;
  std::shared_ptr<BatchNorm2d> preact_bn, bn1, bn2;
  std::shared_ptr<Conv2d> shortcut, conv1, conv2, conv3;  // shortcut null without conv_shortcut
};

// ---------------------------------------------------------------- U-Net

// (conv3x3 pad 1, no bias -> BN -> ReLU) x 2 as "double_conv.{0..5}"; mid defaults to out.
class DoubleConv : public Module {
 public:
  DoubleConv(int64_t in_channels, int64_t out_channels, int64_t mid_channels = 0, BatchNormConfig bn = {});
  Tensor forward(const Tensor& x) override { return (*double_conv)(x); }
  std::string describe() const override;
  const int64_t in_channels, mid_channels, out_channels;
  std::shared_ptr<Sequential> double_conv;
};

// max-pool 2x2 then DoubleConv, as "maxpool_conv.{0,1}".
class Down : public Module {
 public:
  Down(int64_t in_channels, int64_t out_channels, BatchNormConfig bn = {});
  Tensor forward(const Tensor& x) override { return (*maxpool_conv)(x); }
  std::string describe() const override;
  std::shared_ptr<Sequential> maxpool_conv;
};

// Up-samples the coarse input x1, zero-pads it to the skip input x2's size (odd sizes),
// concatenates [x2, x1] on channels and applies DoubleConv (as "conv").
//  - transposed (default): up = ConvTranspose2d(in, in/2, 2x2, stride 2); x1 has `in`
//    channels, x2 in/2; conv = DoubleConv(in, out).
//  - bilinear: up = bilinear x2 (align_corners, no parameters); x1 and x2 have in/2
//    channels each; conv = DoubleConv(in, out, mid = in/2).
class Up : public Module {
 public:
  Up(int64_t in_channels, int64_t out_channels, bool bilinear = false, BatchNormConfig bn = {});
  Tensor forward(const Tensor& x1, const Tensor& x2);
  // One-input forward does not apply: Error telling to call forward(x1, x2).
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t in_channels, out_channels;
  const bool bilinear;
  ModulePtr up;  // ConvTranspose2d or Upsample
  std::shared_ptr<DoubleConv> conv;
};

}  // namespace scalpel::nn
