#include "models/graph.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "autograd/autograd.h"
#include "layers/functional.h"
#include "layers/modules.h"
#include "tensor/error.h"

namespace scalpel::models {

// ---------------------------------------------------------------- GraphSpec <-> JSON

Json GraphSpec::to_json() const {
  Json j = Json::object();
  j["source"] = source;
  j["name"] = name;
  j["input"] = input;
  Json shape = Json::array();
  for (int64_t d : input_shape) shape.as_array().push_back(Json(d));
  j["input_shape"] = shape;
  j["output"] = output;
  Json list = Json::array();
  for (const GraphNode& n : nodes) {
    Json node = Json::object();
    node["name"] = n.name;
    node["op"] = n.op;
    Json inputs = Json::array();
    for (const std::string& in : n.inputs) inputs.as_array().push_back(Json(in));
    node["inputs"] = inputs;
    node["output"] = n.output;
    node["attrs"] = n.attrs;
    list.as_array().push_back(std::move(node));
  }
  j["nodes"] = list;
  return j;
}

GraphSpec GraphSpec::from_json(const Json& json, const std::string& what) {
  try {
    GraphSpec s;
    s.source = json.at("source").as_string();
    s.name = json.at("name").as_string();
    s.input = json.at("input").as_string();
    for (const Json& d : json.at("input_shape").as_array()) s.input_shape.push_back(d.as_int());
    s.output = json.at("output").as_string();
    for (const Json& node : json.at("nodes").as_array()) {
      GraphNode n;
      n.name = node.at("name").as_string();
      n.op = node.at("op").as_string();
      for (const Json& in : node.at("inputs").as_array()) n.inputs.push_back(in.as_string());
      n.output = node.at("output").as_string();
      n.attrs = node.at("attrs");
      SCALPEL_CHECK(n.attrs.is_object(), "node '{}': attrs must be an object", n.name);
      s.nodes.push_back(std::move(n));
    }
    return s;
  } catch (const Error& e) {
    fail("{}: malformed graph: {}", what, e.what());
  }
}

std::string graph_safe_name(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) c = '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "n_" + out;
  return out;
}

// ---------------------------------------------------------------- nodes

namespace {

// What a node's attributes say, with its name in every error.
class Attrs {
 public:
  explicit Attrs(const GraphNode& node) : node_(node) {}

  bool has(const char* key) const { return value(key) != nullptr; }
  int64_t integer(const char* key, std::optional<int64_t> fallback = std::nullopt) const {
    return get(key, fallback, [](const Json& j) { return j.as_int(); });
  }
  double number(const char* key, std::optional<double> fallback = std::nullopt) const {
    return get(key, fallback, [](const Json& j) { return j.as_number(); });
  }
  bool flag(const char* key, std::optional<bool> fallback = std::nullopt) const {
    return get(key, fallback, [](const Json& j) { return j.as_bool(); });
  }
  std::string text(const char* key, std::optional<std::string> fallback = std::nullopt) const {
    return get(key, fallback, [](const Json& j) { return j.as_string(); });
  }
  std::vector<int64_t> ints(const char* key, std::optional<std::vector<int64_t>> fallback = std::nullopt,
                            size_t size = 0) const {
    auto v = get(key, fallback, [](const Json& j) {
      std::vector<int64_t> out;
      for (const Json& e : j.as_array()) out.push_back(e.as_int());
      return out;
    });
    SCALPEL_CHECK(size == 0 || v.size() == size, "{}: attribute '{}' needs {} values, got {}", where(), key, size,
                  v.size());
    return v;
  }
  std::vector<double> numbers(const char* key, size_t size) const {
    auto v = get(key, std::optional<std::vector<double>>(), [](const Json& j) {
      std::vector<double> out;
      for (const Json& e : j.as_array()) out.push_back(e.as_number());
      return out;
    });
    SCALPEL_CHECK(v.size() == size, "{}: attribute '{}' needs {} values, got {}", where(), key, size, v.size());
    return v;
  }
  std::array<int64_t, 2> pair(const char* key, std::array<int64_t, 2> fallback) const {
    const auto v = ints(key, std::vector<int64_t>{fallback[0], fallback[1]}, 2);
    return {v[0], v[1]};
  }
  std::string where() const { return fmt::format("graph node '{}' ({})", node_.name, node_.op); }

 private:
  template <typename T, typename Read>
  T get(const char* key, const std::optional<T>& fallback, Read read) const {
    const Json* found = value(key);
    if (!found) {
      SCALPEL_CHECK(fallback.has_value(), "{}: missing attribute '{}'", where(), key);
      return *fallback;
    }
    try {
      return read(*found);
    } catch (const Error& e) {
      fail("{}: attribute '{}': {}", where(), key, e.what());
    }
  }
  // The attribute, or null when absent or JSON null.
  const Json* value(const char* key) const {
    const Json* v = node_.attrs.find(key);
    return v && !v->is_null() ? v : nullptr;
  }
  const GraphNode& node_;
};

// One node of the graph as a module: its parameters are registered on it, so they are
// "<node>.<param>" in the model's state dict.
class GraphOp : public nn::Module {
 public:
  using Run = std::function<Tensor(GraphOp& self, const std::vector<Tensor>& inputs)>;
  GraphOp(const std::string& op, int min_inputs, int max_inputs)
      : Module(op), min_inputs_(min_inputs), max_inputs_(max_inputs) {}

