#pragma once
// Differentiable CNN operations (the "functional" API, as torch.nn.functional). Each op
// lives in layers/ops/<op>.{h,cpp}: the raw forward/backward kernels (a plain reference
// loop and fast paths beside it) and the autograd wrapper declared here.
// Layout: activations NCHW, conv weights [out, in/groups, kH, kW] (PyTorch), float32 or float64.
#include <array>
#include <optional>
#include <string>

#include "autograd/functions.h"
#include "tensor/gemm.h"
#include "tensor/random.h"

namespace scalpel::nn {

// Explicit per-side zero padding; TF/Keras "SAME" is resolved to this with same_padding().
struct Padding2d {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  static Padding2d symmetric(int64_t p) { return {p, p, p, p}; }
  static Padding2d symmetric(int64_t ph, int64_t pw) { return {ph, ph, pw, pw}; }
  bool operator==(const Padding2d&) const = default;
};

// TF "SAME" for one input size: total = max((ceil(in/stride)-1)*stride + (k-1)*dilation + 1 - in, 0),
// the extra pixel (when odd) goes bottom/right.
Padding2d same_padding(int64_t in_h, int64_t in_w, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                       int64_t stride_w, int64_t dilation_h = 1, int64_t dilation_w = 1);

struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  Padding2d padding;
  bool same = false;  // TF "SAME": padding computed per input size (overrides `padding`)
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};

// A per-input-channel transform an inference conv applies to its input first (nn::conv2d_fused,
// layers/ops/conv2d.h): x[n, c] -> activation(x[n, c] * scale[c] + shift[c]).
struct ConvInputTransform {
  Tensor scale, shift;  // [C_in] or both per sample [N, C_in, ...], or undefined (1 and 0)
  EpilogueActivation activation = EpilogueActivation::none;
  bool empty() const { return !scale.defined() && !shift.defined() && activation == EpilogueActivation::none; }
};

// x [N, C_in, H, W], weight [C_out, C_in/groups, kH, kW], bias [C_out] or undefined.
// Errors name the layer (`name`) and shapes when channels/groups/kernel do not fit.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options,
              const std::string& name = "conv2d");

struct ConvTranspose2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> output_padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};
// x [N, C_in, H, W], weight [C_in, C_out/groups, kH, kW] (PyTorch layout), bias [C_out].
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const ConvTranspose2dOptions& options, const std::string& name = "conv_transpose2d");

// y = x W^T + b; x [..., in], weight [out, in], bias [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const std::string& name = "linear");

// Batch norm over N, H, W per channel of x [N, C, H, W] (or [N, C]).
// training: normalizes with batch statistics (biased variance) and updates running_mean/var
// in place: running = (1 - momentum) * running + momentum * batch (unbiased variance), as PyTorch.
// eval: normalizes with the running statistics. weight/bias may be undefined (affine=false).
Tensor batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps,
                  const std::string& name = "batch_norm");
// relu(batch_norm(...)), the same values and gradients bit for bit. On the CPU the ReLU runs in
// the normalizing pass and backward keeps only the output (not batch norm's output as well):
// one pass over the activation and one tensor of it less; backward runs the ReLU's mask, then
// batch norm's. (Applying the mask as batch norm's backward reads the gradient measured no
// faster: those loops are compute-bound in double.) The output's grad_fn is named
// "batch_norm_relu". Elsewhere (a device, synchronized batch norm) the two ops run one after
// the other.
Tensor batch_norm_relu(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps,
                       const std::string& name = "batch_norm");

// ---- activations (elementwise) ----
// relu of a batch_norm_relu output (its grad_fn says so) is that tensor itself.
Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double slope);
Tensor silu(const Tensor& x);  // x * sigmoid(x), a.k.a. swish
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor hardswish(const Tensor& x);
Tensor hardsigmoid(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact (erf) form
Tensor softmax(const Tensor& x, int64_t axis);
Tensor log_softmax(const Tensor& x, int64_t axis);

// Activation chosen at run time by name: "relu", "relu6", "leaky_relu:<slope>", "silu",
// "swish", "sigmoid", "tanh", "hardswish", "hardsigmoid", "gelu", "identity".
struct Activation {
  std::string kind = "relu";
  double slope = 0.01;
  static Activation parse(const std::string& text);  // Error naming the text when unknown
  Tensor operator()(const Tensor& x) const;
  std::string str() const;
};

// ---- pooling ----
struct Pool2dOptions {
  std::array<int64_t, 2> kernel{2, 2};
  std::array<int64_t, 2> stride{0, 0};  // 0 = kernel (PyTorch default)
  Padding2d padding;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg only
};
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options, const std::string& name = "max_pool2d");
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options, const std::string& name = "avg_pool2d");
// Output [N, C, out_h, out_w] with PyTorch's start/end index rule.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor global_avg_pool(const Tensor& x);  // [N, C, H, W] -> [N, C]

// ---- resampling and padding ----
// mode "nearest" or "bilinear"; give either a size or a scale factor (size wins when > 0).
Tensor upsample(const Tensor& x, int64_t out_h, int64_t out_w, const std::string& mode, bool align_corners = false);
Tensor pad2d(const Tensor& x, const Padding2d& padding, double value = 0.0);

// ---- concatenation into a preallocated buffer (DenseNet blocks) ----
// Grows a channel concatenation without copying what is already there, as the
// memory-efficient DenseNet does: the buffer [N, capacity, H, W] is allocated once, the
// constructor copies `first` into its first channels, and append(y) copies only y into the
// next free channels. filled() is the concatenation so far, a view of the buffer [N, filled,
// H, W] with autograd history: its gradient goes back to `first` and to every appended y as
// slices of the incoming gradient. A view returned earlier stays valid (later appends write
// past it), so layers may keep it for their backward. Errors name `name` and the shapes.
// (torch.cat of all earlier outputs in every layer would copy O(layers^2) channels.)
class ChannelBuffer {
 public:
  ChannelBuffer(const Tensor& first, int64_t capacity, std::string name = "channel_buffer");
  Tensor append(const Tensor& y);  // returns the new filled()
  const Tensor& filled() const { return filled_; }
  const Tensor& buffer() const { return buffer_; }  // the whole allocation, without history

 private:
  std::string name_;
  Tensor buffer_, filled_;
};

// ---- regularization (identity in eval mode; masks drawn from `gen`) ----
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());
// Stochastic depth: drops whole samples with probability p, scales survivors by 1/(1-p).
Tensor drop_path(const Tensor& x, double p, bool training, Generator& gen = default_generator());

}  // namespace scalpel::nn
