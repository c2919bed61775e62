#include "models/export/zoo_graph.h"

#include <cmath>
#include <set>

#include "autograd/autograd.h"
#include "layers/blocks.h"
#include "models/densenet.h"
#include "models/efficientnet.h"
#include "models/inception.h"
#include "models/mobilenet.h"
#include "models/resnet.h"
#include "models/unet.h"
#include "models/vgg.h"
#include "models/xception.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::models {

namespace {

// A value of the graph and its tensor at the probe input.
struct Value {
  std::string name;
  Tensor t;
};

Json ints(std::initializer_list<int64_t> values) {
  Json out = Json::array();
  for (int64_t v : values) out.push_back(v);
  return out;
}
Json pads(const nn::Padding2d& p) { return ints({p.top, p.left, p.bottom, p.right}); }

Json pool_attrs(const nn::Pool2dOptions& o, bool average) {
  Json a = Json::object();
  a["kernel"] = ints({o.kernel[0], o.kernel[1]});
  a["stride"] = ints({o.stride[0] ? o.stride[0] : o.kernel[0], o.stride[1] ? o.stride[1] : o.kernel[1]});
  a["pads"] = pads(o.padding);
  a["ceil_mode"] = o.ceil_mode;
  if (average) a["count_include_pad"] = o.count_include_pad;
  return a;
}

class Walker {
 public:
  Walker(Model& model, ExportedGraph& out) : model_(model), out_(out) {}

  Value walk(const Value& x) {
    if (auto* m = dynamic_cast<ResNet*>(&model_)) {
      Value y = chain({m->conv1.get(), m->bn1.get(), m->relu.get(), m->maxpool.get()}, x);
      for (auto& layer : m->layers) y = module(*layer, y);
      return module(*m->fc, flatten("flatten", module(*m->avgpool, y)));
    }
    if (auto* m = dynamic_cast<ResNetV2*>(&model_)) {
      Value y = chain({m->conv1.get(), m->pool_pad.get(), m->maxpool.get()}, x);
      for (auto& layer : m->layers) y = module(*layer, y);
      return chain({m->post_bn.get(), m->post_relu.get(), m->avgpool.get(), m->fc.get()}, y);
    }
    if (auto* m = dynamic_cast<VGG*>(&model_))
      return module(*m->classifier, flatten("flatten", chain({m->features_seq.get(), m->avgpool.get()}, x)));
    if (auto* m = dynamic_cast<MobileNetV1*>(&model_))
      return chain({m->stage1.get(), m->stage2.get(), m->stage3.get(), m->avgpool.get(), m->dropout.get(), m->fc.get()},
                   x);
    if (auto* m = dynamic_cast<MobileNetV2*>(&model_)) {
      Value y = module(*m->features_seq, x);
      return module(*m->classifier, flatten("flatten", adaptive_avg_pool("avgpool", y, 1, 1)));
    }
    if (auto* m = dynamic_cast<EfficientNet*>(&model_))
      return module(*m->classifier, flatten("flatten", chain({m->features_seq.get(), m->avgpool.get()}, x)));
    if (auto* m = dynamic_cast<DenseNet*>(&model_)) {
      Value y = relu("features.relu", module(*m->features_seq, x));
      return module(*m->classifier, flatten("flatten", adaptive_avg_pool("avgpool", y, 1, 1)));
    }
    if (auto* m = dynamic_cast<InceptionV3*>(&model_)) {  // eval mode: no auxiliary classifier
      Value y = x;
      for (auto& s : m->stem) y = module(*s, y);
      for (auto& b : m->mixed_6) y = module(*b, y);
      for (auto& b : m->mixed_7) y = module(*b, y);
      return module(*m->fc, flatten("flatten", chain({m->avgpool.get(), m->dropout.get()}, y)));
    }
    if (auto* m = dynamic_cast<Xception*>(&model_)) {
      Value y = x;
      for (auto& b : m->body) y = module(*b, y);
      return chain({m->avg_pool.get(), m->predictions.get()}, y);
    }
    if (auto* m = dynamic_cast<UNet*>(&model_)) {
      const Value x1 = module(*m->inc, x), x2 = module(*m->down1, x1), x3 = module(*m->down2, x2),
                  x4 = module(*m->down3, x3), x5 = module(*m->down4, x4);
      Value y = up(*m->up1, x5, x4);
      y = up(*m->up2, y, x3);
      y = up(*m->up3, y, x2);
      return module(*m->outc, up(*m->up4, y, x1));
    }
    fail("{}: the exporter has no walker for this model ({})", model_.name(), model_.type());
  }

