#include "models/import/keras_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "tensor/error.h"

namespace scalpel::models {

namespace {

bool keras_before_2_3(const std::string& version);

// A value of the graph as Keras sees it. `shape` is Keras' shape without the batch axis (-1 for
// a dimension of any size). A channels_last image tensor (H, W, C) is stored NCHW in the graph
// (`channels_moved`); every other value is stored in Keras' own order.
struct Value {
  std::string name;
  Shape shape;
  bool channels_moved = false;
};

// A reference to a layer's output in a config: (layer, node_index, tensor_index).
struct TensorRef {
  std::string layer;
  int64_t node = 0;
  int64_t tensor = 0;
};

Json int_array(const Shape& values) {
  Json a = Json::array();
  for (int64_t v : values) a.push_back(Json(static_cast<long long>(v)));
  return a;
}

std::string shape_text(const Shape& shape) {
  std::vector<std::string> parts;
  for (int64_t d : shape) parts.push_back(d < 0 ? "?" : std::to_string(d));
  return "(" + fmt::format("{}", fmt::join(parts, ", ")) + ")";
}

// A kernel size, stride, dilation or factor that Keras writes as one integer or a pair;
// Error unless positive (a zero stride would divide by zero).
Shape int_pair(const Json* value, int64_t fallback) {
  if (value == nullptr || value->is_null()) return {fallback, fallback};
  Shape out;
  if (value->is_number()) {
    out = {value->as_int(), value->as_int()};
  } else {
    for (const Json& v : value->as_array()) out.push_back(v.as_int());
  }
  SCALPEL_CHECK(out.size() == 2 && out[0] > 0 && out[1] > 0 && out[0] <= 1 << 16 && out[1] <= 1 << 16,
                "expected 2 positive numbers, got {}", value->dump());
  return out;
}

// A count the config states (filters, units, depth_multiplier); Error unless positive.
int64_t positive_int(const Json& config, const char* key, int64_t fallback = -1) {
  const Json* v = config.find(key);
  if ((v == nullptr || v->is_null()) && fallback > 0) return fallback;
  SCALPEL_CHECK(v != nullptr, "'{}' missing", key);
  const int64_t n = v->as_int();
  SCALPEL_CHECK(n > 0 && n <= 1 << 24, "'{}' is {}, expected a positive count", key, n);
  return n;
}

class Builder {
 public:
  explicit Builder(const KerasConfigOptions& options) : options_(options) {
    graph_.spec.source = options.source;
  }

  KerasGraph build(const Json& model) {
    const Json& m = unwrap(model);
    graph_.spec.name = model_name(m);
    keras3_ = looks_like_keras3(m);
    const std::vector<Value> outputs = build_model(m, nullptr, "", true);
    SCALPEL_CHECK(outputs.size() == 1, "{}: the model has {} outputs; scalpel runs models with one output",
                  options_.what, outputs.size());
    graph_.spec.output = outputs[0].name;
    SCALPEL_CHECK(!graph_.spec.nodes.empty(), "{}: the model has no layers", options_.what);
    return std::move(graph_);
  }

 private:
  // ---------------------------------------------------------------- models
  static const Json& unwrap(const Json& j) {
    if (j.is_object() && !j.contains("class_name")) {
      if (const Json* m = j.find("model_config")) return unwrap(*m);  // TF.js modelTopology
    }
    return j;
  }

  static std::string model_name(const Json& m) {
    const Json* config = m.find("config");
    if (config && config->is_object()) {
      if (const Json* name = config->find("name"); name && name->is_string()) return name->as_string();
    }
    return "";
  }

  // Keras 3 writes "module" and "registered_name" beside every class_name.
  static bool looks_like_keras3(const Json& m) {
    if (m.contains("module")) return true;
    const Json* config = m.find("config");
    if (!config || !config->is_object()) return false;
    const Json* layers = config->find("layers");
    return layers && layers->is_array() && layers->size() > 0 && layers->at(0).is_object() &&
           layers->at(0).contains("module");
  }

  static bool is_model_class(const std::string& c) {
    return c == "Sequential" || c == "Functional" || c == "Model";
  }

  // Builds a (nested) model. `bound` holds the values its inputs take (nullptr for the
  // outermost model, whose input becomes the graph's). `top_layer` names the outermost model's
  // layer that holds it ("" for the outermost model itself).
  std::vector<Value> build_model(const Json& m, const std::vector<Value>* bound, const std::string& top_layer,
                                 bool trainable) {
    SCALPEL_CHECK(m.is_object() && m.contains("class_name"), "{}: the model config has no class_name",
                  options_.what);
    const std::string& cls = m.at("class_name").as_string();
    SCALPEL_CHECK(is_model_class(cls), "{}: the model config's class is {}, expected Sequential or Functional",
                  options_.what, cls);
    const Json& config = m.at("config");
    if (config.is_object()) {
      if (const Json* t = config.find("trainable"); t && t->is_bool()) trainable = trainable && t->as_bool();
    }
    if (cls == "Sequential") return {build_sequential(config, bound, top_layer, trainable)};
    return build_functional(config, bound, top_layer, trainable);
  }

  Value build_sequential(const Json& config, const std::vector<Value>* bound, const std::string& top_layer,
                         bool trainable) {
    // Keras 2.0/2.1 write a Sequential's config as the list of its layers.
    const Json& layers = config.is_array() ? config : config.at("layers");
    SCALPEL_CHECK(layers.is_array() && layers.size() > 0, "{}: a Sequential model without layers", options_.what);
    std::optional<Value> x;
    if (bound) {
      SCALPEL_CHECK(bound->size() == 1, "{}: a nested Sequential model takes one input, got {}", options_.what,
                    bound->size());
      x = (*bound)[0];
    }
    for (size_t i = 0; i < layers.size(); ++i) {
      const Json& layer = layers[i];
      const std::string& cls = layer.at("class_name").as_string();
      if (cls == "InputLayer") {
        if (!x) x = make_input(layer, input_channels_last(layers));
        continue;
      }
      if (!x) {
        // Keras 2: the first layer carries batch_input_shape; Keras 3: the model's build_input_shape.
        const Json& lc = layer.at("config");
        const Json* shape = lc.find("batch_input_shape");
        if ((!shape || shape->is_null()) && config.is_object()) shape = config.find("build_input_shape");
        SCALPEL_CHECK(shape && shape->is_array(), "{}: the Sequential model states no input shape", options_.what);
        x = make_graph_input(*shape, input_channels_last(layers));
      }
      if (is_model_class(cls)) {
        const std::vector<Value> in = {*x};
        const std::vector<Value> out = build_model(layer, &in, top_layer.empty() ? layer_name(layer) : top_layer,
                                                   trainable);
        if (out.size() != 1) fail("{}: nested model '{}' has {} outputs", options_.what, layer_name(layer), out.size());
        x = out[0];
      } else {
        x = apply_layer(layer, {*x}, top_layer, trainable);
      }
    }
    SCALPEL_CHECK(x.has_value(), "{}: the Sequential model has no layer after its input", options_.what);
    return *x;
  }