  Tensor forward(const Tensor& x) override { return run_(*this, {x}); }
  Tensor run(const std::vector<Tensor>& inputs) { return run_(*this, inputs); }
  std::string describe() const override { return description_; }
  int64_t macs(const Shape& input_shape, const Shape& output_shape) const override {
    return macs_ ? macs_(input_shape, output_shape) : 0;
  }

  Tensor& param(const std::string& name, const Shape& shape, bool trainable = true) {
    Tensor& t = trainable ? register_parameter(name, Tensor::zeros(shape))
                          : register_buffer(name, Tensor::zeros(shape));
    params_[name] = t;
    return t;
  }
  const Tensor& p(const std::string& name) const { return params_.at(name); }

  Run run_;
  std::string description_;
  std::function<int64_t(const Shape&, const Shape&)> macs_;
  int min_inputs_, max_inputs_;  // max -1: any number

 private:
  std::map<std::string, Tensor> params_;
};

// The node's shape of "pads" ([top, left, bottom, right], ONNX's begin-then-end order).
nn::Padding2d pads_of(const Attrs& a) {
  const auto p = a.ints("pads", std::vector<int64_t>{0, 0, 0, 0}, 4);
  for (int64_t v : p) SCALPEL_CHECK(v >= 0, "{}: negative pads", a.where());
  return {p[0], p[2], p[1], p[3]};
}

int64_t positive(const Attrs& a, const char* key) {
  const int64_t v = a.integer(key);
  SCALPEL_CHECK(v > 0 && v <= (int64_t{1} << 24), "{}: attribute '{}' = {} is out of range", a.where(), key, v);
  return v;
}

int64_t axis_of(int64_t axis, int64_t rank, const std::string& where) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  SCALPEL_CHECK(a >= 0 && a < rank, "{}: axis {} is out of range for a {}-D tensor", where, axis, rank);
  return a;
}

using Factory = std::function<void(GraphOp& op, const Attrs& a)>;

void unary(GraphOp& op, std::function<Tensor(const Tensor&)> fn) {
  op.run_ = [fn = std::move(fn)](GraphOp&, const std::vector<Tensor>& in) { return fn(in[0]); };
}

void make_conv2d(GraphOp& op, const Attrs& a) {
  const int64_t in = positive(a, "in_channels"), out = positive(a, "out_channels");
  const int64_t groups = a.integer("groups", 1);
  SCALPEL_CHECK(groups > 0 && in % groups == 0 && out % groups == 0,
                "{}: groups {} must divide in_channels {} and out_channels {}", a.where(), groups, in, out);
  const auto kernel = a.pair("kernel", {0, 0});
  SCALPEL_CHECK(kernel[0] > 0 && kernel[1] > 0, "{}: kernel must be positive", a.where());
  nn::Conv2dOptions o;
  o.stride = a.pair("stride", {1, 1});
  o.dilation = a.pair("dilation", {1, 1});
  o.groups = groups;
  o.same = a.flag("same", false);
  if (!o.same) o.padding = pads_of(a);
  op.param("weight", {out, in / groups, kernel[0], kernel[1]});
  const bool bias = a.flag("bias", true);
  if (bias) op.param("bias", {out});
  op.description_ = fmt::format("{}->{}, k{}x{}, s{}{}{}", in, out, kernel[0], kernel[1], o.stride[0],
                                o.same ? ", same" : "", groups > 1 ? fmt::format(", g{}", groups) : "");
  op.run_ = [o, bias, name = a.where()](GraphOp& self, const std::vector<Tensor>& x) {
    return nn::conv2d(x[0], self.p("weight"), bias ? self.p("bias") : Tensor(), o, name);
  };
  op.macs_ = [in, groups, kernel](const Shape&, const Shape& y) {
    return shape_numel(y) * (in / groups) * kernel[0] * kernel[1];
  };
}

void make_conv_transpose2d(GraphOp& op, const Attrs& a) {
  const int64_t in = positive(a, "in_channels"), out = positive(a, "out_channels");
  const int64_t groups = a.integer("groups", 1);
  SCALPEL_CHECK(groups > 0 && in % groups == 0 && out % groups == 0,
                "{}: groups {} must divide in_channels {} and out_channels {}", a.where(), groups, in, out);
  const auto kernel = a.pair("kernel", {0, 0});
  SCALPEL_CHECK(kernel[0] > 0 && kernel[1] > 0, "{}: kernel must be positive", a.where());
  nn::ConvTranspose2dOptions o;
  o.stride = a.pair("stride", {1, 1});
  o.dilation = a.pair("dilation", {1, 1});
  o.output_padding = a.pair("output_padding", {0, 0});
  o.groups = groups;
  const nn::Padding2d pads = pads_of(a);
  op.param("weight", {in, out / groups, kernel[0], kernel[1]});
  const bool bias = a.flag("bias", true);
  if (bias) op.param("bias", {out});
  op.description_ = fmt::format("{}->{}, k{}x{}, s{}", in, out, kernel[0], kernel[1], o.stride[0]);
  // The full transposed convolution, then the pads cropped away: any asymmetric padding works.
  op.run_ = [o, pads, bias, name = a.where()](GraphOp& self, const std::vector<Tensor>& x) {
    Tensor y = nn::conv_transpose2d(x[0], self.p("weight"), bias ? self.p("bias") : Tensor(), o, name);
    if (pads == nn::Padding2d{}) return y;
    SCALPEL_CHECK(pads.top + pads.bottom < y.size(2) && pads.left + pads.right < y.size(3),
                  "{}: pads crop the whole output {}", name, shape_str(y.shape()));
    y = slice(y, 2, pads.top, y.size(2) - pads.bottom);
    return slice(y, 3, pads.left, y.size(3) - pads.right);
  };
}