 private:
  // ---- nodes ----
  Value node(const std::string& scope, const std::string& op, const std::vector<Value>& inputs, Json attrs,
             Tensor result, const std::vector<std::pair<std::string, Tensor>>& params = {}) {
    GraphNode n;
    n.name = unique_name(scope.empty() ? op : scope);
    n.op = op;
    for (const Value& v : inputs) n.inputs.push_back(v.name);
    n.output = n.name;
    n.attrs = std::move(attrs);
    for (const auto& [param, t] : params) out_.weights.emplace_back(n.name + "." + param, t.to(Device::cpu()).contiguous());
    out_.spec.nodes.push_back(std::move(n));
    return {out_.spec.nodes.back().output, std::move(result)};
  }

  // "layer1.0.conv1" -> "layer1_0_conv1", made unique with a counter.
  std::string unique_name(const std::string& scope) {
    const std::string name = graph_safe_name(scope);
    std::string candidate = name;
    for (int i = 2; !names_.insert(candidate).second; ++i) candidate = fmt::format("{}_{}", name, i);
    return candidate;
  }
  std::string scope(const nn::Module& m, const std::string& suffix) const {
    return m.path().empty() ? suffix : m.path() + "." + suffix;
  }

  // ---- glue ops, computed with the same functions the forward()s call ----
  Value relu(const std::string& scope, const Value& x) { return node(scope, "relu", {x}, Json::object(), nn::relu(x.t)); }
  Value add(const std::string& scope, const Value& a, const Value& b) {
    return node(scope, "add", {a, b}, Json::object(), scalpel::add(a.t, b.t));
  }
  Value flatten(const std::string& scope, const Value& x) {
    Json a = Json::object();
    a["axis"] = 1;
    return node(scope, "flatten", {x}, a, scalpel::flatten(x.t, 1));
  }
  Value concat(const std::string& scope, const std::vector<Value>& parts) {
    std::vector<Tensor> ts;
    for (const Value& v : parts) ts.push_back(v.t);
    Json a = Json::object();
    a["axis"] = 1;
    return node(scope, "concat", parts, a, scalpel::concat(ts, 1));
  }
  Value max_pool(const std::string& scope, const Value& x, const nn::Pool2dOptions& o) {
    return node(scope, "max_pool2d", {x}, pool_attrs(o, false), nn::max_pool2d(x.t, o));
  }
  Value avg_pool(const std::string& scope, const Value& x, const nn::Pool2dOptions& o) {
    return node(scope, "avg_pool2d", {x}, pool_attrs(o, true), nn::avg_pool2d(x.t, o));
  }
  Value activation(const std::string& scope, const nn::Activation& act, const Value& x) {
    const Tensor y = act(x.t);
    Json a = Json::object();
    const std::string& k = act.kind;
    if (k == "identity") return x;
    if (k == "relu" || k == "relu6" || k == "sigmoid" || k == "tanh" || k == "gelu") return node(scope, k, {x}, a, y);
    if (k == "silu" || k == "swish") return node(scope, "silu", {x}, a, y);
    if (k == "hardswish") return node(scope, "hard_swish", {x}, a, y);
    if (k == "hardsigmoid") {  // PyTorch's: relu6(x + 3) / 6
      a["alpha"] = 1.0 / 6.0;
      a["beta"] = 0.5;
      return node(scope, "hard_sigmoid", {x}, a, y);
    }
    if (k == "leaky_relu") {
      a["slope"] = act.slope;
      return node(scope, "leaky_relu", {x}, a, y);
    }
    fail("{}: activation '{}' has no export", scope, act.str());
  }
  // PyTorch's adaptive average pooling: global pooling for 1x1, nothing when the size is kept,
  // a plain average pool when the sizes divide, else two matmuls with the averaging matrices.
  Value adaptive_avg_pool(const std::string& scope, const Value& x, int64_t out_h, int64_t out_w) {
    const Tensor y = nn::adaptive_avg_pool2d(x.t, out_h, out_w);
    const int64_t h = x.t.size(2), w = x.t.size(3);
    if (out_h == 1 && out_w == 1) {
      Json a = Json::object();
      a["keepdims"] = true;
      return node(scope, "global_avg_pool", {x}, a, y);
    }
    if (out_h == h && out_w == w) return x;
    if (h % out_h == 0 && w % out_w == 0) {
      nn::Pool2dOptions o;
      o.kernel = {h / out_h, w / out_w};
      o.stride = o.kernel;
      return node(scope, "avg_pool2d", {x}, pool_attrs(o, true), y);
    }
    auto averaging = [](int64_t in, int64_t out) {  // [out, in]: row i averages PyTorch's window i
      Tensor m = Tensor::zeros({out, in});
      for (int64_t i = 0; i < out; ++i) {
        const int64_t start = i * in / out, end = ((i + 1) * in + out - 1) / out;
        for (int64_t j = start; j < end; ++j) m.data<float>()[i * in + j] = 1.0f / static_cast<float>(end - start);
      }
      return m;
    };
    const Tensor pw = averaging(w, out_w).transpose(0, 1).contiguous(), ph = averaging(h, out_h);
    const Value cw = node(scope + ".cols", "constant", {}, Json::object(), pw, {{"value", pw}});
    const Value rows = node(scope + ".rows_in", "matmul", {x, cw}, Json::object(), scalpel::matmul(x.t, pw));
    const Value ch = node(scope + ".rows", "constant", {}, Json::object(), ph, {{"value", ph}});
    return node(scope, "matmul", {ch, rows}, Json::object(), y);
  }

