#include "layers/modules.h"

#include <cmath>

#include "autograd/autograd.h"
#include "layers/ops/batch_norm.h"
#include "layers/ops/conv2d.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace scalpel::nn {

namespace {

std::string pair_str(const std::array<int64_t, 2>& v) {
  return v[0] == v[1] ? std::to_string(v[0]) : fmt::format("{}x{}", v[0], v[1]);
}

std::string padding_str(const Padding2d& p) {
  if (p.top == p.bottom && p.left == p.right) return pair_str({p.top, p.left});
  return fmt::format("(t{}, b{}, l{}, r{})", p.top, p.bottom, p.left, p.right);
}

// Inputs to the channel-mixing layers: Error naming the layer when the shape does not fit.
void check_channels(const Module& layer, const Tensor& x, int64_t channels, const std::string& what) {
  SCALPEL_CHECK(x.dim() == 4, "{} ({} {}): expected an NCHW input, got {}", layer.label(), layer.type(),
                layer.describe(), shape_str(x.shape()));
  SCALPEL_CHECK(x.size(1) == channels, "{} ({} {}): expected {} {}, got input {}", layer.label(), layer.type(),
                layer.describe(), channels, what, shape_str(x.shape()));
}

}  // namespace

namespace {
thread_local bool skip_init = false;
}  // namespace

SkipInitGuard::SkipInitGuard() : previous_(skip_init) { skip_init = true; }
SkipInitGuard::~SkipInitGuard() { skip_init = previous_; }
bool init_skipped() { return skip_init; }

void reset_default_parameters(Tensor& weight, Tensor& bias) {
  if (skip_init) return;
  kaiming_uniform_(weight, kDefaultInitGain);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in(weight.shape())));
    uniform_(bias, -bound, bound);
  }
}

// ---------------------------------------------------------------- Conv2d

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, const Conv2dOptions& options,
               bool with_bias)
    : Module("Conv2d"), in_channels(in_channels), out_channels(out_channels), kernel(kernel), options(options) {
  SCALPEL_CHECK(in_channels > 0 && out_channels > 0 && kernel[0] > 0 && kernel[1] > 0 && options.groups > 0,
                "Conv2d: channels, kernel and groups must be positive (in {}, out {}, kernel {}, groups {})",
                in_channels, out_channels, pair_str(kernel), options.groups);
  SCALPEL_CHECK(in_channels % options.groups == 0 && out_channels % options.groups == 0,
                "Conv2d: groups {} must divide in_channels {} and out_channels {}", options.groups, in_channels,
                out_channels);
  weight = register_parameter("weight",
                              Tensor::empty({out_channels, in_channels / options.groups, kernel[0], kernel[1]}));
  if (with_bias) bias = register_parameter("bias", Tensor::empty({out_channels}));
  reset_default_parameters(weight, bias);
}

// Fused layers (models/fuse.h) take their shortcut only on the CPU when nothing is recorded
// in eval mode, so a fused model still trains, differentiates and moves through the plain ops.
static bool runs_fused(const Module& m, const Tensor& x) {
  return !m.is_training() && !grad_enabled() && x.device().is_cpu();
}

Tensor Conv2d::forward(const Tensor& x) {
  check_channels(*this, x, in_channels, "input channels");
  if ((fused_activation != EpilogueActivation::none || !fused_input.empty()) && runs_fused(*this, x)) {
    ConvInputTransform input = fused_input;  // in x's dtype (a fused model moved to float64)
    for (Tensor* t : {&input.scale, &input.shift})
      if (t->defined() && t->dtype() != x.dtype()) *t = t->to(x.dtype());
    return conv2d_fused(x, weight, bias, options, fused_activation, Tensor(), label(), input);
  }
  return conv2d(x, weight, bias, options, label());
}

std::string Conv2d::describe() const {
  std::string s = fmt::format("{}->{}, k{}, s{}", in_channels, out_channels, pair_str(kernel), pair_str(options.stride));
  s += options.same ? ", same" : ", p" + padding_str(options.padding);
  if (options.dilation != std::array<int64_t, 2>{1, 1}) s += ", d" + pair_str(options.dilation);
  if (options.groups != 1) s += fmt::format(", g{}", options.groups);
  if (!bias.defined()) s += ", no bias";
  return s;
}

int64_t Conv2d::macs(const Shape&, const Shape& output_shape) const {
  return shape_numel(output_shape) * (in_channels / options.groups) * kernel[0] * kernel[1];
}

