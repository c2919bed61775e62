#include "models/import/keras_h5.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>

#include "models/import/keras_config.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/io/hdf5.h"
#include "tensor/io/zip.h"

namespace scalpel::models {

namespace {

// Keras splits an attribute too big for an HDF5 object header into "name0", "name1", ...
// (load_attributes_from_hdf5_group); both forms are read.
std::vector<std::string> keras_list_attribute(const Hdf5File& file, const std::string& group,
                                              const std::string& name) {
  if (file.has_attribute(group, name)) return file.string_list_attribute(group, name);
  std::vector<std::string> values;
  for (int chunk = 0; file.has_attribute(group, name + std::to_string(chunk)); ++chunk) {
    for (std::string& v : file.string_list_attribute(group, name + std::to_string(chunk)))
      values.push_back(std::move(v));
  }
  SCALPEL_CHECK(!values.empty() || file.has_attribute(group, name + "0"), "{}: {} has no attribute '{}'",
                file.source(), group, name);
  return values;
}

std::string join_path(const std::string& group, const std::string& name) {
  return group == "/" ? "/" + name : group + "/" + name;
}

// A weight Keras stored, checked for NaN and infinities (unusable weights, as in weights.h).
Tensor read_weight(const Hdf5File& file, const std::string& path, const std::string& layer) {
  Tensor t = file.read_tensor(path);
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    SCALPEL_CHECK(std::isfinite(p[i]), "{}: layer '{}': weight {} holds NaN or infinity", file.source(),
                  layer, path);
  }
  return t;
}

// The positions in g.weights of each layer's weights, grouped by `key` (the outermost layer
// for .h5 groups, the layer itself for .keras groups), in the order the layers first appear.
std::vector<std::pair<std::string, std::vector<size_t>>> weights_by_layer(
    const KerasGraph& g, std::string KerasWeight::*key) {
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < g.weights.size(); ++i) {
    const auto [it, added] = position.emplace(g.weights[i].*key, groups.size());
    if (added) groups.push_back({it->first, {}});
    groups[it->second].second.push_back(i);
  }
  return groups;
}

std::string weight_list(const KerasGraph& g, const std::vector<size_t>& indices) {
  std::vector<std::string> names;
  for (size_t i : indices) names.push_back(g.weights[i].param);
  return fmt::format("{}", fmt::join(names, ", "));
}

ImportedGraph finish(KerasGraph& g, const std::vector<Tensor>& stored, const std::string& path) {
  ImportedGraph out;
  out.weights = keras_weights_to_graph(g, stored, path);
  out.spec = std::move(g.spec);
  return out;
}

}  // namespace

ImportedGraph import_keras_h5(const std::string& path) {
  const Hdf5File file(path);
  SCALPEL_CHECK(file.has_attribute("/", "model_config"),
                "{}: a Keras weights-only file (no model_config): give the architecture with --model NAME",
                path);
  const Json config = Json::parse(file.string_attribute("/", "model_config"), path + ": model_config");
  KerasConfigOptions options{"keras", path, ""};
  if (file.has_attribute("/", "keras_version")) options.keras_version = file.string_attribute("/", "keras_version");
  KerasGraph g = keras_graph_from_config(config, options);
  // model.save() puts the weights in "model_weights"; save_weights() at the root.
  const std::string root = file.is_group("/model_weights") ? "/model_weights" : "/";
  const std::vector<std::string> file_layers = keras_list_attribute(file, root, "layer_names");

  std::vector<Tensor> stored(g.weights.size());
  std::map<std::string, bool> expected;
  for (auto& [layer, indices] : weights_by_layer(g, &KerasWeight::top_layer)) {
    expected[layer] = true;
    const std::string group = join_path(root, layer);
    SCALPEL_CHECK(std::find(file_layers.begin(), file_layers.end(), layer) != file_layers.end() &&
                      file.is_group(group),
                  "{}: layer '{}' has no weights in the file (the config gives it {})", path, layer,
                  weight_list(g, indices));
    const std::vector<std::string> names = keras_list_attribute(file, group, "weight_names");
    SCALPEL_CHECK(names.size() == indices.size(),
                  "{}: layer '{}' holds {} weights in the file, its config needs {} ({})", path, layer,
                  names.size(), indices.size(), weight_list(g, indices));
    // Keras 2 saves a layer's (or nested model's) trainable weights first, then the others.
    std::stable_partition(indices.begin(), indices.end(), [&](size_t i) { return g.weights[i].trainable; });
    for (size_t k = 0; k < names.size(); ++k) stored[indices[k]] = read_weight(file, join_path(group, names[k]), layer);
  }
  for (const std::string& layer : file_layers) {
    const std::string group = join_path(root, layer);
    if (expected.count(layer) == 0 && file.is_group(group) && file.has_attribute(group, "weight_names")) {
      const std::vector<std::string> names = keras_list_attribute(file, group, "weight_names");
      SCALPEL_CHECK(names.empty(), "{}: layer '{}' holds {} weights in the file, its config needs none", path,
                    layer, names.size());
    }
  }
  return finish(g, stored, path);
}