  // ---- modules ----
  Value chain(const std::vector<nn::Module*>& modules, Value x) {
    for (nn::Module* m : modules)
      if (m) x = module(*m, x);
    return x;
  }

  Value module(nn::Module& m, const Value& x) {
    const std::string name = m.path();
    if (auto* c = dynamic_cast<nn::Conv2d*>(&m)) {
      SCALPEL_CHECK(c->fused_activation == EpilogueActivation::none,
                    "{}: conv '{}' runs fused for inference; export the model as loaded", model_.name(), name);
      Json a = Json::object();
      a["in_channels"] = c->in_channels;
      a["out_channels"] = c->out_channels;
      a["kernel"] = ints({c->kernel[0], c->kernel[1]});
      a["stride"] = ints({c->options.stride[0], c->options.stride[1]});
      a["dilation"] = ints({c->options.dilation[0], c->options.dilation[1]});
      a["groups"] = c->options.groups;
      if (c->options.same)
        a["same"] = true;
      else
        a["pads"] = pads(c->options.padding);
      a["bias"] = c->bias.defined();
      std::vector<std::pair<std::string, Tensor>> params = {{"weight", c->weight}};
      if (c->bias.defined()) params.emplace_back("bias", c->bias);
      return node(name, "conv2d", {x}, a, m(x.t), params);
    }
    if (auto* c = dynamic_cast<nn::ConvTranspose2d*>(&m)) {
      Json a = Json::object();
      a["in_channels"] = c->in_channels;
      a["out_channels"] = c->out_channels;
      a["kernel"] = ints({c->kernel[0], c->kernel[1]});
      a["stride"] = ints({c->options.stride[0], c->options.stride[1]});
      a["dilation"] = ints({c->options.dilation[0], c->options.dilation[1]});
      a["groups"] = c->options.groups;
      const auto& p = c->options.padding;
      a["pads"] = ints({p[0], p[1], p[0], p[1]});
      a["output_padding"] = ints({c->options.output_padding[0], c->options.output_padding[1]});
      a["bias"] = c->bias.defined();
      std::vector<std::pair<std::string, Tensor>> params = {{"weight", c->weight}};
      if (c->bias.defined()) params.emplace_back("bias", c->bias);
      return node(name, "conv_transpose2d", {x}, a, m(x.t), params);
    }
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) {
      Json a = Json::object();
      a["in_features"] = l->in_features;
      a["out_features"] = l->out_features;
      a["bias"] = l->bias.defined();
      std::vector<std::pair<std::string, Tensor>> params = {{"weight", l->weight}};
      if (l->bias.defined()) params.emplace_back("bias", l->bias);
      return node(name, "linear", {x}, a, m(x.t), params);
    }
    if (auto* b = dynamic_cast<nn::BatchNorm2d*>(&m)) {
      SCALPEL_CHECK(!b->folded, "{}: batch norm '{}' is folded; export the model as loaded", model_.name(), name);
      SCALPEL_CHECK(b->weight.defined() && b->bias.defined(), "{}: batch norm '{}' without affine parameters",
                    model_.name(), name);
      Json a = Json::object();
      a["channels"] = b->num_features;
      a["eps"] = b->eps;
      a["momentum"] = b->momentum;
      return node(name, "batch_norm", {x}, a, m(x.t),
                  {{"weight", b->weight}, {"bias", b->bias}, {"running_mean", b->running_mean},
                   {"running_var", b->running_var}});
    }
    if (auto* a = dynamic_cast<nn::ActivationLayer*>(&m)) return activation(name, a->activation, x);
    if (auto* p = dynamic_cast<nn::MaxPool2d*>(&m)) return max_pool(name, x, p->options);
    if (auto* p = dynamic_cast<nn::AvgPool2d*>(&m)) return avg_pool(name, x, p->options);
    if (auto* p = dynamic_cast<nn::AdaptiveAvgPool2d*>(&m)) return adaptive_avg_pool(name, x, p->out_h, p->out_w);
    if (dynamic_cast<nn::GlobalAvgPool*>(&m)) {
      Json a = Json::object();
      a["keepdims"] = false;
      return node(name, "global_avg_pool", {x}, a, m(x.t));
    }
    if (auto* f = dynamic_cast<nn::Flatten*>(&m)) {
      SCALPEL_CHECK(f->end_axis == -1, "{}: flatten '{}' stops before the last axis", model_.name(), name);
      Json a = Json::object();
      a["axis"] = f->start_axis;
      return node(name, "flatten", {x}, a, m(x.t));
    }
    if (auto* p = dynamic_cast<nn::ZeroPad2d*>(&m)) {
      Json a = Json::object();
      a["pads"] = pads(p->padding);
      return node(name, "pad", {x}, a, m(x.t));
    }
    if (auto* u = dynamic_cast<nn::Upsample*>(&m)) {
      Json a = Json::object();
      a["mode"] = u->mode;
      a["scale"] = Json::array({u->scale, u->scale});
      a["coordinates"] = u->mode == "nearest" ? "asymmetric" : u->align_corners ? "align_corners" : "half_pixel";
      return node(name, "upsample", {x}, a, m(x.t));
    }
    // Identity in evaluation mode.
    if (dynamic_cast<nn::Identity*>(&m) || dynamic_cast<nn::Dropout*>(&m) || dynamic_cast<nn::DropPath*>(&m)) return x;

