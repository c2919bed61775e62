#include "models/fuse.h"

#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "autograd/autograd.h"
#include "layers/blocks.h"
#include "layers/modules.h"
#include "models/densenet.h"
#include "models/resnet.h"
#include "tensor/error.h"
#include "tensor/gemm.h"

namespace scalpel::models {
namespace {

// What the probe forward saw of a tensor, without keeping its memory: the probe's
// activations are freed as they would be in inference (holding them all was the peak RSS of
// every batch-1 benchmark: densenet121 +165 MB). The weak reference keeps the storage's
// control block, so a later tensor that reuses the freed address is still told apart.
struct TensorId {
  std::weak_ptr<Storage> storage;
  const void* data = nullptr;
  Shape shape;
  explicit TensorId(const Tensor& t) {
    if (!t.defined()) return;
    storage = t.storage();
    data = t.raw_data();
    shape = t.shape();
  }
};

struct Call {
  nn::Module* module;
  TensorId input, output;
};

// The same tensor (storage, first element and shape) in two calls of the probe.
bool same_tensor(const TensorId& a, const TensorId& b) {
  const bool same_storage = !a.storage.owner_before(b.storage) && !b.storage.owner_before(a.storage);
  return a.data != nullptr && same_storage && a.data == b.data && a.shape == b.shape;
}

// Runs one forward of zeros without autograd and records every module call.
std::vector<Call> probe_calls(nn::Module& model, const Shape& input_shape) {
  std::vector<Call> calls;
  NoGradGuard no_grad;
  nn::ForwardHookGuard hook(
      [&](nn::Module& m, const Tensor& in, const Tensor& out) { calls.push_back({&m, TensorId(in), TensorId(out)}); });
  model(Tensor::zeros(input_shape));
  return calls;
}

// The module calls of one probe forward, by module.
class ProbedCalls {
 public:
  ProbedCalls(nn::Module& model, const Shape& input_shape) : calls_(probe_calls(model, input_shape)) {
    for (const Call& c : calls_) by_module_[c.module].push_back(&c);
  }
  // Both called once, and the consumer's input is the producer's output.
  bool feeds(nn::Module* producer, nn::Module* consumer) const {
    const auto p = by_module_.find(producer), c = by_module_.find(consumer);
    return p != by_module_.end() && c != by_module_.end() && p->second.size() == 1 && c->second.size() == 1 &&
           same_tensor(p->second[0]->output, c->second[0]->input);
  }