  std::vector<Value> build_functional(const Json& config, const std::vector<Value>* bound,
                                      const std::string& top_layer, bool trainable) {
    const Json& layers = config.at("layers");
    std::map<std::string, const Json*> by_name;
    for (const Json& layer : layers.as_array()) {
      const std::string& name = layer_name(layer);
      SCALPEL_CHECK(by_name.emplace(name, &layer).second, "{}: two layers are named '{}'", options_.what, name);
    }
    std::map<std::string, Value> values;  // "layer:node:tensor" -> value
    auto key = [](const TensorRef& r) { return fmt::format("{}:{}:{}", r.layer, r.node, r.tensor); };

    const std::vector<TensorRef> inputs = refs_list(config.at("input_layers"));
    const std::vector<TensorRef> outputs = refs_list(config.at("output_layers"));
    if (bound) {
      SCALPEL_CHECK(bound->size() == inputs.size(), "{}: nested model '{}' takes {} inputs, called with {}",
                    options_.what, top_layer, inputs.size(), bound->size());
      for (size_t i = 0; i < inputs.size(); ++i) values[key(inputs[i])] = (*bound)[i];
    } else {
      SCALPEL_CHECK(inputs.size() == 1, "{}: the model has {} inputs; scalpel runs models with one image input",
                    options_.what, inputs.size());
      auto it = by_name.find(inputs[0].layer);
      SCALPEL_CHECK(it != by_name.end(), "{}: input layer '{}' is not among the layers", options_.what,
                    inputs[0].layer);
      values[key(inputs[0])] = make_input(*it->second, input_channels_last(layers));
    }

    // Layers come in a topological order in every Keras version we know; a layer whose inputs
    // are not made yet waits for the next pass all the same.
    std::vector<std::pair<const Json*, size_t>> pending;  // (layer, call index)
    for (const Json& layer : layers.as_array()) {
      if (layer.at("class_name").as_string() == "InputLayer") continue;
      const Json& nodes = layer.at("inbound_nodes");
      for (size_t k = 0; k < nodes.size(); ++k) pending.push_back({&layer, k});
      if (nodes.size() > 1 && has_weights(layer)) {
        fail("{}: layer '{}' ({}) is called {} times (shared weights); scalpel builds each layer once",
             options_.what, layer_name(layer), layer.at("class_name").as_string(), nodes.size());
      }
    }
    while (!pending.empty()) {
      std::vector<std::pair<const Json*, size_t>> waiting;
      for (const auto& [layer, k] : pending) {
        const std::vector<TensorRef> refs = node_inputs(layer->at("inbound_nodes")[k], layer_name(*layer));
        std::vector<Value> in;
        for (const TensorRef& r : refs) {
          auto it = values.find(key(r));
          if (it == values.end()) break;
          in.push_back(it->second);
        }
        if (in.size() != refs.size()) {
          waiting.push_back({layer, k});
          continue;
        }
        std::vector<Value> out;
        const std::string& cls = layer->at("class_name").as_string();
        if (is_model_class(cls)) {
          out = build_model(*layer, &in, top_layer.empty() ? layer_name(*layer) : top_layer, trainable);
        } else {
          out = {apply_layer(*layer, in, top_layer, trainable)};
        }
        for (size_t t = 0; t < out.size(); ++t) {
          values[key({layer_name(*layer), static_cast<int64_t>(k), static_cast<int64_t>(t)})] = out[t];
        }
      }
      if (waiting.size() == pending.size()) {
        const Json& layer = *waiting[0].first;
        fail("{}: layer '{}' ({}) takes an input no layer makes", options_.what, layer_name(layer),
             layer.at("class_name").as_string());
      }
      pending = std::move(waiting);
    }
    std::vector<Value> out;
    for (const TensorRef& r : outputs) {
      auto it = values.find(key(r));
      SCALPEL_CHECK(it != values.end(), "{}: output '{}' is not made by any layer", options_.what, r.layer);
      out.push_back(it->second);
    }
    return out;
  }

  static const std::string& layer_name(const Json& layer) {
    if (const Json* n = layer.find("name"); n && n->is_string()) return n->as_string();
    return layer.at("config").at("name").as_string();
  }

  static bool has_weights(const Json& layer) {
    static const std::set<std::string> weighted = {"Conv2D", "Convolution2D", "DepthwiseConv2D", "SeparableConv2D",
                                                   "SeparableConvolution2D", "Conv2DTranspose", "Deconvolution2D",
                                                   "Dense", "BatchNormalization", "Normalization"};
    const std::string& cls = layer.at("class_name").as_string();
    return weighted.contains(cls) || is_model_class(cls);
  }

  // input_layers / output_layers: [[name, node, tensor], ...] or, in Keras 3 with one input,
  // [name, node, tensor].
  std::vector<TensorRef> refs_list(const Json& list) const {
    if (list.is_array() && list.size() > 0 && list[0].is_string()) return {tensor_ref(list, "model")};
    std::vector<TensorRef> out;
    for (const Json& r : list.as_array()) out.push_back(tensor_ref(r, "model"));
    return out;
  }

  TensorRef tensor_ref(const Json& r, const std::string& layer) const {
    SCALPEL_CHECK(r.is_array() && r.size() >= 3 && r[0].is_string(),
                  "{}: layer '{}': expected an input reference [layer, node, tensor], got {}", options_.what, layer,
                  r.dump());
    return {r[0].as_string(), r[1].as_int(), r[2].as_int()};
  }

  // The tensors one call of a layer takes. Keras 2: [[layer, node, tensor, kwargs], ...];
  // Keras 3: {"args": [...], "kwargs": {...}} with {"class_name": "__keras_tensor__",
  // "config": {"keras_history": [layer, node, tensor]}} tensors anywhere in args.
  std::vector<TensorRef> node_inputs(const Json& node, const std::string& layer) const {
    std::vector<TensorRef> out;
    if (node.is_array()) {
      for (const Json& r : node.as_array()) out.push_back(tensor_ref(r, layer));
    } else {
      collect_keras_tensors(node.at("args"), layer, out);
    }
    SCALPEL_CHECK(!out.empty(), "{}: layer '{}' is called without an input tensor", options_.what, layer);
    return out;
  }

  void collect_keras_tensors(const Json& j, const std::string& layer, std::vector<TensorRef>& out) const {
    if (j.is_array()) {
      for (const Json& item : j.as_array()) collect_keras_tensors(item, layer, out);
    } else if (j.is_object()) {
      const Json* cls = j.find("class_name");
      if (cls && cls->is_string() && cls->as_string() == "__keras_tensor__") {
        out.push_back(tensor_ref(j.at("config").at("keras_history"), layer));
      }
    }
  }

  // ---------------------------------------------------------------- inputs
  // Whether the model's images are channels_last: the data_format of its first layer that has one.
  static bool input_channels_last(const Json& layers) {
    for (const Json& layer : layers.as_array()) {
      const Json& config = layer.at("config");
      if (!config.is_object()) continue;
      if (const Json* f = config.find("data_format"); f && f->is_string()) return f->as_string() != "channels_first";
      if (is_model_class(layer.at("class_name").as_string())) {
        const Json* inner = config.find("layers");
        if (inner && inner->is_array()) return input_channels_last(*inner);
      }
    }
    return true;
  }

  Value make_input(const Json& layer, bool channels_last = true) {
    const Json& config = layer.at("config");
    const Json* shape = config.find("batch_input_shape");
    if (!shape || shape->is_null()) shape = config.find("batch_shape");  // Keras 3
    SCALPEL_CHECK(shape && shape->is_array(), "{}: input layer '{}' states no shape", options_.what,
                  layer_name(layer));
    return make_graph_input(*shape, channels_last);
  }

  Value make_graph_input(const Json& batch_shape, bool channels_last) {
    SCALPEL_CHECK(graph_.spec.input_shape.empty() && !input_made_, "{}: the model has more than one input",
                  options_.what);
    input_made_ = true;
    Shape shape;
    for (size_t i = 1; i < batch_shape.size(); ++i) {
      const int64_t d = batch_shape[i].is_null() ? -1 : batch_shape[i].as_int();
      SCALPEL_CHECK(d == -1 || (d > 0 && d <= 1 << 24), "{}: input dimension {} is {}", options_.what, i, d);
      shape.push_back(d);
    }
    Value v{graph_.spec.input, shape, channels_last && shape.size() == 3};
    const Shape stored = stored_shape(v);
    for (int64_t d : stored) graph_.spec.input_shape.push_back(d < 0 ? 0 : d);
    return v;
  }

