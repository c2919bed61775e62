#pragma once
// Concrete layers (after torch.nn): parameter names, shapes and default initialization as
// PyTorch's, so torchvision state dicts load 1:1. Each forward calls the op of
// layers/functional.h and names the layer (Module::label()) in its errors.
//
// The public Tensor members (weight, bias, running_mean, ...) are handles to the registered
// tensors: change their values in place (copy_, fill_, the init functions of tensor/random.h),
// never rebind them.
#include <array>
#include <string>

#include "layers/module.h"
#include "tensor/gemm.h"

namespace scalpel::nn {

// gain that makes kaiming_uniform_ equal torch.nn.init.kaiming_uniform_(w, a=sqrt(5)), the
// default init of Conv2d, ConvTranspose2d and Linear: bound = 1 / sqrt(fan_in).
inline constexpr double kDefaultInitGain = 0.5773502691896257;  // sqrt(2 / (1 + 5))

// PyTorch's default layer init: weight kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) with fan_in taken from the weight. Draws from the default generator.
// Does nothing while a SkipInitGuard is alive on this thread.
void reset_default_parameters(Tensor& weight, Tensor& bias);

// While alive, layers built on this thread skip their random initialization: parameters hold
// uninitialized memory (BatchNorm still starts at 1/0) until weights are loaded into them.
// For counting parameters and for building a model whose weights are loaded next (as
// torch.nn.utils.skip_init); building VGG16 draws 138 M random numbers otherwise. Guards nest.
class SkipInitGuard {
 public:
  SkipInitGuard();
  ~SkipInitGuard();
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;

 private:
  bool previous_;
};
bool init_skipped();  // true while a SkipInitGuard is alive on this thread

// x [N, in, H, W] -> [N, out, H', W']; weight [out, in/groups, kH, kW], bias [out].
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, const Conv2dOptions& options = {},
         bool bias = true);
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, const Conv2dOptions& options = {},
         bool bias = true)
      : Conv2d(in_channels, out_channels, {kernel, kernel}, options, bias) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;  // "3->64, k7x7, s2, p3"
  int64_t macs(const Shape& input_shape, const Shape& output_shape) const override;

  const int64_t in_channels, out_channels;
  const std::array<int64_t, 2> kernel;
  const Conv2dOptions options;
  Tensor weight, bias;  // bias undefined when built without one
  // Set by models::fuse_for_inference (models/fuse.h): the activation of the ActivationLayer
  // that follows this conv, applied in the conv's output store (nn::conv2d_fused) when
  // forward runs on the CPU in eval mode recording nothing; that ActivationLayer is `folded`.
  EpilogueActivation fused_activation = EpilogueActivation::none;
  // Set by models::fuse_for_inference on a 1x1 conv whose input is the output of an unfolded
  // BatchNorm2d (and its fused activation) and of nothing else: that BN's eval transform,
  // applied as the conv reads its input (nn::conv2d_fused), under the same conditions; that
  // BN is `applied_by_next_conv`.
  ConvInputTransform fused_input;
};

// x [N, in, H, W] -> [N, out, (H-1)*s - 2p + d*(k-1) + output_padding + 1, ...];
// weight [in, out/groups, kH, kW] (PyTorch layout), bias [out].
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel,
                  const ConvTranspose2dOptions& options = {}, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  int64_t macs(const Shape& input_shape, const Shape& output_shape) const override;

  const int64_t in_channels, out_channels;
  const std::array<int64_t, 2> kernel;
  const ConvTranspose2dOptions options;
  Tensor weight, bias;
};

// x [..., in] -> [..., out]; weight [out, in], bias [out].
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  int64_t macs(const Shape& input_shape, const Shape& output_shape) const override;

  const int64_t in_features, out_features;
  Tensor weight, bias;
};