void make_batch_norm(GraphOp& op, const Attrs& a) {
  const int64_t c = positive(a, "channels");
  const double eps = a.number("eps"), momentum = a.number("momentum", 0.1);
  SCALPEL_CHECK(eps >= 0, "{}: eps must be >= 0", a.where());
  op.param("weight", {c});
  op.param("bias", {c});
  op.param("running_mean", {c}, false);
  op.param("running_var", {c}, false);
  op.description_ = fmt::format("{}, eps {}", c, eps);
  op.run_ = [eps, momentum](GraphOp& self, const std::vector<Tensor>& x) {
    return nn::batch_norm(x[0], self.p("running_mean"), self.p("running_var"), self.p("weight"), self.p("bias"),
                          self.is_training(), momentum, eps);
  };
}

void make_linear(GraphOp& op, const Attrs& a) {
  const int64_t in = positive(a, "in_features"), out = positive(a, "out_features");
  op.param("weight", {out, in});
  const bool bias = a.flag("bias", true);
  if (bias) op.param("bias", {out});
  op.description_ = fmt::format("{}->{}", in, out);
  op.run_ = [bias, name = a.where()](GraphOp& self, const std::vector<Tensor>& x) {
    return nn::linear(x[0], self.p("weight"), bias ? self.p("bias") : Tensor(), name);
  };
  op.macs_ = [in](const Shape&, const Shape& y) { return shape_numel(y) * in; };
}

void make_constant(GraphOp& op, const Attrs& a) {
  const std::vector<int64_t> shape = a.ints("shape");
  for (int64_t d : shape) SCALPEL_CHECK(d >= 0 && d <= (int64_t{1} << 31), "{}: bad shape", a.where());
  op.param("value", Shape(shape.begin(), shape.end()), false);
  op.description_ = shape_str(Shape(shape.begin(), shape.end()));
  op.run_ = [](GraphOp& self, const std::vector<Tensor>&) { return self.p("value"); };
}

void make_pool(GraphOp& op, const Attrs& a, bool max) {
  nn::Pool2dOptions o;
  o.kernel = a.pair("kernel", {0, 0});
  SCALPEL_CHECK(o.kernel[0] > 0 && o.kernel[1] > 0, "{}: kernel must be positive", a.where());
  o.stride = a.pair("stride", o.kernel);
  o.ceil_mode = a.flag("ceil_mode", false);
  o.count_include_pad = a.flag("count_include_pad", false);
  const bool same = a.flag("same", false);
  if (!same) o.padding = pads_of(a);
  op.description_ = fmt::format("k{}x{}, s{}{}", o.kernel[0], o.kernel[1], o.stride[0], same ? ", same" : "");
  op.run_ = [o, same, max, name = a.where()](GraphOp&, const std::vector<Tensor>& x) {
    nn::Pool2dOptions options = o;
    if (same)
      options.padding = nn::same_padding(x[0].size(2), x[0].size(3), o.kernel[0], o.kernel[1], o.stride[0],
                                         o.stride[1]);
    return max ? nn::max_pool2d(x[0], options, name) : nn::avg_pool2d(x[0], options, name);
  };
}

void make_global_pool(GraphOp& op, const Attrs& a, bool max) {
  const bool keepdims = a.flag("keepdims", false);
  unary(op, [keepdims, max](const Tensor& x) {
    return max ? scalpel::max(x, {2, 3}, keepdims) : scalpel::mean(x, {2, 3}, keepdims);
  });
}

void make_reduce(GraphOp& op, const Attrs& a, bool max) {
  const std::vector<int64_t> axes = a.ints("axes");
  const bool keepdims = a.flag("keepdims", true);
  unary(op, [axes, keepdims, max, where = a.where()](const Tensor& x) {
    std::vector<int64_t> normalized;
    for (int64_t axis : axes) normalized.push_back(axis_of(axis, x.dim(), where));
    return max ? scalpel::max(x, normalized, keepdims) : scalpel::mean(x, normalized, keepdims);
  });
}