// ---------------------------------------------------------------- ConvTranspose2d

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel,
                                 const ConvTranspose2dOptions& options, bool with_bias)
    : Module("ConvTranspose2d"), in_channels(in_channels), out_channels(out_channels), kernel(kernel),
      options(options) {
  SCALPEL_CHECK(in_channels > 0 && out_channels > 0 && kernel[0] > 0 && kernel[1] > 0 && options.groups > 0,
                "ConvTranspose2d: channels, kernel and groups must be positive (in {}, out {}, kernel {}, groups {})",
                in_channels, out_channels, pair_str(kernel), options.groups);
  SCALPEL_CHECK(in_channels % options.groups == 0 && out_channels % options.groups == 0,
                "ConvTranspose2d: groups {} must divide in_channels {} and out_channels {}", options.groups,
                in_channels, out_channels);
  weight = register_parameter("weight",
                              Tensor::empty({in_channels, out_channels / options.groups, kernel[0], kernel[1]}));
  if (with_bias) bias = register_parameter("bias", Tensor::empty({out_channels}));
  // torch computes fan_in from dimension 1 here too (out/groups * kH * kW).
  reset_default_parameters(weight, bias);
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  check_channels(*this, x, in_channels, "input channels");
  return conv_transpose2d(x, weight, bias, options, label());
}

std::string ConvTranspose2d::describe() const {
  std::string s = fmt::format("{}->{}, k{}, s{}", in_channels, out_channels, pair_str(kernel), pair_str(options.stride));
  if (options.padding != std::array<int64_t, 2>{0, 0}) s += ", p" + pair_str(options.padding);
  if (options.output_padding != std::array<int64_t, 2>{0, 0}) s += ", op" + pair_str(options.output_padding);
  if (options.dilation != std::array<int64_t, 2>{1, 1}) s += ", d" + pair_str(options.dilation);
  if (options.groups != 1) s += fmt::format(", g{}", options.groups);
  if (!bias.defined()) s += ", no bias";
  return s;
}

// Every input pixel scatters into a kH x kW window of out/groups channels.
int64_t ConvTranspose2d::macs(const Shape& input_shape, const Shape&) const {
  return shape_numel(input_shape) * (out_channels / options.groups) * kernel[0] * kernel[1];
}

// ---------------------------------------------------------------- Linear

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias)
    : Module("Linear"), in_features(in_features), out_features(out_features) {
  SCALPEL_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive (in {}, out {})", in_features,
                out_features);
  weight = register_parameter("weight", Tensor::empty({out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", Tensor::empty({out_features}));
  reset_default_parameters(weight, bias);
}

Tensor Linear::forward(const Tensor& x) {
  SCALPEL_CHECK(x.dim() >= 1 && x.size(-1) == in_features, "{} (Linear {}): expected {} input features, got input {}",
                label(), describe(), in_features, shape_str(x.shape()));
  return linear(x, weight, bias, label());
}

std::string Linear::describe() const {
  return fmt::format("{}->{}{}", in_features, out_features, bias.defined() ? "" : ", no bias");
}

int64_t Linear::macs(const Shape&, const Shape& output_shape) const {
  return shape_numel(output_shape) * in_features;
}

// ---------------------------------------------------------------- BatchNorm2d

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps, double momentum)
    : Module("BatchNorm2d"), num_features(num_features), eps(eps), momentum(momentum) {
  SCALPEL_CHECK(num_features > 0, "BatchNorm2d: num_features must be positive, got {}", num_features);
  SCALPEL_CHECK(eps > 0 && momentum >= 0 && momentum <= 1,
                "BatchNorm2d: need eps > 0 and momentum in [0, 1], got eps {} momentum {}", eps, momentum);
  weight = register_parameter("weight", Tensor::ones({num_features}));
  bias = register_parameter("bias", Tensor::zeros({num_features}));
  running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
  running_var = register_buffer("running_var", Tensor::ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::I64), /*counted=*/false);
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  SCALPEL_CHECK((x.dim() == 4 || x.dim() == 2) && x.size(1) == num_features,
                "{} (BatchNorm2d {}): expected {} channels in an NCHW or NC input, got input {}", label(), describe(),
                num_features, shape_str(x.shape()));
  if (folded && !training_) return x;  // already applied by the preceding conv (models/fuse.h)
  if (applied_by_next_conv && runs_fused(*this, x)) return x;  // the next conv applies it (models/fuse.h)
  if (fused_activation != EpilogueActivation::none && runs_fused(*this, x) && running_mean.defined()) {
    const Tensor invstd = ops::pow_scalar(ops::add_scalar(running_var, eps), -0.5);
    return ops::batch_norm_forward(x, running_mean, invstd, weight, bias, fused_activation);
  }
  if (training_) {
    // A host-side counter, wherever the module lives (to(cpu) is the tensor itself on the CPU).
    Tensor count = num_batches_tracked.to(Device::cpu());
    count.data<int64_t>()[0] += 1;
    if (!num_batches_tracked.device().is_cpu()) num_batches_tracked.copy_(count.to(num_batches_tracked.device()));
  }
  if (training_ && relu_in_training)
    return batch_norm_relu(x, running_mean, running_var, weight, bias, training_, momentum, eps, label());
  return batch_norm(x, running_mean, running_var, weight, bias, training_, momentum, eps, label());
}