  // ---------------------------------------------------------------- graph helpers
  static Shape stored_shape(const Value& v) {
    if (!v.channels_moved) return v.shape;
    return {v.shape[2], v.shape[0], v.shape[1]};
  }

  std::string unique_name(const std::string& base) {
    std::string name = graph_safe_name(base);
    if (used_names_.insert(name).second) return name;
    for (int i = 1;; ++i) {
      std::string candidate = fmt::format("{}_{}", name, i);
      if (used_names_.insert(candidate).second) return candidate;
    }
  }

  // Adds a node; its output value is named after the node.
  std::string add_node(const std::string& base, const std::string& op, std::vector<std::string> inputs,
                       Json attrs = Json::object()) {
    GraphNode node;
    node.name = unique_name(base);
    node.op = op;
    node.inputs = std::move(inputs);
    node.output = node.name;
    node.attrs = std::move(attrs);
    graph_.spec.nodes.push_back(std::move(node));
    return graph_.spec.nodes.back().output;
  }

  // The stored tensor equal to Keras' tensor of `v` permuted by `perm` (over the batch axis
  // too), adding a transpose only when needed.
  Value keras_permuted(const Value& v, const Shape& perm, const std::string& base) {
    const size_t rank = v.shape.size() + 1;
    Shape stored_to_keras(rank);  // stored axis of Keras axis i
    std::iota(stored_to_keras.begin(), stored_to_keras.end(), 0);
    if (v.channels_moved) stored_to_keras = {0, 2, 3, 1};
    Shape order(rank);
    Shape shape(rank - 1);
    for (size_t i = 0; i < rank; ++i) {
      order[i] = stored_to_keras[perm[i]];
      if (i > 0) shape[i - 1] = v.shape[perm[i] - 1];
    }
    Shape identity(rank);
    std::iota(identity.begin(), identity.end(), 0);
    if (order == identity) return {v.name, shape, false};
    Json attrs = Json::object();
    attrs["perm"] = int_array(order);
    return {add_node(base, "transpose", {v.name}, attrs), shape, false};
  }

  // `v` stored in Keras' own order.
  Value keras_order(const Value& v, const std::string& base) {
    if (!v.channels_moved) return v;
    Shape perm(v.shape.size() + 1);
    std::iota(perm.begin(), perm.end(), 0);
    return keras_permuted(v, perm, base + "_nhwc");
  }

  // `v`, a 4-D tensor, as NCHW for a layer of the given data_format.
  Value image_input(const Value& v, bool channels_last, const Json& layer) {
    SCALPEL_CHECK(v.shape.size() == 3, "{}: layer '{}' ({}) expects an image tensor, got shape {}", options_.what,
                  layer_name(layer), layer.at("class_name").as_string(), shape_text(v.shape));
    if (!channels_last) return keras_order(v, layer_name(layer));
    if (v.channels_moved) return v;
    Value moved = keras_permuted(v, {0, 3, 1, 2}, layer_name(layer) + "_nchw");
    return {moved.name, v.shape, true};
  }

  // (C, H, W) of an image value read by a layer of the given data_format.
  static Shape chw(const Value& v, bool channels_last) {
    return channels_last ? Shape{v.shape[2], v.shape[0], v.shape[1]} : v.shape;
  }
  static Value image_value(const std::string& name, int64_t c, int64_t h, int64_t w, bool channels_last) {
    return {name, channels_last ? Shape{h, w, c} : Shape{c, h, w}, channels_last};
  }

  // The stored axis of Keras axis `axis` (with the batch axis; negative counts from the end).
  int64_t stored_axis(const Value& v, int64_t axis, const Json& layer) const {
    const int64_t rank = static_cast<int64_t>(v.shape.size()) + 1;
    if (axis < 0) axis += rank;
    SCALPEL_CHECK(axis >= 1 && axis < rank, "{}: layer '{}' ({}): axis {} is out of range for shape {}",
                  options_.what, layer_name(layer), layer.at("class_name").as_string(), axis, shape_text(v.shape));
    if (!v.channels_moved) return axis;
    static const int64_t moved[] = {0, 2, 3, 1};
    return moved[axis];
  }

  // A constant node holding `value` (fixed by the config).
  std::string add_constant(const std::string& base, const Tensor& value) {
    Json attrs = Json::object();
    attrs["shape"] = int_array(value.shape());
    const std::string name = add_node(base, "constant", {}, attrs);
    graph_.constants.push_back({name + ".value", value});
    return name;
  }

  // The broadcast shape of a per-channel vector of `channels` along the stored axis `axis` of
  // a value of stored rank `rank` (with the batch axis).
  static Shape channel_shape(int64_t rank, int64_t axis, int64_t channels) {
    Shape s(rank, 1);
    s[axis] = channels;
    return s;
  }

  void add_weight(const Json& layer, const std::string& top_layer, bool trainable, const std::string& param,
                  Shape shape, const std::string& target, KerasWeightLayout layout, Shape target_shape,
                  bool statistic = false) {
    KerasWeight w;
    w.layer = layer_name(layer);
    w.top_layer = top_layer.empty() ? w.layer : top_layer;
    w.param = param;
    w.shape = std::move(shape);
    w.trainable = trainable && !statistic;
    w.target = target;
    w.layout = layout;
    w.target_shape = std::move(target_shape);
    graph_.weights.push_back(std::move(w));
  }

  [[noreturn]] void layer_error(const Json& layer, const std::string& why) const {
    fail("{}: layer '{}' ({}): {}", options_.what, layer_name(layer), layer.at("class_name").as_string(), why);
  }

  int64_t known(int64_t d, const Json& layer, const char* what) const {
    if (d < 0) layer_error(layer, fmt::format("its {} must be known; the config leaves it open", what));
    return d;
  }

  // ---------------------------------------------------------------- activations
  // Appends the activation `name` (a Keras activation identifier) to `v`. Softmax goes over
  // Keras' last axis.
  Value activation(const Value& v, const Json& spec, const std::string& base, const Json& layer) {
    std::string name;
    if (spec.is_string()) {
      name = spec.as_string();
    } else if (spec.is_object()) {  // Keras 3: {"class_name": "function", "config": "relu", ...}
      const Json* c = spec.find("config");
      if (c && c->is_string()) name = c->as_string();
      else if (const Json* cn = spec.find("class_name"); cn && cn->is_string()) name = cn->as_string();
    } else if (spec.is_null()) {
      name = "linear";
    }
    if (name == "linear" || name.empty()) return v;
    Json attrs = Json::object();
    std::string op;
    if (name == "relu" || name == "relu6" || name == "sigmoid" || name == "tanh" || name == "elu" ||
        name == "gelu") {
      op = name;
    } else if (name == "swish" || name == "silu") {
      op = "silu";
    } else if (name == "hard_swish" || name == "hard_silu") {
      op = "hard_swish";
    } else if (name == "hard_sigmoid") {
      op = "hard_sigmoid";  // Keras 2 and TF.js: clip(0.2 x + 0.5); Keras 3: relu6(x + 3) / 6
      attrs["alpha"] = keras3_ ? 1.0 / 6.0 : 0.2;
      attrs["beta"] = 0.5;
    } else if (name == "leaky_relu") {
      op = "leaky_relu";
      attrs["slope"] = 0.2;  // Keras 3's default negative_slope
    } else if (name == "softmax") {
      op = "softmax";
      attrs["axis"] = static_cast<long long>(stored_axis(v, -1, layer));
    } else {
      layer_error(layer, fmt::format("activation '{}' is not supported", name));
    }
    return {add_node(base, op, {v.name}, attrs), v.shape, v.channels_moved};
  }