 private:
  std::vector<Call> calls_;
  std::map<nn::Module*, std::vector<const Call*>> by_module_;
};

bool foldable(const Tensor& t) { return t.defined() && t.dtype() == DType::F32 && t.device().is_cpu() && t.is_contiguous(); }

// BN's eval-mode scale of channel c, gamma / sqrt(var + eps), in double.
double bn_eval_scale(const nn::BatchNorm2d& bn, int64_t c) {
  const double gamma = bn.weight.defined() ? bn.weight.data<float>()[c] : 1.0;  // affine=false: 1, 0
  return gamma / std::sqrt(static_cast<double>(bn.running_var.data<float>()[c]) + bn.eps);
}

// W' = s W, b' = s (b - mean) + beta, computed in double.
void fold(nn::Conv2d& conv, nn::BatchNorm2d& bn) {
  const int64_t out = conv.out_channels;
  if (!conv.bias.defined()) conv.bias = conv.register_parameter("bias", Tensor::zeros({out}));
  float* w = conv.weight.data<float>();
  float* b = conv.bias.data<float>();
  const float* beta = bn.bias.defined() ? bn.bias.data<float>() : nullptr;
  const float* mean = bn.running_mean.data<float>();
  const int64_t per_channel = conv.weight.numel() / out;
  for (int64_t o = 0; o < out; ++o) {
    const double s = bn_eval_scale(bn, o);
    for (int64_t i = 0; i < per_channel; ++i) w[o * per_channel + i] = static_cast<float>(w[o * per_channel + i] * s);
    b[o] = static_cast<float>((b[o] - static_cast<double>(mean[o])) * s + (beta ? beta[o] : 0.0));
  }
  bn.folded = true;
}

}  // namespace

FuseReport fuse_batchnorm(nn::Module& model, const Shape& input_shape) {
  SCALPEL_CHECK(!model.is_training(), "fuse_batchnorm: {} is in training mode; BatchNorm folding is for eval mode only",
                model.type());
  const std::vector<Call> calls = probe_calls(model, input_shape);
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

namespace {

// The epilogue that computes `a`, or none when the conv store cannot apply it.
EpilogueActivation epilogue_for(const nn::Activation& a) {
  if (a.kind == "relu") return EpilogueActivation::relu;
  if (a.kind == "relu6") return EpilogueActivation::relu6;
  if (a.kind == "silu" || a.kind == "swish") return EpilogueActivation::silu;
  if (a.kind == "hardswish") return EpilogueActivation::hardswish;
  return EpilogueActivation::none;
}

// Marks a ResNet block fused when its BNs are folded into float32 CPU convs (the inner
// convs then apply the ReLU; the block's forward hands the shortcut to the last conv).
template <typename Block>
bool fuse_resnet_block(Block& block, std::initializer_list<nn::Conv2d*> inner, nn::Conv2d& last,
                       std::initializer_list<nn::BatchNorm2d*> bns) {
  if (block.fused) return false;
  for (nn::BatchNorm2d* bn : bns)
    if (!bn->folded) return false;
  for (nn::Conv2d* conv : inner)
    if (!foldable(conv->weight) || conv->fused_activation != EpilogueActivation::none) return false;
  if (!foldable(last.weight)) return false;
  for (nn::Conv2d* conv : inner) conv->fused_activation = EpilogueActivation::relu;
  block.fused = true;
  return true;
}

// A 1x1, stride-1, unpadded conv of one group with CPU float32 weights and no input transform
// yet: one that can apply a per-channel transform as its GEMM packs its input.
bool plain_pointwise(const nn::Conv2d& conv) {
  return conv.kernel == std::array<int64_t, 2>{1, 1} && conv.options.stride == std::array<int64_t, 2>{1, 1} &&
         conv.options.padding == nn::Padding2d{} && conv.options.groups == 1 && foldable(conv.weight) &&
         conv.fused_input.empty();
}

// Marks an MBConv fused (nn::MBConv::fused) when its block ends with a squeeze-excite and a
// 1x1 projection conv of one group whose BN is folded and which has no activation.
bool fuse_mbconv(nn::MBConv& mb) {
  const auto layers = mb.block->named_children();
  if (mb.fused || layers.size() < 3 || !dynamic_cast<nn::SqueezeExcite*>(layers[layers.size() - 2].second.get()))
    return false;
  auto* project = dynamic_cast<nn::ConvBNAct*>(layers.back().second.get());
  if (!project || (project->bn && !project->bn->folded) ||
      project->named_children().size() != (project->bn ? 2u : 1u))  // an activation layer follows
    return false;
  if (!plain_pointwise(*project->conv) || project->conv->fused_activation != EpilogueActivation::none) return false;
  mb.fused = true;
  return true;
}

// Marks a residual InvertedResidual fused (nn::InvertedResidual::fused) when its projection
// conv's BN is folded and the conv has no activation of its own.
bool fuse_inverted_residual(nn::InvertedResidual& block) {
  const auto layers = block.conv->named_children();
  if (block.fused || !block.use_residual || layers.size() < 3) return false;
  auto* project = dynamic_cast<nn::Conv2d*>(layers[layers.size() - 2].second.get());
  auto* bn = dynamic_cast<nn::BatchNorm2d*>(layers.back().second.get());
  if (!project || !bn || !bn->folded || !foldable(project->weight) || !project->fused_input.empty() ||
      project->fused_activation != EpilogueActivation::none)
    return false;
  block.fused = true;
  return true;
}

// Modules whose children run one after the other, each one's output the next one's input and
// nothing else's: a Sequential's children, a DenseLayer's (DenseLayer::forward) and a ResNet's
// stem (ResNet::features).
std::vector<std::vector<nn::Module*>> chains_of(nn::Module& model) {
  std::vector<std::vector<nn::Module*>> chains;
  for (auto& [name, m] : model.named_modules()) {
    if (dynamic_cast<nn::Sequential*>(m)) {
      std::vector<nn::Module*> chain;
      for (auto& [child_name, child] : m->named_children()) chain.push_back(child.get());
      chains.push_back(chain);
    } else if (auto* d = dynamic_cast<DenseLayer*>(m)) {
      chains.push_back({d->norm1.get(), d->relu1.get(), d->conv1.get(), d->norm2.get(), d->relu2.get(), d->conv2.get()});
    } else if (auto* r = dynamic_cast<ResNet*>(m)) {
      chains.push_back({r->conv1.get(), r->bn1.get(), r->relu.get()});
    }
  }
  return chains;
}

// BN(x) = x * scale + shift per channel in eval mode, in float64 then rounded.
std::pair<Tensor, Tensor> eval_affine(const nn::BatchNorm2d& bn) {
  const int64_t C = bn.num_features;
  Tensor scale = Tensor::empty({C}), shift = Tensor::empty({C});
  const float* beta = bn.bias.defined() ? bn.bias.data<float>() : nullptr;
  const float* mean = bn.running_mean.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    const double s = bn_eval_scale(bn, c);
    scale.data<float>()[c] = static_cast<float>(s);
    shift.data<float>()[c] = static_cast<float>((beta ? beta[c] : 0.0) - mean[c] * s);
  }
  return {scale, shift};
}

bool bn_params_foldable(const nn::BatchNorm2d& bn) {
  return foldable(bn.running_mean) && foldable(bn.running_var) && (!bn.weight.defined() || foldable(bn.weight)) &&
         (!bn.bias.defined() || foldable(bn.bias));
}

// An unfolded BatchNorm2d, with the activation it applies (an ActivationLayer folded into it)
// if any, followed in a chain by a 1x1 conv of one group: the conv applies both as it reads
// its input (Conv2d::fused_input), and the BN steps aside (applied_by_next_conv). Confirmed
// with a probe forward: each called once, the conv's input the BN's output. Returns how many.
int64_t fuse_into_next_conv(nn::Module& model, const Shape& input_shape) {
  std::vector<std::pair<nn::BatchNorm2d*, nn::Conv2d*>> pairs;
  for (const std::vector<nn::Module*>& chain : chains_of(model)) {
    for (size_t i = 0; i < chain.size(); ++i) {
      auto* bn = dynamic_cast<nn::BatchNorm2d*>(chain[i]);
      if (!bn || bn->folded || bn->applied_by_next_conv || !bn_params_foldable(*bn)) continue;
      size_t next = i + 1;
      if (auto* act = next < chain.size() ? dynamic_cast<nn::ActivationLayer*>(chain[next]) : nullptr;
          act && act->folded && bn->fused_activation != EpilogueActivation::none)
        ++next;
      auto* conv = next < chain.size() ? dynamic_cast<nn::Conv2d*>(chain[next]) : nullptr;
      if (!conv || !plain_pointwise(*conv) || conv->in_channels != bn->num_features) continue;
      pairs.emplace_back(bn, conv);
    }
  }
  if (pairs.empty()) return 0;
  const ProbedCalls probe(model, input_shape);
  int64_t fused = 0;
  for (auto [bn, conv] : pairs) {
    if (!probe.feeds(bn, conv)) continue;
    auto [scale, shift] = eval_affine(*bn);
    conv->fused_input = {scale, shift, bn->fused_activation};
    bn->applied_by_next_conv = true;
    ++fused;
  }
  return fused;
}

}  // namespace

InferenceFuseReport fuse_for_inference(nn::Module& model, const Shape& input_shape) {
  InferenceFuseReport report;
  report.batchnorm = fuse_batchnorm(model, input_shape);
  for (auto& [name, m] : model.named_modules()) {
    if (auto* b = dynamic_cast<nn::Bottleneck*>(m))
      report.blocks += fuse_resnet_block(*b, {b->conv1.get(), b->conv2.get()}, *b->conv3, {b->bn1.get(), b->bn2.get(), b->bn3.get()});
    else if (auto* b = dynamic_cast<nn::BasicBlock*>(m))
      report.blocks += fuse_resnet_block(*b, {b->conv1.get()}, *b->conv2, {b->bn1.get(), b->bn2.get()});
    else if (auto* mb = dynamic_cast<nn::MBConv*>(m))
      report.squeeze_excite_blocks += fuse_mbconv(*mb);
    else if (auto* ir = dynamic_cast<nn::InvertedResidual*>(m))
      report.blocks += fuse_inverted_residual(*ir);
  }

  // Candidates from the structure: conv, [folded BN,] activation, adjacent in a chain, so
  // that the conv's output reaches nothing but the activation; or an unfolded BN, activation.
  std::map<nn::ActivationLayer*, nn::Conv2d*> candidates;
  std::map<nn::ActivationLayer*, nn::BatchNorm2d*> bn_candidates;
  for (const std::vector<nn::Module*>& chain : chains_of(model)) {
    for (size_t i = 0; i + 1 < chain.size(); ++i) {
      if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(chain[i]); bn && !bn->folded) {
        auto* act = dynamic_cast<nn::ActivationLayer*>(chain[i + 1]);
        const bool params_ok = bn_params_foldable(*bn);
        if (act && !act->folded && params_ok && bn->fused_activation == EpilogueActivation::none &&
            epilogue_for(act->activation) != EpilogueActivation::none)
          bn_candidates[act] = bn;
        continue;
      }
      auto* conv = dynamic_cast<nn::Conv2d*>(chain[i]);
      if (!conv || conv->fused_activation != EpilogueActivation::none || !foldable(conv->weight)) continue;
      size_t next = i + 1;
      if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(chain[next]); bn && bn->folded) ++next;
      if (next >= chain.size()) continue;
      auto* act = dynamic_cast<nn::ActivationLayer*>(chain[next]);
      if (act && !act->folded && epilogue_for(act->activation) != EpilogueActivation::none) candidates[act] = conv;
    }
  }
  // Confirm with the data flow of a probe forward: each module called once, and the
  // activation's input is the conv's output (a Sequential subclass may reorder its children).
  if (!candidates.empty() || !bn_candidates.empty()) {
    const ProbedCalls probe(model, input_shape);
    for (auto [act, conv] : candidates) {
      if (!probe.feeds(conv, act)) continue;
      conv->fused_activation = epilogue_for(act->activation);
      act->folded = true;
      ++report.activations;
    }
    for (auto [act, bn] : bn_candidates) {
      if (!probe.feeds(bn, act)) continue;
      bn->fused_activation = epilogue_for(act->activation);
      act->folded = true;
      ++report.batchnorm_activations;
    }
  }
  report.input_transforms = fuse_into_next_conv(model, input_shape);

  // The conv weights are final now (folded, and a fused model is never trained): the bf16
  // GEMM converts them once, on first use, instead of per call, and the float GEMM packs
  // those it runs transposed (tensor/gemm.h). Depthwise convs do not run as GEMMs. Declared
  // after the probes above, whose forward at input_shape would otherwise derive that data for
  // a shape the caller may never run (resnet50: layer4's panels at batch 1, +60 MB of peak
  // RSS for a batch-8 benchmark).
  for (auto& [name, m] : model.named_modules()) {
    auto* conv = dynamic_cast<nn::Conv2d*>(m);
    if (!conv || !foldable(conv->weight)) continue;
    const int64_t groups = conv->options.groups, per_group = conv->out_channels / groups;
    const int64_t K = conv->weight.numel() / conv->out_channels;  // in_channels / groups * kh * kw
    if (per_group == 1 && conv->in_channels == groups) continue;
    const float* w = conv->weight.data<float>();
    for (int64_t g = 0; g < groups; ++g)
      prepack_constant_a(w + g * per_group * K, per_group, K, K, conv->weight.storage());
    ++report.prepacked;
  }
  return report;
}