    // ---- blocks ----
    if (auto* b = dynamic_cast<nn::SeparableConv2d*>(&m)) return chain({b->depthwise.get(), b->pointwise.get()}, x);
    if (auto* b = dynamic_cast<nn::SqueezeExcite*>(&m)) {
      Value s = adaptive_avg_pool(scope(m, "avgpool"), x, 1, 1);
      s = activation(scope(m, "scale_activation"), b->scale_activation,
                     module(*b->fc2, activation(scope(m, "activation"), b->activation, module(*b->fc1, s))));
      return node(scope(m, "mul"), "mul", {x, s}, Json::object(), scalpel::mul(x.t, s.t));
    }
    if (auto* b = dynamic_cast<nn::MBConv*>(&m)) {
      const Value y = module(*b->block, x);
      return b->use_residual ? add(scope(m, "add"), y, x) : y;
    }
    if (auto* b = dynamic_cast<nn::InvertedResidual*>(&m)) {
      const Value y = module(*b->conv, x);
      return b->use_residual ? add(scope(m, "add"), x, y) : y;
    }
    if (auto* b = dynamic_cast<nn::BasicBlock*>(&m)) {
      Value y = relu(scope(m, "relu1"), chain({b->conv1.get(), b->bn1.get()}, x));
      y = chain({b->conv2.get(), b->bn2.get()}, y);
      return relu(scope(m, "relu"), add(scope(m, "add"), y, b->downsample ? module(*b->downsample, x) : x));
    }
    if (auto* b = dynamic_cast<nn::Bottleneck*>(&m)) {
      Value y = relu(scope(m, "relu1"), chain({b->conv1.get(), b->bn1.get()}, x));
      y = relu(scope(m, "relu2"), chain({b->conv2.get(), b->bn2.get()}, y));
      y = chain({b->conv3.get(), b->bn3.get()}, y);
      return relu(scope(m, "relu"), add(scope(m, "add"), y, b->downsample ? module(*b->downsample, x) : x));
    }
    if (auto* b = dynamic_cast<nn::PreActBottleneck*>(&m)) {
      const Value preact = relu(scope(m, "preact_relu"), module(*b->preact_bn, x));
      Value skip = x;
      if (b->shortcut) {
        skip = module(*b->shortcut, preact);
      } else if (b->stride > 1) {
        nn::Pool2dOptions pool;
        pool.kernel = {1, 1};
        pool.stride = {b->stride, b->stride};
        skip = max_pool(scope(m, "shortcut_pool"), x, pool);
      }
      Value y = relu(scope(m, "relu1"), chain({b->conv1.get(), b->bn1.get()}, preact));
      y = relu(scope(m, "relu2"), chain({b->conv2.get(), b->bn2.get()}, y));
      return add(scope(m, "add"), module(*b->conv3, y), skip);
    }
    if (auto* b = dynamic_cast<nn::DoubleConv*>(&m)) return module(*b->double_conv, x);
    if (auto* b = dynamic_cast<nn::Down*>(&m)) return module(*b->maxpool_conv, x);
    if (auto* b = dynamic_cast<DenseLayer*>(&m))
      return chain({b->norm1.get(), b->relu1.get(), b->conv1.get(), b->norm2.get(), b->relu2.get(), b->conv2.get()}, x);
    if (auto* b = dynamic_cast<DenseBlock*>(&m)) {
      // Each layer reads the concatenation so far (a ChannelBuffer in forward(), Concat here).
      Value all = x;
      for (auto& layer : b->layers) all = concat(scope(*layer, "concat"), {all, module(*layer, all)});
      return all;
    }
    if (auto* b = dynamic_cast<BasicConv2d*>(&m))
      return relu(scope(m, "relu"), chain({b->conv.get(), b->bn.get()}, x));
    if (auto* b = dynamic_cast<InceptionBlock*>(&m)) return inception(*b, x);
    if (auto* b = dynamic_cast<XceptionBlock*>(&m)) {
      Value y = x;
      for (auto& s : b->steps) y = chain({s.act.get(), s.sepconv.get(), s.bn.get()}, y);
      if (!b->strided) return add(scope(m, "add"), y, x);
      nn::Pool2dOptions pool;  // as XceptionBlock::forward: Keras MaxPooling2D(3, 2, "same")
      pool.kernel = {3, 3};
      pool.stride = {2, 2};
      pool.padding = nn::same_padding(y.t.size(2), y.t.size(3), 3, 3, 2, 2);
      return add(scope(m, "add"), max_pool(scope(m, "pool"), y, pool), chain({b->residual.get(), b->residual_bn.get()}, x));
    }
    // Sequential and the blocks that are one (ConvBNAct, DepthwiseSeparable, U-Net's OutConv):
    // their forward() runs the children in order.
    if (dynamic_cast<nn::Sequential*>(&m)) {
      Value y = x;
      for (auto& [child_name, child] : m.named_children()) y = module(*child, y);
      return y;
    }
    fail("{}: module '{}' ({}) has no ONNX export", model_.name(), m.label(), m.type());
  }