  // ---------------------------------------------------------------- layers
  Value apply_layer(const Json& layer, const std::vector<Value>& in, const std::string& top_layer,
                    bool trainable) {
    const std::string& cls = layer.at("class_name").as_string();
    const Json& config = layer.at("config");
    if (const Json* t = config.find("trainable"); t && t->is_bool()) trainable = trainable && t->as_bool();
    const std::string& name = layer_name(layer);
    static const std::set<std::string> merges = {"Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum",
                                                 "Concatenate"};
    if (!merges.contains(cls) && in.size() != 1) layer_error(layer, fmt::format("takes one input, got {}", in.size()));
    try {
      if (cls == "Conv2D" || cls == "Convolution2D") return conv2d(layer, config, in[0], top_layer, trainable);
      if (cls == "DepthwiseConv2D") return depthwise_conv2d(layer, config, in[0], top_layer, trainable);
      if (cls == "SeparableConv2D" || cls == "SeparableConvolution2D")
        return separable_conv2d(layer, config, in[0], top_layer, trainable);
      if (cls == "Conv2DTranspose" || cls == "Deconvolution2D")
        return conv_transpose2d(layer, config, in[0], top_layer, trainable);
      if (cls == "Dense") return dense(layer, config, in[0], top_layer, trainable);
      if (cls == "BatchNormalization") return batch_norm(layer, config, in[0], top_layer, trainable);
      if (cls == "Activation") return activation(in[0], config.at("activation"), name, layer);
      if (cls == "ReLU") return relu(layer, config, in[0]);
      if (cls == "LeakyReLU") {
        const Json* slope = config.find("negative_slope");  // Keras 3
        if (!slope || slope->is_null()) slope = config.find("alpha");
        Json attrs = Json::object();
        attrs["slope"] = slope && !slope->is_null() ? slope->as_number() : 0.3;
        return {add_node(name, "leaky_relu", {in[0].name}, attrs), in[0].shape, in[0].channels_moved};
      }
      if (cls == "ELU") {
        Json attrs = Json::object();
        const Json* alpha = config.find("alpha");
        attrs["alpha"] = alpha && !alpha->is_null() ? alpha->as_number() : 1.0;
        return {add_node(name, "elu", {in[0].name}, attrs), in[0].shape, in[0].channels_moved};
      }
      if (cls == "Softmax") {
        const Json* axis = config.find("axis");
        int64_t a = -1;
        if (axis && axis->is_number()) a = axis->as_int();
        else if (axis && axis->is_array() && axis->size() == 1) a = axis->at(0).as_int();
        else if (axis && !axis->is_null()) layer_error(layer, "softmax over several axes is not supported");
        Json attrs = Json::object();
        attrs["axis"] = static_cast<long long>(stored_axis(in[0], a, layer));
        return {add_node(name, "softmax", {in[0].name}, attrs), in[0].shape, in[0].channels_moved};
      }
      if (cls == "Dropout" || cls == "SpatialDropout2D" || cls == "GaussianDropout" || cls == "AlphaDropout") {
        if (cls != "Dropout") layer_error(layer, "only Dropout is supported among the dropout layers");
        Json attrs = Json::object();
        attrs["rate"] = config.at("rate").as_number();
        return {add_node(name, "dropout", {in[0].name}, attrs), in[0].shape, in[0].channels_moved};
      }
      if (cls == "Flatten") return flatten(layer, config, in[0]);
      if (cls == "Reshape") return reshape(layer, config, in[0]);
      if (cls == "MaxPooling2D" || cls == "AveragePooling2D" || cls == "MaxPool2D" || cls == "AvgPool2D")
        return pool2d(layer, config, in[0]);
      if (cls == "GlobalAveragePooling2D" || cls == "GlobalMaxPooling2D" || cls == "GlobalAvgPool2D" ||
          cls == "GlobalMaxPool2D")
        return global_pool(layer, config, in[0]);
      if (cls == "ZeroPadding2D") return zero_padding(layer, config, in[0]);
      if (cls == "Cropping2D") return cropping(layer, config, in[0]);
      if (cls == "UpSampling2D") return upsampling(layer, config, in[0]);
      if (merges.contains(cls)) return merge(layer, config, in);
      if (cls == "Rescaling") return rescaling(layer, config, in[0]);
      if (cls == "Normalization") return normalization(layer, config, in[0], top_layer, trainable);
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.starts_with(options_.what + ": layer '")) throw;
      layer_error(layer, what);
    }
    layer_error(layer, "this layer class is not supported (supported layers: docs/keras.md)");
  }

  bool channels_last(const Json& config) const {
    const Json* f = config.find("data_format");
    return !f || f->is_null() || f->as_string() != "channels_first";
  }

  // TF padding: "same" (resolved per input size by the graph) or "valid".
  bool same_padding(const Json& config, const Json& layer) const {
    const Json* p = config.find("padding");
    const std::string padding = p && p->is_string() ? p->as_string() : "valid";
    if (padding != "same" && padding != "valid") layer_error(layer, fmt::format("padding '{}' is not supported", padding));
    return padding == "same";
  }

  static int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t d, bool same) {
    if (in < 0) return -1;
    if (same) return (in + s - 1) / s;
    const int64_t out = (in - (d * (k - 1) + 1)) / s + 1;
    return out;
  }

  // The spatial output size, checked to be positive.
  int64_t spatial_out(int64_t in, int64_t k, int64_t s, int64_t d, bool same, const Json& layer) const {
    const int64_t out = conv_out(in, k, s, d, same);
    if (in >= 0 && out <= 0) {
      layer_error(layer, fmt::format("a window of {} (dilation {}) does not fit an input of size {}", k, d, in));
    }
    return out;
  }

  Value conv2d(const Json& layer, const Json& config, const Value& x, const std::string& top, bool trainable) {
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const Shape c_h_w = chw(v, cl);
    const int64_t in = known(c_h_w[0], layer, "input channel count");
    const int64_t filters = positive_int(config, "filters");
    const Shape k = int_pair(config.find("kernel_size"), 1);
    const Shape s = int_pair(config.find("strides"), 1);
    const Shape d = int_pair(config.find("dilation_rate"), 1);
    const Json* g = config.find("groups");
    const int64_t groups = g && !g->is_null() ? g->as_int() : 1;
    if (groups < 1 || in % groups != 0 || filters % groups != 0) {
      layer_error(layer, fmt::format("groups {} do not divide {} input and {} output channels", groups, in, filters));
    }
    const bool same = same_padding(config, layer);
    const bool bias = !config.contains("use_bias") || config.at("use_bias").as_bool();
    Json attrs = Json::object();
    attrs["in_channels"] = static_cast<long long>(in);
    attrs["out_channels"] = static_cast<long long>(filters);
    attrs["kernel"] = int_array(k);
    attrs["stride"] = int_array(s);
    attrs["dilation"] = int_array(d);
    attrs["groups"] = static_cast<long long>(groups);
    if (same) attrs["same"] = true;
    attrs["bias"] = bias;
    const std::string node = add_node(layer_name(layer), "conv2d", {v.name}, attrs);
    add_weight(layer, top, trainable, "kernel", {k[0], k[1], in / groups, filters}, node + ".weight",
               KerasWeightLayout::ConvKernel, {filters, in / groups, k[0], k[1]});
    if (bias) add_weight(layer, top, trainable, "bias", {filters}, node + ".bias", KerasWeightLayout::AsIs, {filters});
    const Value out = image_value(node, filters, spatial_out(c_h_w[1], k[0], s[0], d[0], same, layer),
                                  spatial_out(c_h_w[2], k[1], s[1], d[1], same, layer), cl);
    return activation(out, config.contains("activation") ? config.at("activation") : Json("linear"),
                      node + "_" + activation_suffix(config), layer);
  }