// ONNX Reshape: 0 copies the input's dimension, one -1 is inferred.
void make_reshape(GraphOp& op, const Attrs& a) {
  const std::vector<int64_t> target = a.ints("shape");
  unary(op, [target, where = a.where()](const Tensor& x) {
    Shape shape;
    int64_t known = 1, inferred = -1;
    for (size_t i = 0; i < target.size(); ++i) {
      int64_t d = target[i];
      if (d == 0) {
        SCALPEL_CHECK(static_cast<int64_t>(i) < x.dim(), "{}: shape copies dimension {} of {}", where, i,
                      shape_str(x.shape()));
        d = x.size(static_cast<int64_t>(i));
      }
      if (d == -1) {
        SCALPEL_CHECK(inferred < 0, "{}: more than one -1 in the shape", where);
        inferred = static_cast<int64_t>(i);
      } else {
        SCALPEL_CHECK(d > 0, "{}: bad dimension {} in the shape", where, d);
        known *= d;
      }
      shape.push_back(d);
    }
    if (inferred >= 0) {
      SCALPEL_CHECK(known > 0 && x.numel() % known == 0, "{}: cannot reshape {} to {}", where,
                    shape_str(x.shape()), shape_str(shape));
      shape[inferred] = x.numel() / known;
    }
    SCALPEL_CHECK(shape_numel(shape) == x.numel(), "{}: cannot reshape {} to {}", where, shape_str(x.shape()),
                  shape_str(shape));
    return reshape(x, shape);
  });
}

void make_flatten(GraphOp& op, const Attrs& a) {
  const int64_t axis = a.integer("axis", 1);
  unary(op, [axis, where = a.where()](const Tensor& x) {
    const int64_t k = axis < 0 ? axis + x.dim() : axis;
    SCALPEL_CHECK(k >= 0 && k <= x.dim(), "{}: axis {} is out of range for {}", where, axis, shape_str(x.shape()));
    int64_t outer = 1;
    for (int64_t i = 0; i < k; ++i) outer *= x.size(i);
    return reshape(x, {outer, outer == 0 ? 0 : x.numel() / outer});
  });
}

void make_pad(GraphOp& op, const Attrs& a) {
  const auto p = a.ints("pads", std::nullopt, 4);
  const nn::Padding2d pads{p[0], p[2], p[1], p[3]};
  const double value = a.number("value", 0.0);
  const std::string mode = a.text("mode", "constant");
  SCALPEL_CHECK(mode == "constant" || mode == "reflect" || mode == "edge",
                "{}: mode '{}' (known: constant, reflect, edge)", a.where(), mode);
  unary(op, [pads, value, mode, where = a.where()](const Tensor& x) {
    SCALPEL_CHECK(x.dim() >= 2, "{}: expected at least 2-D, got {}", where, shape_str(x.shape()));
    // Negative pads crop (ONNX allows them).
    Tensor y = x;
    const int64_t h = y.dim() - 2, w = y.dim() - 1;
    auto crop = [&](int64_t axis, int64_t before, int64_t after) {
      const int64_t b = std::max<int64_t>(-before, 0), e = std::max<int64_t>(-after, 0);
      if (b || e) {
        SCALPEL_CHECK(b + e < y.size(axis), "{}: pads crop away all of {}", where, shape_str(x.shape()));
        y = slice(y, axis, b, y.size(axis) - e);
      }
    };
    crop(h, pads.top, pads.bottom);
    crop(w, pads.left, pads.right);
    const nn::Padding2d grow{std::max<int64_t>(pads.top, 0), std::max<int64_t>(pads.bottom, 0),
                             std::max<int64_t>(pads.left, 0), std::max<int64_t>(pads.right, 0)};
    if (mode == "constant") return nn::pad2d(y, grow, value);
    // reflect / edge: border slices concatenated (differentiable, for the small pads CNNs use).
    auto extend = [&](const Tensor& t, int64_t axis, int64_t before, int64_t after) {
      const int64_t n = t.size(axis);
      const bool reflect = mode == "reflect";
      SCALPEL_CHECK(!reflect || (before < n && after < n), "{}: reflect pad larger than the input {}", where,
                    shape_str(t.shape()));
      std::vector<Tensor> parts;
      for (int64_t i = before; i >= 1; --i) {
        const int64_t src = reflect ? i : 0;
        parts.push_back(slice(t, axis, src, src + 1));
      }
      parts.push_back(t);
      for (int64_t i = 1; i <= after; ++i) {
        const int64_t src = reflect ? n - 1 - i : n - 1;
        parts.push_back(slice(t, axis, src, src + 1));
      }
      return parts.size() == 1 ? t : concat(parts, axis);
    };
    return extend(extend(y, h, grow.top, grow.bottom), w, grow.left, grow.right);
  });
}

void make_slice(GraphOp& op, const Attrs& a) {
  const int64_t axis = a.integer("axis"), step = a.integer("step", 1);
  const int64_t start = a.integer("start"), end = a.integer("end", std::numeric_limits<int64_t>::max());
  SCALPEL_CHECK(step > 0, "{}: step {} (only positive steps are supported)", a.where(), step);
  unary(op, [axis, start, end, step, where = a.where()](const Tensor& x) {
    const int64_t k = axis_of(axis, x.dim(), where), n = x.size(k);
    auto clamp_index = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
    const int64_t b = clamp_index(start), e = clamp_index(end);
    SCALPEL_CHECK(e > b, "{}: the slice [{}, {}) of axis {} of {} is empty", where, start, end, axis,
                  shape_str(x.shape()));
    return slice(x, k, b, e, step);
  });
}