  Value inception(InceptionBlock& b, const Value& x) {
    std::vector<Value> outputs;
    int branch = 0;
    for (const InceptionBlock::Branch& br : b.branches) {
      ++branch;
      Value y = x;
      if (br.pool != InceptionBlock::Pool::none) {  // as InceptionBlock::forward
        nn::Pool2dOptions p;
        p.kernel = {3, 3};
        if (br.pool == InceptionBlock::Pool::avg3_s1) {
          p.stride = {1, 1};
          p.padding = nn::Padding2d::symmetric(1);
          y = avg_pool(scope(b, fmt::format("branch{}_pool", branch)), y, p);
        } else {
          p.stride = {2, 2};
          y = max_pool(scope(b, fmt::format("branch{}_pool", branch)), y, p);
        }
      }
      for (const auto& conv : br.convs) y = module(*conv, y);
      if (br.split.empty()) {
        outputs.push_back(y);
      } else {
        std::vector<Value> parts;
        for (const auto& conv : br.split) parts.push_back(module(*conv, y));
        outputs.push_back(concat(scope(b, fmt::format("branch{}_concat", branch)), parts));
      }
    }
    return concat(scope(b, "concat"), outputs);
  }

  Value up(nn::Up& b, const Value& x1, const Value& x2) {  // as nn::Up::forward
    Value u = module(*b.up, x1);
    const int64_t dy = x2.t.size(2) - u.t.size(2), dx = x2.t.size(3) - u.t.size(3);
    if (dy > 0 || dx > 0) {
      const nn::Padding2d p{dy / 2, dy - dy / 2, dx / 2, dx - dx / 2};
      Json a = Json::object();
      a["pads"] = pads(p);
      u = node(scope(b, "pad"), "pad", {u}, a, nn::pad2d(u.t, p));
    }
    return module(*b.conv, concat(scope(b, "concat"), {x2, u}));
  }