int64_t fuse_for_training(nn::Module& model, const Shape& input_shape) {
  // The fused op runs on the CPU (elsewhere it is the two ops), and the probe feeds CPU zeros.
  for (const Tensor& p : model.parameters())
    if (!p.device().is_cpu()) return 0;
  int64_t marked = 0;
  auto mark = [&](nn::BatchNorm2d* bn) {
    if (!bn || bn->relu_in_training) return;
    bn->relu_in_training = true;
    ++marked;
  };
  // The blocks' own forwards apply relu to these BNs' outputs and use them nowhere else.
  for (auto& [name, m] : model.named_modules()) {
    if (auto* b = dynamic_cast<nn::Bottleneck*>(m)) {
      mark(b->bn1.get());
      mark(b->bn2.get());
    } else if (auto* b = dynamic_cast<nn::BasicBlock*>(m)) {
      mark(b->bn1.get());
    } else if (auto* b = dynamic_cast<nn::PreActBottleneck*>(m)) {
      mark(b->preact_bn.get());
      mark(b->bn1.get());
      mark(b->bn2.get());
    }
  }
  std::vector<std::pair<nn::BatchNorm2d*, nn::ActivationLayer*>> pairs;
  for (const std::vector<nn::Module*>& chain : chains_of(model)) {
    for (size_t i = 0; i + 1 < chain.size(); ++i) {
      auto* bn = dynamic_cast<nn::BatchNorm2d*>(chain[i]);
      auto* act = dynamic_cast<nn::ActivationLayer*>(chain[i + 1]);
      if (bn && !bn->relu_in_training && act && act->activation.kind == "relu") pairs.emplace_back(bn, act);
    }
  }
  if (pairs.empty()) return marked;
  const bool was_training = model.is_training();
  model.eval();  // a training-mode probe would update the running statistics
  const ProbedCalls probe(model, input_shape);
  model.train(was_training);
  for (auto [bn, act] : pairs)
    if (probe.feeds(bn, act)) mark(bn);
  return marked;
}

}  // namespace scalpel::models