void make_upsample(GraphOp& op, const Attrs& a) {
  const std::string mode = a.text("mode", "nearest");
  const std::string coordinates = a.text("coordinates", "half_pixel");
  SCALPEL_CHECK(mode == "nearest" || mode == "bilinear", "{}: mode '{}' (known: nearest, bilinear)", a.where(), mode);
  SCALPEL_CHECK(coordinates == "half_pixel" || coordinates == "align_corners" || coordinates == "asymmetric",
                "{}: coordinates '{}' (known: half_pixel, align_corners, asymmetric)", a.where(), coordinates);
  SCALPEL_CHECK(!(mode == "bilinear" && coordinates == "asymmetric"),
                "{}: bilinear resampling with asymmetric coordinates is not supported", a.where());
  SCALPEL_CHECK(!(mode == "nearest" && coordinates == "align_corners"),
                "{}: nearest resampling with align_corners coordinates is not supported", a.where());
  const bool by_size = a.has("size");
  const auto size = by_size ? a.pair("size", {0, 0}) : std::array<int64_t, 2>{0, 0};
  const std::vector<double> scale = by_size ? std::vector<double>{} : a.numbers("scale", 2);
  for (double f : scale) SCALPEL_CHECK(f > 0 && f <= 1024, "{}: scale {} is out of range", a.where(), f);
  if (by_size) SCALPEL_CHECK(size[0] > 0 && size[1] > 0, "{}: size must be positive", a.where());
  unary(op, [=, where = a.where()](const Tensor& x) {
    SCALPEL_CHECK(x.dim() == 4, "{}: expected NCHW, got {}", where, shape_str(x.shape()));
    const int64_t in_h = x.size(2), in_w = x.size(3);
    const int64_t out_h = by_size ? size[0] : static_cast<int64_t>(std::floor(in_h * scale[0]));
    const int64_t out_w = by_size ? size[1] : static_cast<int64_t>(std::floor(in_w * scale[1]));
    SCALPEL_CHECK(out_h > 0 && out_w > 0, "{}: output of {} would be empty", where, shape_str(x.shape()));
    // Nearest with half-pixel centres picks floor((i + 0.5) * in / out): the same pixel as
    // PyTorch's floor(i * in / out) whenever out is a whole multiple of in.
    SCALPEL_CHECK(!(mode == "nearest" && coordinates == "half_pixel") || (out_h % in_h == 0 && out_w % in_w == 0),
                  "{}: nearest resampling with half-pixel centres from {}x{} to {}x{} (only whole scale factors)",
                  where, in_h, in_w, out_h, out_w);
    return nn::upsample(x, out_h, out_w, mode, coordinates == "align_corners");
  });
}

void binary(GraphOp& op, Tensor (*fn)(const Tensor&, const Tensor&)) {
  op.run_ = [fn](GraphOp&, const std::vector<Tensor>& in) { return fn(in[0], in[1]); };
}

// x for x > 0, alpha (e^x - 1) otherwise, from differentiable pieces.
Tensor elu(const Tensor& x, double alpha) { return nn::relu(x) + (exp(neg(nn::relu(neg(x)))) - 1.0) * alpha; }

struct OpEntry {
  int min_inputs, max_inputs;  // max -1: any number
  Factory make;
};