  Model& model_;
  ExportedGraph& out_;
  std::set<std::string> names_;
};

}  // namespace

ExportedGraph model_to_graph(Model& model, const Shape& input_chw) {
  SCALPEL_CHECK(input_chw.size() == 3, "{}: the export input shape must be [C, H, W], got {}", model.name(),
                shape_str(input_chw));
  model.eval();
  NoGradGuard no_grad;
  ExportedGraph g;
  g.input_shape = {1, input_chw[0], input_chw[1], input_chw[2]};
  g.spec.source = "scalpel";
  g.spec.name = model.name();
  g.spec.input = "input";
  g.spec.input_shape = input_chw;

  Generator gen(20261204);
  Tensor probe = Tensor::empty(g.input_shape);
  uniform_(probe, -1.0, 1.0, gen);
  probe = probe.to(model.parameters().empty() ? Device::cpu() : model.parameters().front().device());
  model.check_input(probe);
  if (auto* graph = dynamic_cast<GraphModel*>(&model)) {  // already a graph: its spec and weights as they are
    g.spec = graph->spec();
    g.spec.input_shape = input_chw;
    for (const nn::NamedTensor& p : graph->state_dict())
      if (p.tensor.dtype() == DType::F32 || p.tensor.dtype() == DType::F64)
        g.weights.emplace_back(p.name, p.tensor.to(Device::cpu()).to(DType::F32).contiguous());
    for (auto& [name, value] : graph->run_all(probe))
      if (name == g.spec.output) g.output_shape = value.shape();
    SCALPEL_CHECK(!g.output_shape.empty(), "{}: the graph's output '{}' was not computed", model.name(), g.spec.output);
    return g;
  }
  const Value out = Walker(model, g).walk({g.spec.input, probe});
  g.spec.output = out.name;
  g.output_shape = out.t.shape();

  // The walk must compute what forward() does.
  const Tensor expected = model.forward(probe).to(Device::cpu()).contiguous();
  const Tensor got = out.t.to(Device::cpu()).contiguous();
  SCALPEL_CHECK(got.shape() == expected.shape(), "{}: the export walk gives {}, forward() {}", model.name(),
                shape_str(got.shape()), shape_str(expected.shape()));
  const std::vector<double> e = expected.to_vector(), o = got.to_vector();
  double scale = 1.0, worst = 0.0;
  for (size_t i = 0; i < e.size(); ++i) {
    scale = std::max(scale, std::abs(e[i]));
    worst = std::max(worst, std::abs(e[i] - o[i]));
  }
  SCALPEL_CHECK(worst <= 1e-4 * scale, "{}: the export walk disagrees with forward() by {:.3g} (of {:.3g})",
                model.name(), worst, scale);
  return g;
}

}  // namespace scalpel::models