std::string BatchNorm2d::describe() const { return fmt::format("{}, eps {:g}, momentum {:g}", num_features, eps, momentum); }

// ---------------------------------------------------------------- pooling

namespace {
std::string pool_str(const Pool2dOptions& o, bool avg) {
  const auto stride = o.stride == std::array<int64_t, 2>{0, 0} ? o.kernel : o.stride;
  std::string s = fmt::format("k{}, s{}", pair_str(o.kernel), pair_str(stride));
  if (o.padding != Padding2d{}) s += ", p" + padding_str(o.padding);
  if (o.ceil_mode) s += ", ceil";
  if (avg && !o.count_include_pad) s += ", exclude pad";
  return s;
}
}  // namespace

std::string MaxPool2d::describe() const { return pool_str(options, false); }
std::string AvgPool2d::describe() const { return pool_str(options, true); }

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, out_h, out_w); }
std::string AdaptiveAvgPool2d::describe() const { return fmt::format("{}x{}", out_h, out_w); }

Tensor GlobalAvgPool::forward(const Tensor& x) { return global_avg_pool(x); }

// ---------------------------------------------------------------- regularization

Dropout::Dropout(double p, Generator* generator) : Module("Dropout"), p(p), generator_(generator) {
  SCALPEL_CHECK(p >= 0 && p < 1, "Dropout: p must be in [0, 1), got {}", p);
}

Tensor Dropout::forward(const Tensor& x) {
  return dropout(x, p, training_, generator_ ? *generator_ : default_generator());
}

std::string Dropout::describe() const { return fmt::format("p {:g}", p); }

DropPath::DropPath(double p, Generator* generator) : Module("DropPath"), p(p), generator_(generator) {
  SCALPEL_CHECK(p >= 0 && p < 1, "DropPath: p must be in [0, 1), got {}", p);
}

Tensor DropPath::forward(const Tensor& x) {
  return drop_path(x, p, training_, generator_ ? *generator_ : default_generator());
}

std::string DropPath::describe() const { return fmt::format("p {:g}", p); }

// ---------------------------------------------------------------- activation, padding, resampling

namespace {
std::string activation_type(const Activation& a) {
  if (a.kind == "relu") return "ReLU";
  if (a.kind == "relu6") return "ReLU6";
  if (a.kind == "leaky_relu") return "LeakyReLU";
  if (a.kind == "silu" || a.kind == "swish") return "SiLU";
  if (a.kind == "sigmoid") return "Sigmoid";
  if (a.kind == "tanh") return "Tanh";
  if (a.kind == "hardswish") return "Hardswish";
  if (a.kind == "hardsigmoid") return "Hardsigmoid";
  if (a.kind == "gelu") return "GELU";
  if (a.kind == "identity") return "Identity";
  fail("unknown activation '{}'", a.kind);
}
}  // namespace

ActivationLayer::ActivationLayer(Activation activation)
    : Module(activation_type(activation)), activation(std::move(activation)) {}

Tensor ActivationLayer::forward(const Tensor& x) { return folded && runs_fused(*this, x) ? x : activation(x); }

std::string ZeroPad2d::describe() const { return padding_str(padding); }

Upsample::Upsample(double scale, std::string mode, bool align_corners)
    : Module("Upsample"), scale(scale), mode(std::move(mode)), align_corners(align_corners) {
  SCALPEL_CHECK(scale > 0, "Upsample: scale must be positive, got {}", scale);
  SCALPEL_CHECK(this->mode == "nearest" || this->mode == "bilinear",
                "Upsample: mode must be nearest or bilinear, got '{}'", this->mode);
}

Tensor Upsample::forward(const Tensor& x) {
  SCALPEL_CHECK(x.dim() == 4, "{} (Upsample): expected an NCHW input, got {}", label(), shape_str(x.shape()));
  const auto out_h = static_cast<int64_t>(std::floor(static_cast<double>(x.size(2)) * scale));
  const auto out_w = static_cast<int64_t>(std::floor(static_cast<double>(x.size(3)) * scale));
  return upsample(x, out_h, out_w, mode, align_corners);
}

std::string Upsample::describe() const {
  return fmt::format("x{:g}, {}{}", scale, mode, align_corners ? ", align corners" : "");
}

}  // namespace scalpel::nn