const std::map<std::string, OpEntry>& op_table() {
  static const std::map<std::string, OpEntry> table = {
      {"conv2d", {1, 1, make_conv2d}},
      {"conv_transpose2d", {1, 1, make_conv_transpose2d}},
      {"batch_norm", {1, 1, make_batch_norm}},
      {"linear", {1, 1, make_linear}},
      {"constant", {0, 0, make_constant}},
      {"relu", {1, 1, [](GraphOp& op, const Attrs&) { unary(op, nn::relu); }}},
      {"relu6", {1, 1, [](GraphOp& op, const Attrs&) { unary(op, nn::relu6); }}},
      {"clip", {1, 1, [](GraphOp& op, const Attrs& a) {
         const double inf = std::numeric_limits<double>::infinity();
         const double lo = a.number("min", -inf), hi = a.number("max", inf);
         SCALPEL_CHECK(lo <= hi, "{}: min {} > max {}", a.where(), lo, hi);
         op.description_ = fmt::format("[{}, {}]", lo, hi);
         unary(op, [lo, hi](const Tensor& x) { return clamp(x, lo, hi); });
       }}},
      {"leaky_relu", {1, 1, [](GraphOp& op, const Attrs& a) {
         const double slope = a.number("slope", 0.01);
         unary(op, [slope](const Tensor& x) { return nn::leaky_relu(x, slope); });
       }}},
      {"elu", {1, 1, [](GraphOp& op, const Attrs& a) {
         const double alpha = a.number("alpha", 1.0);
         unary(op, [alpha](const Tensor& x) { return elu(x, alpha); });
       }}},
      {"sigmoid", {1, 1, [](GraphOp& op, const Attrs&) { unary(op, nn::sigmoid); }}},
      {"hard_sigmoid", {1, 1, [](GraphOp& op, const Attrs& a) {
         const double alpha = a.number("alpha", 0.2), beta = a.number("beta", 0.5);
         unary(op, [alpha, beta](const Tensor& x) { return clamp(x * alpha + beta, 0.0, 1.0); });
       }}},
      {"hard_swish", {1, 1, [](GraphOp& op, const Attrs&) { unary(op, nn::hardswish); }}},
      {"tanh", {1, 1, [](GraphOp& op, const Attrs&) { unary(op, nn::tanh); }}},
      {"silu", {1, 1, [](GraphOp& op, const Attrs&) { unary(op, nn::silu); }}},
      {"gelu", {1, 1, [](GraphOp& op, const Attrs&) { unary(op, nn::gelu); }}},
      {"softmax", {1, 1, [](GraphOp& op, const Attrs& a) {
         const int64_t axis = a.integer("axis", -1);
         unary(op, [axis, where = a.where()](const Tensor& x) { return nn::softmax(x, axis_of(axis, x.dim(), where)); });
       }}},
      {"identity", {1, 1, [](GraphOp& op, const Attrs&) { unary(op, [](const Tensor& x) { return x; }); }}},
      {"dropout", {1, 1, [](GraphOp& op, const Attrs& a) {
         const double rate = a.number("rate", 0.0);
         SCALPEL_CHECK(rate >= 0 && rate < 1, "{}: rate {} is not in [0, 1)", a.where(), rate);
         op.run_ = [rate](GraphOp& self, const std::vector<Tensor>& x) {
           return nn::dropout(x[0], rate, self.is_training());
         };
       }}},
      {"add", {2, 2, [](GraphOp& op, const Attrs&) { binary(op, scalpel::add); }}},
      {"sub", {2, 2, [](GraphOp& op, const Attrs&) { binary(op, scalpel::sub); }}},
      {"mul", {2, 2, [](GraphOp& op, const Attrs&) { binary(op, scalpel::mul); }}},
      {"div", {2, 2, [](GraphOp& op, const Attrs&) { binary(op, scalpel::div); }}},
      {"max", {2, 2, [](GraphOp& op, const Attrs&) { binary(op, scalpel::maximum); }}},
      {"min", {2, 2, [](GraphOp& op, const Attrs&) { binary(op, scalpel::minimum); }}},
      {"matmul", {2, 2, [](GraphOp& op, const Attrs&) { binary(op, scalpel::matmul); }}},
      {"max_pool2d", {1, 1, [](GraphOp& op, const Attrs& a) { make_pool(op, a, true); }}},
      {"avg_pool2d", {1, 1, [](GraphOp& op, const Attrs& a) { make_pool(op, a, false); }}},
      {"global_avg_pool", {1, 1, [](GraphOp& op, const Attrs& a) { make_global_pool(op, a, false); }}},
      {"global_max_pool", {1, 1, [](GraphOp& op, const Attrs& a) { make_global_pool(op, a, true); }}},
      {"reduce_mean", {1, 1, [](GraphOp& op, const Attrs& a) { make_reduce(op, a, false); }}},
      {"reduce_max", {1, 1, [](GraphOp& op, const Attrs& a) { make_reduce(op, a, true); }}},
      {"flatten", {1, 1, make_flatten}},
      {"reshape", {1, 1, make_reshape}},
      {"transpose", {1, 1, [](GraphOp& op, const Attrs& a) {
         const std::vector<int64_t> perm = a.ints("perm");
         unary(op, [perm, where = a.where()](const Tensor& x) {
           SCALPEL_CHECK(static_cast<int64_t>(perm.size()) == x.dim(), "{}: perm of {} axes for {}", where,
                         perm.size(), shape_str(x.shape()));
           return permute(x, Shape(perm.begin(), perm.end()));
         });
       }}},
      {"squeeze", {1, 1, [](GraphOp& op, const Attrs& a) {
         const std::vector<int64_t> axes = a.ints("axes");
         unary(op, [axes, where = a.where()](const Tensor& x) {
           std::vector<int64_t> k;
           for (int64_t axis : axes) k.push_back(axis_of(axis, x.dim(), where));
           std::sort(k.rbegin(), k.rend());
           Tensor y = x;
           for (int64_t axis : k) {
             SCALPEL_CHECK(y.size(axis) == 1, "{}: axis {} of {} is not 1", where, axis, shape_str(x.shape()));
             y = squeeze(y, axis);
           }
           return y;
         });
       }}},
      {"unsqueeze", {1, 1, [](GraphOp& op, const Attrs& a) {
         const std::vector<int64_t> axes = a.ints("axes");
         unary(op, [axes, where = a.where()](const Tensor& x) {
           const int64_t rank = x.dim() + static_cast<int64_t>(axes.size());
           std::vector<int64_t> k;
           for (int64_t axis : axes) k.push_back(axis_of(axis, rank, where));
           std::sort(k.begin(), k.end());
           Tensor y = x;
           for (int64_t axis : k) y = unsqueeze(y, axis);
           return y;
         });
       }}},
      {"concat", {1, -1, [](GraphOp& op, const Attrs& a) {
         const int64_t axis = a.integer("axis");
         op.run_ = [axis, where = a.where()](GraphOp&, const std::vector<Tensor>& in) {
           return in.size() == 1 ? in[0] : concat(in, axis_of(axis, in[0].dim(), where));
         };
       }}},
      {"slice", {1, 1, make_slice}},
      {"pad", {1, 1, make_pad}},
      {"upsample", {1, 1, make_upsample}},
  };
  return table;
}