namespace {

// Keras' naming.to_snake_case of a class name: "SeparableConv2D" -> "separable_conv2d",
// "BatchNormalization" -> "batch_normalization", "ReLU" -> "re_lu".
std::string to_snake_case(const std::string& name) {
  static const std::regex non_word(R"(\W+)"), word_start("(.)([A-Z][a-z]+)"), lower_upper("([a-z])([A-Z])");
  std::string s = std::regex_replace(name, non_word, "");
  s = std::regex_replace(s, word_start, "$1_$2");
  s = std::regex_replace(s, lower_upper, "$1_$2");
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_model_class(const std::string& cls) { return cls == "Functional" || cls == "Sequential" || cls == "Model"; }

// Every layer's weights group in a Keras 3 model.weights.h5, by layer name (saving_lib's
// _save_container_state: the model's `layers` in config order, each named after its class).
void keras3_layer_groups(const Json& model, const std::string& prefix, std::map<std::string, std::string>& out) {
  const Json* config = model.find("config");
  const Json* layers = config != nullptr ? config->find("layers") : nullptr;
  if (layers == nullptr || !layers->is_array()) return;
  const bool sequential = model.find("class_name") != nullptr && model.at("class_name").is_string() &&
                          model.at("class_name").as_string() == "Sequential";
  std::map<std::string, int> used;
  for (const Json& layer : layers->as_array()) {
    if (!layer.is_object() || layer.find("class_name") == nullptr || !layer.at("class_name").is_string()) continue;
    const std::string cls = layer.at("class_name").as_string();
    // Sequential.layers leaves out the InputLayer its config lists.
    if (sequential && cls == "InputLayer") continue;
    std::string name = to_snake_case(cls);
    if (used.count(name) > 0) {
      name += "_" + std::to_string(++used[name]);
    } else {
      used[name] = 0;
    }
    std::string layer_name;
    if (const Json* c = layer.find("config"); c != nullptr && c->is_object() && c->find("name") != nullptr &&
                                             c->at("name").is_string()) {
      layer_name = c->at("name").as_string();
    } else if (layer.find("name") != nullptr && layer.at("name").is_string()) {
      layer_name = layer.at("name").as_string();
    }
    const std::string group = prefix + "/layers/" + name;
    out.emplace(layer_name, group);
    if (is_model_class(cls)) keras3_layer_groups(layer, group, out);
  }
}

}  // namespace

ImportedGraph import_keras_zip(const std::string& path) {
  const std::string bytes = read_file(path);
  const ZipReader zip(bytes, path);
  const ZipReader::Entry* config_entry = zip.find("config.json");
  const ZipReader::Entry* weights_entry = zip.find("model.weights.h5");
  SCALPEL_CHECK(config_entry != nullptr && weights_entry != nullptr,
                "{}: not a Keras 3 .keras archive (needs config.json and model.weights.h5)", path);
  const Json config = Json::parse(zip.extract(*config_entry), path + ":config.json");
  KerasGraph g = keras_graph_from_config(config, {"keras", path});
  const Hdf5File file = Hdf5File::from_bytes(zip.extract(*weights_entry), path + ":model.weights.h5");

  Json model = config;
  if (const Json* wrapped = config.find("model_config"); wrapped != nullptr) model = *wrapped;
  std::map<std::string, std::string> groups;
  keras3_layer_groups(model, "", groups);
  // Keras 2.13-2.15 wrote the same layout under "_layer_checkpoint_dependencies".
  const bool legacy = file.is_group("/_layer_checkpoint_dependencies");

  std::vector<Tensor> stored(g.weights.size());
  for (const auto& [layer, indices] : weights_by_layer(g, &KerasWeight::layer)) {
    const auto it = groups.find(layer);
    SCALPEL_CHECK(it != groups.end(), "{}: layer '{}' is not in config.json's layer list", path, layer);
    std::string vars = it->second + "/vars";
    if (legacy) vars = std::regex_replace(vars, std::regex("/layers/"), "/_layer_checkpoint_dependencies/");
    SCALPEL_CHECK(file.is_group(vars), "{}: layer '{}' has no weights in model.weights.h5 ({} absent; the config gives it {})",
                  path, layer, vars, weight_list(g, indices));
    const size_t count = file.members(vars).size();
    SCALPEL_CHECK(count == indices.size(), "{}: layer '{}' holds {} weights in model.weights.h5, its config needs {} ({})",
                  path, layer, count, indices.size(), weight_list(g, indices));
    for (size_t k = 0; k < indices.size(); ++k)
      stored[indices[k]] = read_weight(file, vars + "/" + std::to_string(k), layer);
  }
  return finish(g, stored, path);
}

// ---- weights-only files into a zoo model ----

namespace {

struct KerasLayerWeights {
  std::string layer;
  std::map<std::string, Tensor> params;  // "kernel", "bias", "gamma", ...: the name after the last '/'
  std::string describe() const {
    std::vector<std::string> parts;
    for (const auto& [name, t] : params) parts.push_back(fmt::format("{} {}", name, shape_str(t.shape())));
    return fmt::format("{}", fmt::join(parts, ", "));
  }
};

// "block1_conv1/kernel:0" -> "kernel"; "conv2d_1_1/bias:0" -> "bias".
std::string param_name(const std::string& weight_name) {
  std::string name = weight_name.substr(weight_name.rfind('/') + 1);
  return name.substr(0, name.find(':'));
}

struct ModuleSlot {
  std::string name;  // dotted module path
  nn::Module* module;
  std::vector<nn::NamedTensor> entries;  // own parameters then counted buffers, short names
};

const Tensor* entry(const ModuleSlot& slot, const std::string& name) {
  for (const nn::NamedTensor& e : slot.entries)
    if (e.name == name) return &e.tensor;
  return nullptr;
}

std::string describe_slot(const ModuleSlot& slot) {
  std::vector<std::string> parts;
  for (const nn::NamedTensor& e : slot.entries) parts.push_back(fmt::format("{} {}", e.name, shape_str(e.tensor.shape())));
  return fmt::format("{} '{}' ({})", slot.module->type(), slot.name, fmt::join(parts, ", "));
}

}  // namespace

NamedTensors keras_h5_weights_for_model(const std::string& path, nn::Module& model) {
  const Hdf5File file(path);
  const std::string root = file.is_group("/model_weights") ? "/model_weights" : "/";
  std::vector<KerasLayerWeights> layers;
  for (const std::string& layer : keras_list_attribute(file, root, "layer_names")) {
    const std::string group = join_path(root, layer);
    KerasLayerWeights w{layer, {}};
    for (const std::string& name : keras_list_attribute(file, group, "weight_names")) {
      const std::string param = param_name(name);
      SCALPEL_CHECK(w.params.count(param) == 0, "{}: layer '{}' holds two weights named '{}'", path, layer, param);
      w.params[param] = read_weight(file, join_path(group, name), layer);
    }
    if (!w.params.empty()) layers.push_back(std::move(w));
  }

  std::vector<ModuleSlot> slots;
  for (auto& [name, module] : model.named_modules()) {
    ModuleSlot slot{name, module, module->named_parameters(false)};
    for (nn::NamedTensor& b : module->named_buffers(false))
      if (b.tensor.dtype() == DType::F32) slot.entries.push_back(std::move(b));  // not num_batches_tracked
    if (!slot.entries.empty()) slots.push_back(std::move(slot));
  }

  NamedTensors out;
  size_t next = 0;
  const auto take = [&](const KerasLayerWeights& w, const std::string& what) -> const ModuleSlot& {
    SCALPEL_CHECK(next < slots.size(), "{}: Keras layer '{}' ({}: {}) has no module left to go to in the model",
                  path, w.layer, what, w.describe());
    return slots[next++];
  };
  const auto put = [&](const KerasLayerWeights& w, const ModuleSlot& slot, const std::string& name, Tensor t) {
    const Tensor* target = entry(slot, name);
    SCALPEL_CHECK(target != nullptr && target->shape() == t.shape(),
                  "{}: Keras layer '{}' ({}) does not fit the model's {}", path, w.layer, w.describe(),
                  describe_slot(slot));
    out.emplace_back(slot.name.empty() ? name : slot.name + "." + name, t.contiguous());
  };
  const auto expect_type = [&](const KerasLayerWeights& w, const ModuleSlot& slot, const std::string& type) {
    SCALPEL_CHECK(slot.module->type() == type, "{}: Keras layer '{}' ({}) does not fit the model's {}", path,
                  w.layer, w.describe(), describe_slot(slot));
  };
  const auto put_bias = [&](const KerasLayerWeights& w, const ModuleSlot& slot) {
    if (w.params.count("bias")) put(w, slot, "bias", w.params.at("bias"));
    SCALPEL_CHECK((entry(slot, "bias") != nullptr) == (w.params.count("bias") > 0),
                  "{}: Keras layer '{}' ({}) does not fit the model's {}", path, w.layer, w.describe(),
                  describe_slot(slot));
  };
  // [kh, kw, in, mult] -> [in * mult, 1, kh, kw]
  const auto depthwise = [](const Tensor& k) {
    return k.permute({2, 3, 0, 1}).contiguous().reshape({k.size(2) * k.size(3), 1, k.size(0), k.size(1)});
  };

  int64_t channels = 0;  // of the last feature map (for a Dense after a Flatten of it)
  for (const KerasLayerWeights& w : layers) {
    const auto has = [&](const char* p) { return w.params.count(p) > 0; };
    if (has("depthwise_kernel") && has("pointwise_kernel")) {  // SeparableConv2D
      const ModuleSlot& dw = take(w, "SeparableConv2D");
      expect_type(w, dw, "Conv2d");
      put(w, dw, "weight", depthwise(w.params.at("depthwise_kernel")));
      SCALPEL_CHECK(entry(dw, "bias") == nullptr, "{}: Keras layer '{}' ({}) does not fit the model's {}", path,
                    w.layer, w.describe(), describe_slot(dw));
      const ModuleSlot& pw = take(w, "SeparableConv2D");
      expect_type(w, pw, "Conv2d");
      put(w, pw, "weight", w.params.at("pointwise_kernel").permute({3, 2, 0, 1}));
      put_bias(w, pw);
      channels = w.params.at("pointwise_kernel").size(3);
    } else if (has("depthwise_kernel")) {  // DepthwiseConv2D
      const ModuleSlot& slot = take(w, "DepthwiseConv2D");
      expect_type(w, slot, "Conv2d");
      put(w, slot, "weight", depthwise(w.params.at("depthwise_kernel")));
      put_bias(w, slot);
      channels = w.params.at("depthwise_kernel").size(2) * w.params.at("depthwise_kernel").size(3);
    } else if (has("kernel") && w.params.at("kernel").dim() == 4) {  // Conv2D
      const ModuleSlot& slot = take(w, "Conv2D");
      expect_type(w, slot, "Conv2d");
      put(w, slot, "weight", w.params.at("kernel").permute({3, 2, 0, 1}));
      put_bias(w, slot);
      channels = w.params.at("kernel").size(3);
    } else if (has("kernel") && w.params.at("kernel").dim() == 2) {  // Dense
      const ModuleSlot& slot = take(w, "Dense");
      expect_type(w, slot, "Linear");
      Tensor kernel = w.params.at("kernel");  // [in, out]
      const int64_t in = kernel.size(0), spatial = channels > 0 && in % channels == 0 ? in / channels : 1;
      if (spatial > 1) {
        // Keras flattens an (H, W, C) map, scalpel's models a (C, H, W) one (torchvision's VGG
        // classifier): rows s * C + c become c * S + s.
        const int64_t out = kernel.size(1);
        kernel = kernel.reshape({spatial, channels, out}).permute({1, 0, 2}).contiguous().reshape({in, out});
      }
      put(w, slot, "weight", kernel.transpose(0, 1));
      put_bias(w, slot);
      channels = 0;
    } else if (has("moving_mean") && has("moving_variance")) {  // BatchNormalization
      const ModuleSlot& slot = take(w, "BatchNormalization");
      expect_type(w, slot, "BatchNorm2d");
      const Tensor& mean = w.params.at("moving_mean");
      put(w, slot, "weight", has("gamma") ? w.params.at("gamma") : Tensor::ones(mean.shape()));
      put(w, slot, "bias", has("beta") ? w.params.at("beta") : Tensor::zeros(mean.shape()));
      put(w, slot, "running_mean", mean);
      put(w, slot, "running_var", w.params.at("moving_variance"));
    } else {
      fail("{}: Keras layer '{}' ({}): weights of a layer scalpel cannot map by order", path, w.layer, w.describe());
    }
  }
  SCALPEL_CHECK(next == slots.size(), "{}: the file's {} layers with weights leave the model's {} without weights",
                path, layers.size(), describe_slot(slots[next]));
  return out;
}

}  // namespace scalpel::models