// x [N, C, H, W] or [N, C]. Parameters weight (1) and bias (0); buffers running_mean (0),
// running_var (1) and num_batches_tracked (int64, counted by train-mode forwards; in the state
// dict for torchvision checkpoints, but not counted as non-trainable and optional on load).
// momentum and eps as PyTorch (Keras momentum m is PyTorch 1 - m).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  const int64_t num_features;
  const double eps, momentum;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  // Set by models::fuse_batchnorm (models/fuse.h) once this layer's eval transform is folded
  // into the preceding conv: forward in eval mode then returns its input unchanged.
  bool folded = false;
  // Set by models::fuse_for_inference on a BN that is not folded and feeds an activation
  // (DenseNet's pre-activation norm1 + relu1): when forward runs on the CPU in eval mode
  // recording nothing it applies the activation in its own pass, and that ActivationLayer
  // is `folded`.
  EpilogueActivation fused_activation = EpilogueActivation::none;
  // Set by models::fuse_for_inference when the 1x1 conv this BN (and its fused activation)
  // feeds applies them as it reads its input (Conv2d::fused_input): forward then returns its
  // input unchanged under the same conditions (DenseNet's norm1 + relu1 before conv1).
  bool applied_by_next_conv = false;
  // Set by models::fuse_for_training on a BN whose output only a ReLU reads: in training mode
  // forward returns relu(BN(x)) (nn::batch_norm_relu: one pass instead of two, one tensor kept
  // for backward instead of two), and the ReLU then passes it on (nn::relu of an already
  // rectified tensor).
  bool relu_in_training = false;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dOptions& options) : Module("MaxPool2d"), options(options) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, options, label()); }
  std::string describe() const override;
  const Pool2dOptions options;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Pool2dOptions& options) : Module("AvgPool2d"), options(options) {}
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, options, label()); }
  std::string describe() const override;
  const Pool2dOptions options;
};

// [N, C, H, W] -> [N, C, out_h, out_w].
class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w) : Module("AdaptiveAvgPool2d"), out_h(out_h), out_w(out_w) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int64_t out_h, out_w;
};

// [N, C, H, W] -> [N, C].
class GlobalAvgPool : public Module {
 public:
  GlobalAvgPool() : Module("GlobalAvgPool") {}
  Tensor forward(const Tensor& x) override;
};

// Merges axes start..end into one (torch.nn.Flatten: start 1, end -1).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_axis = 1, int64_t end_axis = -1)
      : Module("Flatten"), start_axis(start_axis), end_axis(end_axis) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_axis, end_axis); }
  const int64_t start_axis, end_axis;
};

// Zeroes elements with probability p in training (survivors scaled by 1/(1-p)); identity in
// eval. Masks come from `generator` (the default generator when null; it must outlive us).
class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator* generator = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const double p;

 private:
  Generator* generator_;
};

// Stochastic depth (torchvision StochasticDepth "row"): drops whole samples with probability
// p in training, survivors scaled by 1/(1-p); identity in eval.
class DropPath : public Module {
 public:
  explicit DropPath(double p, Generator* generator = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const double p;

 private:
  Generator* generator_;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

// An nn::Activation as a module; type() is PyTorch's class name ("ReLU", "SiLU", ...).
class ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation activation);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return activation.str(); }
  const Activation activation;
  // Set by models::fuse_for_inference: the preceding Conv2d applies this activation
  // (Conv2d::fused_activation), so forward returns its input when that conv runs fused (eval
  // mode on the CPU, no gradients recorded).
  bool folded = false;
};

// Zero padding of the two spatial axes (Keras ZeroPadding2D, torch.nn.ZeroPad2d).
class ZeroPad2d : public Module {
 public:
  explicit ZeroPad2d(const Padding2d& padding) : Module("ZeroPad2d"), padding(padding) {}
  Tensor forward(const Tensor& x) override { return pad2d(x, padding); }
  std::string describe() const override;
  const Padding2d padding;
};

// Resizes H and W by `scale` (out = floor(in * scale), as torch.nn.Upsample(scale_factor)),
// mode "nearest" or "bilinear".
class Upsample : public Module {
 public:
  Upsample(double scale, std::string mode, bool align_corners = false);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const double scale;
  const std::string mode;
  const bool align_corners;
};

}  // namespace scalpel::nn