// A softmax over the channel axis of [N, C] or [N, C, H, W] (`rank` of its input).
bool is_channel_softmax(const GraphNode& node, int64_t rank) {
  if (node.op != "softmax") return false;
  const Json* axis = node.attrs.find("axis");
  const double a = axis && axis->is_number() ? axis->as_number() : -1;
  return a == 1 || (rank == 2 && a == -1);
}

}  // namespace

const std::vector<std::string>& graph_ops() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, entry] : op_table()) out.push_back(name);
    return out;
  }();
  return names;
}

// ---------------------------------------------------------------- GraphModel

struct GraphModel::Impl {
  struct Step {
    std::shared_ptr<GraphOp> op;
    std::vector<int> inputs;  // value slots
    int output = 0;
  };
  std::vector<Step> steps;
  int input_slot = 0, output_slot = 0, slots = 0;
  size_t feature_step = 0;  // forward_features runs steps [0, feature_step]
  std::vector<bool> constant_slot;  // made by constant nodes (recomputed by the head)

  // Runs steps [first, last) over `values`, filling the slots they make.
  void run(std::vector<Tensor>& values, size_t first, size_t last) const {
    for (size_t i = first; i < last; ++i) {
      const Step& s = steps[i];
      std::vector<Tensor> in;
      in.reserve(s.inputs.size());
      for (int slot : s.inputs) in.push_back(values[slot]);
      Tensor y = s.op->run(in);
      s.op->report_forward(in.empty() ? y : in[0], y);
      values[s.output] = std::move(y);
    }
  }
};

namespace {

std::string graph_label(const GraphSpec& spec) {
  return spec.name.empty() ? fmt::format("{} graph", spec.source.empty() ? "imported" : spec.source) : spec.name;
}

ModelOptions with_input_channels(ModelOptions options, const GraphSpec& spec) {
  SCALPEL_CHECK(spec.input_shape.size() == 3, "{}: the graph input needs a [C, H, W] shape, got {} dimensions",
                graph_label(spec), spec.input_shape.size());
  SCALPEL_CHECK(spec.input_shape[0] > 0, "{}: the graph input's channel count is unknown", graph_label(spec));
  options.in_channels = spec.input_shape[0];
  return options;
}

}  // namespace