  static std::string activation_suffix(const Json& config) {
    const Json* a = config.find("activation");
    if (a && a->is_string()) return a->as_string();
    return "act";
  }

  // A depthwise conv2d node (no activation); returns the output and the node name.
  Value depthwise_node(const Json& layer, const Json& config, const Value& v, bool cl, const std::string& base,
                       bool bias, const std::string& top, bool trainable, const std::string& param) {
    const Shape c_h_w = chw(v, cl);
    const int64_t in = known(c_h_w[0], layer, "input channel count");
    const int64_t mult = positive_int(config, "depth_multiplier", 1);
    const Shape k = int_pair(config.find("kernel_size"), 1);
    const Shape s = int_pair(config.find("strides"), 1);
    const Shape d = int_pair(config.find("dilation_rate"), 1);
    const bool same = same_padding(config, layer);
    Json attrs = Json::object();
    attrs["in_channels"] = static_cast<long long>(in);
    attrs["out_channels"] = static_cast<long long>(in * mult);
    attrs["kernel"] = int_array(k);
    attrs["stride"] = int_array(s);
    attrs["dilation"] = int_array(d);
    attrs["groups"] = static_cast<long long>(in);
    if (same) attrs["same"] = true;
    attrs["bias"] = bias;
    const std::string node = add_node(base, "conv2d", {v.name}, attrs);
    add_weight(layer, top, trainable, param, {k[0], k[1], in, mult}, node + ".weight",
               KerasWeightLayout::DepthwiseKernel, {in * mult, 1, k[0], k[1]});
    if (bias) add_weight(layer, top, trainable, "bias", {in * mult}, node + ".bias", KerasWeightLayout::AsIs, {in * mult});
    return image_value(node, in * mult, spatial_out(c_h_w[1], k[0], s[0], d[0], same, layer),
                       spatial_out(c_h_w[2], k[1], s[1], d[1], same, layer), cl);
  }

  Value depthwise_conv2d(const Json& layer, const Json& config, const Value& x, const std::string& top,
                         bool trainable) {
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const bool bias = !config.contains("use_bias") || config.at("use_bias").as_bool();
    // Keras 3 names DepthwiseConv2D's kernel "kernel" (SeparableConv2D keeps "depthwise_kernel").
    const Value out = depthwise_node(layer, config, v, cl, layer_name(layer), bias, top, trainable,
                                     keras3_ ? "kernel" : "depthwise_kernel");
    return activation(out, config.contains("activation") ? config.at("activation") : Json("linear"),
                      out.name + "_" + activation_suffix(config), layer);
  }

  // SeparableConv2D: depthwise (stride, padding, dilation) then pointwise 1x1, no bias between.
  Value separable_conv2d(const Json& layer, const Json& config, const Value& x, const std::string& top,
                         bool trainable) {
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const std::string name = layer_name(layer);
    const Value dw = depthwise_node(layer, config, v, cl, name + "_depthwise", false, top, trainable,
                                    "depthwise_kernel");
    const Shape c_h_w = chw(dw, cl);
    const int64_t mid = c_h_w[0];
    const int64_t filters = positive_int(config, "filters");
    const bool bias = !config.contains("use_bias") || config.at("use_bias").as_bool();
    Json attrs = Json::object();
    attrs["in_channels"] = static_cast<long long>(mid);
    attrs["out_channels"] = static_cast<long long>(filters);
    attrs["kernel"] = int_array({1, 1});
    attrs["bias"] = bias;
    const std::string node = add_node(name + "_pointwise", "conv2d", {dw.name}, attrs);
    add_weight(layer, top, trainable, "pointwise_kernel", {1, 1, mid, filters}, node + ".weight",
               KerasWeightLayout::ConvKernel, {filters, mid, 1, 1});
    if (bias) add_weight(layer, top, trainable, "bias", {filters}, node + ".bias", KerasWeightLayout::AsIs, {filters});
    const Value out = image_value(node, filters, c_h_w[1], c_h_w[2], cl);
    return activation(out, config.contains("activation") ? config.at("activation") : Json("linear"),
                      name + "_" + activation_suffix(config), layer);
  }

  Value conv_transpose2d(const Json& layer, const Json& config, const Value& x, const std::string& top,
                         bool trainable) {
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const Shape c_h_w = chw(v, cl);
    const int64_t in = known(c_h_w[0], layer, "input channel count");
    const int64_t filters = positive_int(config, "filters");
    const Shape k = int_pair(config.find("kernel_size"), 1);
    const Shape s = int_pair(config.find("strides"), 1);
    const Shape d = int_pair(config.find("dilation_rate"), 1);
    if (const Json* op = config.find("output_padding"); op && !op->is_null()) {
      layer_error(layer, "output_padding is not supported");
    }
    const bool same = same_padding(config, layer);
    const bool bias = !config.contains("use_bias") || config.at("use_bias").as_bool();
    // TF crops (k_eff - s) from the full output for "same": the smaller half on top/left.
    Shape pads = {0, 0, 0, 0};
    Shape out_hw(2);
    for (int i = 0; i < 2; ++i) {
      const int64_t k_eff = d[i] * (k[i] - 1) + 1;
      const int64_t total = same ? std::max<int64_t>(k_eff - s[i], 0) : 0;
      pads[i] = total / 2;
      pads[i + 2] = total - total / 2;
      const int64_t size = c_h_w[1 + i];
      out_hw[i] = size < 0 ? -1 : (same ? size * s[i] : (size - 1) * s[i] + k_eff);
    }
    Json attrs = Json::object();
    attrs["in_channels"] = static_cast<long long>(in);
    attrs["out_channels"] = static_cast<long long>(filters);
    attrs["kernel"] = int_array(k);
    attrs["stride"] = int_array(s);
    attrs["dilation"] = int_array(d);
    attrs["pads"] = int_array(pads);
    attrs["bias"] = bias;
    const std::string node = add_node(layer_name(layer), "conv_transpose2d", {v.name}, attrs);
    add_weight(layer, top, trainable, "kernel", {k[0], k[1], filters, in}, node + ".weight",
               KerasWeightLayout::ConvTransposeKernel, {in, filters, k[0], k[1]});
    if (bias) add_weight(layer, top, trainable, "bias", {filters}, node + ".bias", KerasWeightLayout::AsIs, {filters});
    const Value out = image_value(node, filters, out_hw[0], out_hw[1], cl);
    return activation(out, config.contains("activation") ? config.at("activation") : Json("linear"),
                      node + "_" + activation_suffix(config), layer);
  }

  // Dense acts on Keras' last axis.
  Value dense(const Json& layer, const Json& config, const Value& x, const std::string& top, bool trainable) {
    const Value v = keras_order(x, layer_name(layer));
    if (v.shape.empty()) layer_error(layer, "expects at least a vector per sample");
    const int64_t in = known(v.shape.back(), layer, "input feature count");
    const int64_t units = positive_int(config, "units");
    const bool bias = !config.contains("use_bias") || config.at("use_bias").as_bool();
    Json attrs = Json::object();
    attrs["in_features"] = static_cast<long long>(in);
    attrs["out_features"] = static_cast<long long>(units);
    attrs["bias"] = bias;
    const std::string node = add_node(layer_name(layer), "linear", {v.name}, attrs);
    add_weight(layer, top, trainable, "kernel", {in, units}, node + ".weight", KerasWeightLayout::DenseKernel,
               {units, in});
    if (bias) add_weight(layer, top, trainable, "bias", {units}, node + ".bias", KerasWeightLayout::AsIs, {units});
    Shape shape = v.shape;
    shape.back() = units;
    return activation({node, shape, false}, config.contains("activation") ? config.at("activation") : Json("linear"),
                      node + "_" + activation_suffix(config), layer);
  }

