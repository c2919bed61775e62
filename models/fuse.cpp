#include "models/fuse.h"

#include <cmath>
#include <map>
#include <vector>

#include "autograd/autograd.h"
#include "layers/modules.h"
#include "tensor/error.h"

namespace scalpel::models {
namespace {

struct Call {
  nn::Module* module;
  Tensor input, output;  // kept alive during the probe so no address is reused by a later tensor
};

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.raw_data() == b.raw_data() && a.shape() == b.shape();
}

bool foldable(const Tensor& t) { return t.defined() && t.dtype() == DType::F32 && t.device().is_cpu() && t.is_contiguous(); }

// W' = s W, b' = s (b - mean) + beta, computed in double.
void fold(nn::Conv2d& conv, nn::BatchNorm2d& bn) {
  const int64_t out = conv.out_channels;
  if (!conv.bias.defined()) conv.bias = conv.register_parameter("bias", Tensor::zeros({out}));
  float* w = conv.weight.data<float>();
  float* b = conv.bias.data<float>();
  const float* gamma = bn.weight.defined() ? bn.weight.data<float>() : nullptr;  // affine=false: 1, 0
  const float* beta = bn.bias.defined() ? bn.bias.data<float>() : nullptr;
  const float* mean = bn.running_mean.data<float>();
  const float* var = bn.running_var.data<float>();
  const int64_t per_channel = conv.weight.numel() / out;
  for (int64_t o = 0; o < out; ++o) {
    const double s = (gamma ? gamma[o] : 1.0) / std::sqrt(static_cast<double>(var[o]) + bn.eps);
    for (int64_t i = 0; i < per_channel; ++i) w[o * per_channel + i] = static_cast<float>(w[o * per_channel + i] * s);
    b[o] = static_cast<float>((b[o] - static_cast<double>(mean[o])) * s + (beta ? beta[o] : 0.0));
  }
  bn.folded = true;
}

}  // namespace

FuseReport fuse_batchnorm(nn::Module& model, const Shape& input_shape) {
  SCALPEL_CHECK(!model.is_training(), "fuse_batchnorm: {} is in training mode; BatchNorm folding is for eval mode only",
                model.type());
  std::vector<Call> calls;
  {
    NoGradGuard no_grad;
    nn::ForwardHookGuard hook([&](nn::Module& m, const Tensor& in, const Tensor& out) { calls.push_back({&m, in, out}); });
    model(Tensor::zeros(input_shape));
  }
  std::map<nn::Module*, int> times_called;
  for (const Call& c : calls) ++times_called[c.module];

  FuseReport report;
  for (size_t i = 0; i < calls.size(); ++i) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(calls[i].module);
    if (!bn) continue;
    ++report.batchnorms;
    if (bn->folded || times_called[bn] != 1) continue;
    // The producer: an earlier Conv2d call whose output is this BN's input (a composite
    // module ending with that conv returns the same tensor, so look for the conv itself).
    nn::Conv2d* conv = nullptr;
    int leaf_consumers = 0;  // composite modules whose first child is the BN see its input too
    for (size_t j = 0; j < calls.size(); ++j) {
      if (j < i && same_tensor(calls[j].output, calls[i].input))
        if (auto* c = dynamic_cast<nn::Conv2d*>(calls[j].module)) conv = c;
      if (same_tensor(calls[j].input, calls[i].input) && calls[j].module->named_children().empty()) ++leaf_consumers;
    }
    if (!conv || times_called[conv] != 1 || conv->out_channels != bn->num_features || leaf_consumers != 1) continue;
    if (!foldable(conv->weight) || (conv->bias.defined() && !foldable(conv->bias)) || !foldable(bn->running_mean) ||
        !foldable(bn->running_var) || (bn->weight.defined() && !foldable(bn->weight)) ||
        (bn->bias.defined() && !foldable(bn->bias)))
      continue;
    fold(*conv, *bn);
    ++report.folded;
  }
  return report;
}

}  // namespace scalpel::models