GraphModel::GraphModel(GraphSpec spec, ModelOptions options)
    : Model("GraphModel", graph_label(spec), with_input_channels(std::move(options), spec)),
      spec_(std::move(spec)),
      impl_(std::make_shared<Impl>()) {
  const std::string label = graph_label(spec_);
  SCALPEL_CHECK(!spec_.nodes.empty(), "{}: the graph has no nodes", label);
  std::unordered_map<std::string, int> slot_of{{spec_.input, 0}};
  impl_->slots = 1;
  impl_->constant_slot.push_back(false);
  std::set<std::string> names;
  for (const GraphNode& node : spec_.nodes) {
    const std::string where = fmt::format("{}: node '{}' ({})", label, node.name, node.op);
    SCALPEL_CHECK(!node.name.empty() && graph_safe_name(node.name) == node.name,
                  "{}: node name '{}' is not a valid module name (see graph_safe_name)", label, node.name);
    SCALPEL_CHECK(names.insert(node.name).second, "{}: two nodes are named '{}'", label, node.name);
    const auto entry = op_table().find(node.op);
    SCALPEL_CHECK(entry != op_table().end(), "{}: unknown op (known: {})", where, fmt::join(graph_ops(), ", "));
    const auto& [min_inputs, max_inputs, make] = entry->second;
    const int n = static_cast<int>(node.inputs.size());
    SCALPEL_CHECK(n >= min_inputs && (max_inputs < 0 || n <= max_inputs), "{}: takes {} inputs, got {}", where,
                  max_inputs < 0 ? fmt::format("at least {}", min_inputs)
                  : min_inputs == max_inputs ? fmt::format("{}", min_inputs)
                                             : fmt::format("{} to {}", min_inputs, max_inputs),
                  n);
    Impl::Step step;
    for (const std::string& in : node.inputs) {
      const auto it = slot_of.find(in);
      SCALPEL_CHECK(it != slot_of.end(), "{}: input '{}' is not made by an earlier node (cycle or missing value)",
                    where, in);
      step.inputs.push_back(it->second);
    }
    SCALPEL_CHECK(!node.output.empty() && !slot_of.contains(node.output), "{}: output '{}' is already defined",
                  where, node.output);
    step.output = impl_->slots++;
    slot_of[node.output] = step.output;
    impl_->constant_slot.push_back(node.op == "constant");
    step.op = std::make_shared<GraphOp>(node.op, min_inputs, max_inputs);
    make(*step.op, Attrs(node));
    impl_->steps.push_back(std::move(step));
  }
  const auto out = slot_of.find(spec_.output);
  SCALPEL_CHECK(out != slot_of.end() && out->second != 0, "{}: the graph output '{}' is not made by any node", label,
                spec_.output);
  impl_->output_slot = out->second;

  // Shapes come from one run on a zero image of the declared size (224 where it is dynamic).
  const int64_t h = spec_.input_shape[1] > 0 ? spec_.input_shape[1] : 224;
  const int64_t w = spec_.input_shape[2] > 0 ? spec_.input_shape[2] : 224;
  std::vector<Tensor> values(impl_->slots);
  {
    NoGradGuard no_grad;
    for (const Impl::Step& s : impl_->steps) s.op->train(false);
    values[0] = Tensor::zeros({1, in_channels(), h, w});
    try {
      impl_->run(values, 0, impl_->steps.size());
    } catch (const Error& e) {
      fail("{}: the graph does not run on a {}x{}x{} input: {}", label, in_channels(), h, w, e.what());
    }
    for (const Impl::Step& s : impl_->steps) s.op->train(true);
  }
  // A trailing channel softmax is left out (see the header).
  const Impl::Step& last = impl_->steps.back();
  if (last.output == impl_->output_slot && is_channel_softmax(spec_.nodes.back(), values[last.inputs[0]].dim()) &&
      last.inputs[0] != 0) {
    ends_in_softmax_ = true;
    impl_->output_slot = last.inputs[0];
    impl_->steps.pop_back();
  }
  for (size_t i = 0; i < impl_->steps.size(); ++i) register_module(spec_.nodes[i].name, impl_->steps[i].op);
  output_shape_ = values[impl_->output_slot].shape();
  if (output_shape_.size() >= 2) set_classes(output_shape_[1]);

  // The feature layer (Grad-CAM's default, where forward_head starts): the last node that
  // makes a spatial map and that every later node reaches only through it.
  std::vector<size_t> last_use(impl_->slots, 0);
  for (size_t i = 0; i < impl_->steps.size(); ++i)
    for (int slot : impl_->steps[i].inputs) last_use[slot] = std::max(last_use[slot], i);
  size_t feature = impl_->steps.size() - 1;
  size_t latest_read_before = last_use[0];  // the last step reading a value made before step i
  for (size_t i = 0; i < impl_->steps.size(); ++i) {
    const Impl::Step& s = impl_->steps[i];
    const Tensor& y = values[s.output];
    const bool cut = latest_read_before <= i;
    if (cut && y.dim() == 4 && y.size(2) * y.size(3) > 1 && !impl_->constant_slot[s.output]) feature = i;
    if (!impl_->constant_slot[s.output]) latest_read_before = std::max(latest_read_before, last_use[s.output]);
  }
  impl_->feature_step = feature;
  const Tensor& feature_map = values[impl_->steps[feature].output];
  std::string head;
  for (size_t i = impl_->steps.size(); i-- > 0;)
    if (spec_.nodes[i].op == "linear" || spec_.nodes[i].op == "conv2d") {
      head = spec_.nodes[i].name;
      break;
    }
  const bool fixed = spec_.input_shape[1] > 0 && spec_.input_shape[2] > 0;
  set_layout(head, spec_.nodes[feature].name, feature_map.dim() >= 2 ? feature_map.size(1) : 0,
             fixed ? std::min(spec_.input_shape[1], spec_.input_shape[2]) : 1);
}

Tensor GraphModel::features(const Tensor& x) {
  std::vector<Tensor> values(impl_->slots);
  values[impl_->input_slot] = x;
  impl_->run(values, 0, impl_->feature_step + 1);
  return values[impl_->steps[impl_->feature_step].output];
}

Tensor GraphModel::forward_head(const Tensor& features) {
  std::vector<Tensor> values(impl_->slots);
  values[impl_->steps[impl_->feature_step].output] = features;
  // Constants made before the cut are made again (they do not depend on the input).
  for (size_t i = 0; i <= impl_->feature_step; ++i)
    if (impl_->constant_slot[impl_->steps[i].output]) impl_->run(values, i, i + 1);
  impl_->run(values, impl_->feature_step + 1, impl_->steps.size());
  return values[impl_->output_slot];
}

std::vector<std::pair<std::string, Tensor>> GraphModel::run_all(const Tensor& x) {
  std::vector<Tensor> values(impl_->slots);
  values[impl_->input_slot] = x;
  impl_->run(values, 0, impl_->steps.size());
  std::vector<std::pair<std::string, Tensor>> out{{spec_.input, x}};
  for (size_t i = 0; i < impl_->steps.size(); ++i) out.emplace_back(spec_.nodes[i].output, values[impl_->steps[i].output]);
  if (ends_in_softmax_) out.emplace_back(spec_.output, nn::softmax(values[impl_->output_slot], 1));
  return out;
}

}  // namespace scalpel::models