  Value batch_norm(const Json& layer, const Json& config, const Value& x, const std::string& top, bool trainable) {
    const Json* axis_json = config.find("axis");
    int64_t axis = -1;
    if (axis_json && axis_json->is_number()) axis = axis_json->as_int();
    else if (axis_json && axis_json->is_array() && axis_json->size() == 1) axis = axis_json->at(0).as_int();
    else if (axis_json && !axis_json->is_null()) layer_error(layer, "normalizing over several axes is not supported");
    const int64_t stored = stored_axis(x, axis, layer);
    if (stored != 1) {
      layer_error(layer, fmt::format("axis {} of shape {} is not the channel axis", axis, shape_text(x.shape)));
    }
    const int64_t channels = known(stored_shape(x)[0], layer, "channel count");
    const bool scale = !config.contains("scale") || config.at("scale").as_bool();
    const bool center = !config.contains("center") || config.at("center").as_bool();
    Json attrs = Json::object();
    attrs["channels"] = static_cast<long long>(channels);
    attrs["eps"] = config.contains("epsilon") ? config.at("epsilon").as_number() : 1e-3;
    const std::string node = add_node(layer_name(layer), "batch_norm", {x.name}, attrs);
    if (scale) {
      add_weight(layer, top, trainable, "gamma", {channels}, node + ".weight", KerasWeightLayout::AsIs, {channels});
    } else {
      graph_.constants.push_back({node + ".weight", Tensor::ones({channels})});
    }
    if (center) {
      add_weight(layer, top, trainable, "beta", {channels}, node + ".bias", KerasWeightLayout::AsIs, {channels});
    } else {
      graph_.constants.push_back({node + ".bias", Tensor::zeros({channels})});
    }
    add_weight(layer, top, trainable, "moving_mean", {channels}, node + ".running_mean", KerasWeightLayout::AsIs,
               {channels}, true);
    add_weight(layer, top, trainable, "moving_variance", {channels}, node + ".running_var", KerasWeightLayout::AsIs,
               {channels}, true);
    return {node, x.shape, x.channels_moved};
  }

  // ReLU(max_value, negative_slope, threshold 0).
  Value relu(const Json& layer, const Json& config, const Value& x) {
    const Json* t = config.find("threshold");
    if (t && !t->is_null() && t->as_number() != 0) layer_error(layer, "a threshold other than 0 is not supported");
    const Json* mv = config.find("max_value");
    const Json* ns = config.find("negative_slope");
    const double slope = ns && !ns->is_null() ? ns->as_number() : 0.0;
    const std::string name = layer_name(layer);
    std::string out;
    if (slope == 0) {
      if (!mv || mv->is_null()) {
        out = add_node(name, "relu", {x.name});
      } else if (mv->as_number() == 6) {
        out = add_node(name, "relu6", {x.name});
      } else {
        Json attrs = Json::object();
        attrs["min"] = 0.0;
        attrs["max"] = mv->as_number();
        out = add_node(name, "clip", {x.name}, attrs);
      }
    } else {
      Json attrs = Json::object();
      attrs["slope"] = slope;
      out = add_node(mv && !mv->is_null() ? name + "_leaky" : name, "leaky_relu", {x.name}, attrs);
      if (mv && !mv->is_null()) {
        Json clip = Json::object();
        clip["max"] = mv->as_number();
        out = add_node(name, "clip", {out}, clip);
      }
    }
    return {out, x.shape, x.channels_moved};
  }

  // Flatten in Keras' order (channels_last: H, W, C), so that the Dense after it keeps its weights.
  Value flatten(const Json& layer, const Json& config, const Value& x) {
    const std::string name = layer_name(layer);
    Value v;
    if (!channels_last(config) && x.shape.size() >= 2) {
      // Keras' channels_first Flatten moves axis 1 last before flattening.
      Shape perm = {0};
      for (size_t i = 2; i <= x.shape.size(); ++i) perm.push_back(static_cast<int64_t>(i));
      perm.push_back(1);
      v = keras_permuted(x, perm, name + "_perm");
    } else {
      v = keras_order(x, name);
    }
    int64_t n = 1;
    for (int64_t d : v.shape) n = (d < 0 || n < 0) ? -1 : n * d;
    return {add_node(name, "flatten", {v.name}), {n}, false};
  }

  Value reshape(const Json& layer, const Json& config, const Value& x) {
    const Value v = keras_order(x, layer_name(layer));
    Shape target;
    for (const Json& d : config.at("target_shape").as_array()) {
      target.push_back(d.as_int());
      if (target.back() == 0 || target.back() < -1) layer_error(layer, "target_shape entries must be positive or -1");
    }
    int64_t in_count = 1;
    for (int64_t d : v.shape) in_count = (d < 0 || in_count < 0) ? -1 : in_count * d;
    int64_t known_count = 1;
    int inferred = -1;
    for (size_t i = 0; i < target.size(); ++i) {
      if (target[i] == -1) {
        if (inferred >= 0) layer_error(layer, "target_shape has two -1 entries");
        inferred = static_cast<int>(i);
      } else {
        known_count *= target[i];
      }
    }
    Shape out = target;
    if (inferred >= 0) out[inferred] = in_count < 0 ? -1 : in_count / std::max<int64_t>(known_count, 1);
    if (in_count >= 0 && (inferred >= 0 ? in_count % std::max<int64_t>(known_count, 1) != 0 : known_count != in_count)) {
      layer_error(layer, fmt::format("cannot reshape {} into {}", shape_text(v.shape), shape_text(target)));
    }
    Json shape = Json::array({Json(0)});
    for (int64_t d : target) shape.push_back(Json(static_cast<long long>(d)));
    Json attrs = Json::object();
    attrs["shape"] = shape;
    return {add_node(layer_name(layer), "reshape", {v.name}, attrs), out, false};
  }

  Value pool2d(const Json& layer, const Json& config, const Value& x) {
    const std::string& cls = layer.at("class_name").as_string();
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const Shape c_h_w = chw(v, cl);
    const Shape k = int_pair(config.find("pool_size"), 2);
    const Json* strides = config.find("strides");
    const Shape s = strides && !strides->is_null() ? int_pair(strides, 1) : k;
    const bool same = same_padding(config, layer);
    Json attrs = Json::object();
    attrs["kernel"] = int_array(k);
    attrs["stride"] = int_array(s);
    if (same) attrs["same"] = true;
    const std::string op = cls.starts_with("Max") ? "max_pool2d" : "avg_pool2d";
    const std::string node = add_node(layer_name(layer), op, {v.name}, attrs);
    return image_value(node, c_h_w[0], spatial_out(c_h_w[1], k[0], s[0], 1, same, layer),
                       spatial_out(c_h_w[2], k[1], s[1], 1, same, layer), cl);
  }

  Value global_pool(const Json& layer, const Json& config, const Value& x) {
    const std::string& cls = layer.at("class_name").as_string();
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const int64_t c = chw(v, cl)[0];
    const Json* kd = config.find("keepdims");
    const bool keepdims = kd && kd->is_bool() && kd->as_bool();
    Json attrs = Json::object();
    attrs["keepdims"] = keepdims;
    const std::string op = cls.starts_with("GlobalMax") ? "global_max_pool" : "global_avg_pool";
    const std::string node = add_node(layer_name(layer), op, {v.name}, attrs);
    if (keepdims) return image_value(node, c, 1, 1, cl);
    return {node, {c}, false};
  }

  // ZeroPadding2D / Cropping2D amounts: n, [h, w] or [[top, bottom], [left, right]] ->
  // [top, left, bottom, right].
  Shape tblr(const Json* value, const Json& layer) const {
    if (value == nullptr || value->is_null()) return {1, 1, 1, 1};
    if (value->is_number()) {
      const int64_t n = value->as_int();
      if (n < 0 || n > 1 << 16) layer_error(layer, fmt::format("amount must be non-negative, got {}", n));
      return {n, n, n, n};
    }
    const Json& a = *value;
    if (a.size() != 2) layer_error(layer, fmt::format("expected 2 entries, got {}", a.dump()));
    Shape out = a[0].is_number() ? Shape{a[0].as_int(), a[1].as_int(), a[0].as_int(), a[1].as_int()}
                                 : Shape{a[0][0].as_int(), a[1][0].as_int(), a[0][1].as_int(), a[1][1].as_int()};
    for (int64_t n : out) {
      if (n < 0 || n > 1 << 16) layer_error(layer, fmt::format("amounts must be non-negative, got {}", a.dump()));
    }
    return out;
  }

  static int64_t add_known(int64_t a, int64_t b) { return a < 0 ? -1 : a + b; }

  Value zero_padding(const Json& layer, const Json& config, const Value& x) {
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const Shape c_h_w = chw(v, cl);
    const Shape p = tblr(config.find("padding"), layer);
    Json attrs = Json::object();
    attrs["pads"] = int_array(p);
    const std::string node = add_node(layer_name(layer), "pad", {v.name}, attrs);
    return image_value(node, c_h_w[0], add_known(c_h_w[1], p[0] + p[2]), add_known(c_h_w[2], p[1] + p[3]), cl);
  }

  Value cropping(const Json& layer, const Json& config, const Value& x) {
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const Shape c_h_w = chw(v, cl);
    const Json* cropping = config.find("cropping");
    const Shape c = cropping && !cropping->is_null() ? tblr(cropping, layer) : Shape{0, 0, 0, 0};
    std::string cur = v.name;
    for (int i = 0; i < 2; ++i) {
      const int64_t start = c[i];
      const int64_t end_crop = c[i + 2];
      const int64_t size = c_h_w[1 + i];
      if (size >= 0 && start + end_crop >= size) {
        layer_error(layer, fmt::format("cropping {} + {} leaves nothing of size {}", start, end_crop, size));
      }
      if (start == 0 && end_crop == 0) continue;
      Json attrs = Json::object();
      attrs["axis"] = 2 + i;
      attrs["start"] = static_cast<long long>(start);
      // A negative end counts from the end (NumPy); no crop at the end: past the end, clamped.
      attrs["end"] = end_crop > 0 ? static_cast<long long>(-end_crop) : static_cast<long long>(INT32_MAX);
      cur = add_node(layer_name(layer) + (i == 0 ? "_rows" : "_cols"), "slice", {cur}, attrs);
    }
    if (cur == v.name) cur = add_node(layer_name(layer), "identity", {cur});
    return image_value(cur, c_h_w[0], add_known(c_h_w[1], -c[0] - c[2]), add_known(c_h_w[2], -c[1] - c[3]), cl);
  }

  Value upsampling(const Json& layer, const Json& config, const Value& x) {
    const bool cl = channels_last(config);
    const Value v = image_input(x, cl, layer);
    const Shape c_h_w = chw(v, cl);
    const Shape size = int_pair(config.find("size"), 2);
    const Json* interp = config.find("interpolation");
    const std::string mode = interp && interp->is_string() ? interp->as_string() : "nearest";
    if (mode != "nearest" && mode != "bilinear") layer_error(layer, fmt::format("interpolation '{}' is not supported", mode));
    if (mode == "bilinear" && (options_.source == "tfjs" || keras_before_2_3(options_.keras_version))) {
      // TF.js and TF1 resize with half_pixel_centers = align_corners = false ("asymmetric").
      layer_error(layer, "bilinear upsampling with TF1 / TF.js (asymmetric) coordinates is not supported");
    }
    Json attrs = Json::object();
    attrs["mode"] = mode;
    attrs["scale"] = int_array(size);
    // With integer scales, nearest gives the same pixels in every coordinate convention.
    attrs["coordinates"] = "half_pixel";
    const std::string node = add_node(layer_name(layer), "upsample", {v.name}, attrs);
    return image_value(node, c_h_w[0], c_h_w[1] < 0 ? -1 : c_h_w[1] * size[0], c_h_w[2] < 0 ? -1 : c_h_w[2] * size[1],
                       cl);
  }

  // Add, Multiply, Subtract, Average, Maximum, Minimum, Concatenate.
  Value merge(const Json& layer, const Json& config, const std::vector<Value>& in) {
    const std::string& cls = layer.at("class_name").as_string();
    const std::string name = layer_name(layer);
    if (in.size() < 2 && cls != "Concatenate") layer_error(layer, fmt::format("takes 2 or more inputs, got {}", in.size()));
    if (cls == "Subtract" && in.size() != 2) layer_error(layer, fmt::format("takes 2 inputs, got {}", in.size()));
    // Every input in the first one's layout.
    std::vector<Value> v = {in[0]};
    for (size_t i = 1; i < in.size(); ++i) {
      if (in[i].shape.size() != in[0].shape.size()) {
        layer_error(layer, fmt::format("inputs of shapes {} and {} differ in rank", shape_text(in[0].shape),
                                       shape_text(in[i].shape)));
      }
      if (in[i].channels_moved == in[0].channels_moved) v.push_back(in[i]);
      else if (in[0].channels_moved) v.push_back(image_input(in[i], true, layer));
      else v.push_back(keras_order(in[i], name + "_in" + std::to_string(i)));
    }
    if (cls == "Concatenate") {
      const Json* a = config.find("axis");
      const int64_t axis = a && !a->is_null() ? a->as_int() : -1;
      Json attrs = Json::object();
      const int64_t stored = stored_axis(v[0], axis, layer);
      attrs["axis"] = static_cast<long long>(stored);
      std::vector<std::string> names;
      Shape shape = v[0].shape;
      const int64_t keras_axis = (axis < 0 ? axis + static_cast<int64_t>(shape.size()) + 1 : axis) - 1;
      shape[keras_axis] = 0;
      for (const Value& value : v) {
        names.push_back(value.name);
        shape[keras_axis] = (shape[keras_axis] < 0 || value.shape[keras_axis] < 0) ? -1 : shape[keras_axis] + value.shape[keras_axis];
      }
      return {add_node(name, "concat", names, attrs), shape, v[0].channels_moved};
    }
    static const std::map<std::string, std::string> ops = {{"Add", "add"},      {"Multiply", "mul"},
                                                           {"Subtract", "sub"}, {"Average", "add"},
                                                           {"Maximum", "max"},  {"Minimum", "min"}};
    const std::string& op = ops.at(cls);
    // The broadcast result shape: a known dimension wins over a 1 and over an unknown one.
    Shape shape = v[0].shape;
    for (const Value& value : v) {
      for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == 1 || shape[i] < 0) shape[i] = value.shape[i] == 1 && shape[i] < 0 ? -1 : value.shape[i];
      }
    }
    std::string cur = v[0].name;
    for (size_t i = 1; i < v.size(); ++i) {
      const bool last = i + 1 == v.size() && cls != "Average";
      cur = add_node(last ? name : fmt::format("{}_{}", name, i), op, {cur, v[i].name});
    }
    if (cls == "Average") {
      const std::string scale = add_constant(name + "_scale", Tensor::scalar(1.0 / static_cast<double>(v.size())));
      cur = add_node(name, "mul", {cur, scale});
    }
    return {cur, shape, v[0].channels_moved};
  }

  // A scalar, or a vector over Keras' last axis, as a constant broadcasting against `x`.
  Tensor broadcast_constant(const Json& value, const Value& x, const Json& layer, const char* what) {
    if (value.is_number()) return Tensor::scalar(value.as_number());
    std::vector<double> values;
    for (const Json& e : value.as_array()) values.push_back(e.as_number());
    if (values.size() == 1) return Tensor::scalar(values[0]);
    const int64_t axis = stored_axis(x, -1, layer);
    const Shape stored = stored_shape(x);
    const int64_t n = static_cast<int64_t>(values.size());
    if (stored[axis - 1] >= 0 && stored[axis - 1] != n) {
      layer_error(layer, fmt::format("{} has {} values for {} channels", what, n, stored[axis - 1]));
    }
    return Tensor::from_vector(values, channel_shape(static_cast<int64_t>(stored.size()) + 1, axis, n));
  }

  // Rescaling: x * scale + offset.
  Value rescaling(const Json& layer, const Json& config, const Value& x) {
    const std::string name = layer_name(layer);
    const Json* scale = config.find("scale");
    const Json* offset = config.find("offset");
    std::string cur = x.name;
    const bool has_offset = offset && !offset->is_null() && !(offset->is_number() && offset->as_number() == 0);
    if (scale && !scale->is_null()) {
      const std::string s = add_constant(name + "_scale", broadcast_constant(*scale, x, layer, "scale"));
      cur = add_node(has_offset ? name + "_mul" : name, "mul", {cur, s});
    }
    if (has_offset) {
      const std::string o = add_constant(name + "_offset", broadcast_constant(*offset, x, layer, "offset"));
      cur = add_node(name, "add", {cur, o});
    }
    if (cur == x.name) cur = add_node(name, "identity", {cur});
    return {cur, x.shape, x.channels_moved};
  }

  // Normalization: (x - mean) / max(sqrt(variance), 1e-7) over Keras' axis -1; mean and
  // variance from the config when it states them, else the layer's weights.
  Value normalization(const Json& layer, const Json& config, const Value& x, const std::string& top, bool trainable) {
    const std::string name = layer_name(layer);
    if (const Json* invert = config.find("invert"); invert && invert->is_bool() && invert->as_bool()) {
      layer_error(layer, "invert=True (de-normalization) is not supported");
    }
    // axis None (or []): one mean and variance for everything; else one per channel of `axis`.
    const Json* axis_json = config.find("axis");
    const bool whole = axis_json && (axis_json->is_null() || (axis_json->is_array() && axis_json->size() == 0));
    int64_t axis = -1;
    if (axis_json && axis_json->is_number()) axis = axis_json->as_int();
    else if (axis_json && axis_json->is_array() && axis_json->size() == 1) axis = axis_json->at(0).as_int();
    else if (!whole && axis_json) layer_error(layer, "normalizing over several axes is not supported");
    const int64_t stored = stored_axis(x, axis, layer);
    if (!whole && stored != stored_axis(x, -1, layer)) layer_error(layer, "only the last axis (channels) is supported");
    const Shape sshape = stored_shape(x);
    const int64_t channels = whole ? 1 : known(sshape[stored - 1], layer, "channel count");
    const Shape bshape = whole ? Shape{} : channel_shape(static_cast<int64_t>(sshape.size()) + 1, stored, channels);
    const Shape wshape = whole ? Shape{} : Shape{channels};
    const Json* mean = config.find("mean");
    const Json* variance = config.find("variance");
    std::string mean_node;
    std::string std_node;
    if (mean && !mean->is_null() && variance && !variance->is_null()) {
      Tensor m = broadcast_constant(*mean, x, layer, "mean");
      Tensor var = broadcast_constant(*variance, x, layer, "variance");
      std::vector<double> sd = var.to_vector();
      for (double& s : sd) s = std::max(std::sqrt(s), 1e-7);
      mean_node = add_constant(name + "_mean", m);
      std_node = add_constant(name + "_std", Tensor::from_vector(sd, var.shape()));
    } else {
      Json attrs = Json::object();
      attrs["shape"] = int_array(bshape);
      mean_node = add_node(name + "_mean", "constant", {}, attrs);
      std_node = add_node(name + "_std", "constant", {}, attrs);
      add_weight(layer, top, trainable, "mean", wshape, mean_node + ".value", KerasWeightLayout::ChannelConstant,
                 bshape, true);
      add_weight(layer, top, trainable, "variance", wshape, std_node + ".value", KerasWeightLayout::ChannelStd,
                 bshape, true);
      add_weight(layer, top, trainable, "count", {}, "", KerasWeightLayout::Unused, {}, true);
    }
    const std::string centered = add_node(name + "_center", "sub", {x.name, mean_node});
    return {add_node(name, "div", {centered, std_node}), x.shape, x.channels_moved};
  }

  KerasConfigOptions options_;
  KerasGraph graph_;
  std::set<std::string> used_names_;
  bool keras3_ = false;
  bool input_made_ = false;
};

// "2.2.4" -> true, "2.13.1" / "3.5.0" / "" -> false.
bool keras_before_2_3(const std::string& version) {
  int major = 0;
  int minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) return false;
  return major < 2 || (major == 2 && minor < 3);
}

Tensor convert_weight(const KerasWeight& w, const Tensor& stored) {
  const Tensor t = stored.to(DType::F32).contiguous();
  switch (w.layout) {
    case KerasWeightLayout::AsIs:
    case KerasWeightLayout::Unused:
      return t.clone();
    case KerasWeightLayout::ConvKernel:
    case KerasWeightLayout::ConvTransposeKernel:
      return t.permute({3, 2, 0, 1}).contiguous();
    case KerasWeightLayout::DepthwiseKernel:
      return t.permute({2, 3, 0, 1}).reshape(w.target_shape).contiguous();
    case KerasWeightLayout::DenseKernel:
      return t.permute({1, 0}).contiguous();
    case KerasWeightLayout::ChannelConstant:
      return t.reshape(w.target_shape).contiguous();
    case KerasWeightLayout::ChannelStd: {
      std::vector<double> v = t.to_vector();
      for (double& x : v) x = std::max(std::sqrt(std::max(x, 0.0)), 1e-7);
      return Tensor::from_vector(v, w.target_shape);
    }
  }
  fail("unknown Keras weight layout");
}

}  // namespace

KerasGraph keras_graph_from_config(const Json& config, const KerasConfigOptions& options) {
  try {
    return Builder(options).build(config);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.starts_with(options.what + ":")) throw;
    fail("{}: {}", options.what, what);
  }
}

NamedTensors keras_weights_to_graph(const KerasGraph& g, const std::vector<Tensor>& stored, const std::string& what) {
  SCALPEL_CHECK(stored.size() == g.weights.size(), "{}: the model config needs {} weights, the file holds {}", what,
                g.weights.size(), stored.size());
  NamedTensors out = g.constants;
  for (size_t i = 0; i < stored.size(); ++i) {
    const KerasWeight& w = g.weights[i];
    SCALPEL_CHECK(stored[i].shape() == w.shape, "{}: layer '{}' weight '{}' has shape {}, the config needs {}", what,
                  w.layer, w.param, fmt::format("{}", stored[i].shape()), fmt::format("{}", w.shape));
    if (w.layout == KerasWeightLayout::Unused) continue;
    out.push_back({w.target, convert_weight(w, stored[i])});
  }
  return out;
}

}  // namespace scalpel::models
