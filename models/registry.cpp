#include "models/registry.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <limits>

#include "layers/modules.h"
#include "models/builders.h"
#include "models/efficientnet.h"
#include "tensor/error.h"

namespace scalpel::models {

namespace {

using Builder = std::function<std::shared_ptr<Model>(const std::string&, const ModelOptions&)>;

struct Entry {
  ModelInfo info;
  Builder build;
};

ModelInfo torchvision_info(const std::string& name, int64_t size, int64_t resize,
                           const std::string& interpolation = "bilinear") {
  return {name, "classification", "torchvision", size, resize, interpolation, "imagenet"};
}

// Resize sizes and filters: torchvision's DEFAULT weights' transforms (checked against
// tests/fixtures/models/param_counts.json).
const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = [] {
    std::vector<Entry> e;
    for (int depth : {11, 13, 16, 19})
      for (bool bn : {false, true}) {
        const std::string name = fmt::format("vgg{}{}", depth, bn ? "_bn" : "");
        e.push_back({torchvision_info(name, 224, 256), [depth, bn](const std::string& n, const ModelOptions& o) {
                       return make_vgg(n, depth, bn, o);
                     }});
      }
    for (int depth : {18, 34, 50, 101, 152}) {
      // torchvision's DEFAULT weights of resnet50 and up are the V2 recipe (resize 232).
      e.push_back({torchvision_info(fmt::format("resnet{}", depth), 224, depth >= 50 ? 232 : 256),
                   [depth](const std::string& n, const ModelOptions& o) { return make_resnet(n, depth, o); }});
    }
    for (int depth : {50, 101, 152}) {
      // Keras applications preprocess ResNetV2 with "tf" scaling (mode="tf"), no crop.
      e.push_back({{fmt::format("resnet{}_v2", depth), "classification", "keras", 224, 224, "bilinear", "tf"},
                   [depth](const std::string& n, const ModelOptions& o) { return make_resnet_v2(n, depth, o); }});
    }
    e.push_back({{"mobilenet_v1", "classification", "keras", 224, 224, "bilinear", "tf"}, make_mobilenet_v1});
    e.push_back({torchvision_info("mobilenet_v2", 224, 232), make_mobilenet_v2});
    for (int v = 0; v < 8; ++v) {
      static const int64_t resize[] = {256, 255, 288, 320, 384, 456, 528, 600};
      const std::string name = fmt::format("efficientnet_b{}", v);
      e.push_back({torchvision_info(name, efficientnet_scaling(v).resolution, resize[v], v == 1 ? "bilinear" : "bicubic"),
                   [v](const std::string& n, const ModelOptions& o) { return make_efficientnet(n, v, o); }});
    }
    for (int depth : {121, 169, 201})
      e.push_back({torchvision_info(fmt::format("densenet{}", depth), 224, 256),
                   [depth](const std::string& n, const ModelOptions& o) { return make_densenet(n, depth, o); }});
    // torchvision's inception weights expect transform_input=True, which maps ImageNet-
    // normalized input to (x - 0.5) / 0.5: that is the "tf" preset (models/inception.h).
    e.push_back({{"inception_v3", "classification", "torchvision", 299, 342, "bilinear", "tf"}, make_inception_v3});
    e.push_back({{"xception", "classification", "keras", 299, 299, "bilinear", "tf"}, make_xception});
    e.push_back({{"unet", "segmentation", "milesial", 256, 256, "bilinear", "unit"}, make_unet});
    return e;
  }();
  return entries;
}

// Levenshtein distance, ignoring case.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      const size_t next = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = row[j];
      row[j] = next;
    }
  }
  return row[b.size()];
}

const Entry& find(const std::string& name) {
  const std::string canonical = canonical_model_name(name);
  for (const Entry& e : registry())
    if (e.info.name == canonical) return e;
  fail("model registry: no entry for '{}'", canonical);  // unreachable: canonical_model_name checked it
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& keras_model_aliases() {
  static const std::vector<std::pair<std::string, std::string>> aliases = [] {
    std::vector<std::pair<std::string, std::string>> a = {
        {"VGG16", "vgg16"}, {"VGG19", "vgg19"}, {"MobileNet", "mobilenet_v1"}, {"MobileNetV2", "mobilenet_v2"},
        {"DenseNet121", "densenet121"}, {"DenseNet169", "densenet169"}, {"DenseNet201", "densenet201"},
        {"InceptionV3", "inception_v3"}, {"Xception", "xception"},
    };
    for (int depth : {50, 101, 152}) a.push_back({fmt::format("ResNet{}V2", depth), fmt::format("resnet{}_v2", depth)});
    for (int v = 0; v < 8; ++v) a.push_back({fmt::format("EfficientNetB{}", v), fmt::format("efficientnet_b{}", v)});
    return a;
  }();
  return aliases;
}

std::string canonical_model_name(const std::string& name) {
  for (const Entry& e : registry())
    if (e.info.name == name) return name;
  for (const auto& [alias, canonical] : keras_model_aliases())
    if (alias == name) return canonical;
  // The closest name or alias by edit distance (the first of equals, in registry order).
  std::string closest;
  size_t best = std::numeric_limits<size_t>::max();
  auto consider = [&](const std::string& candidate) {
    const size_t d = edit_distance(name, candidate);
    if (d < best) best = d, closest = candidate;
  };
  for (const Entry& e : registry()) consider(e.info.name);
  for (const auto& [alias, canonical] : keras_model_aliases()) consider(alias);
  fail("unknown model '{}'; did you mean '{}'? known models: {} (and Keras application names such as "
       "DenseNet201)", name, closest, fmt::join(model_names(), ", "));
}

void check_options(const std::string& name, const ModelOptions& o, std::initializer_list<std::string_view> allowed) {
  SCALPEL_CHECK(o.classes >= 1, "{}: classes must be at least 1, got {}", name, o.classes);
  SCALPEL_CHECK(o.in_channels >= 1, "{}: in_channels must be at least 1, got {}", name, o.in_channels);
  const std::pair<std::string_view, bool> given[] = {
      {"width", o.width.has_value()},           {"activation", o.activation.has_value()},
      {"padding", o.padding.has_value()},       {"base_width", o.base_width.has_value()},
      {"bilinear", o.bilinear.has_value()},     {"dropout", o.dropout.has_value()},
      {"drop_path", o.drop_path.has_value()},   {"aux_logits", o.aux_logits.has_value()},
      {"stem", o.stem.has_value()},
  };
  for (const auto& [option, set] : given) {
    if (!set) continue;
    bool ok = false;
    for (std::string_view a : allowed) ok |= a == option;
    SCALPEL_CHECK(ok, "{} does not take the option '{}'{}", name, option,
                  allowed.size() ? fmt::format(" (it takes: {})", fmt::join(allowed, ", ")) : "");
  }
  SCALPEL_CHECK(!o.dropout || (*o.dropout >= 0 && *o.dropout < 1), "{}: dropout must be in [0, 1), got {:g}", name,
                *o.dropout);
  SCALPEL_CHECK(!o.drop_path || (*o.drop_path >= 0 && *o.drop_path < 1), "{}: drop_path must be in [0, 1), got {:g}",
                name, *o.drop_path);
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const Entry& e : registry()) names.push_back(e.info.name);
  return names;
}

ModelInfo model_info(const std::string& name, const ModelOptions& options) {
  ModelInfo info = find(name).info;
  if (info.name == "mobilenet_v1" && options.padding.value_or("keras") == "torch") {
    // The PyTorch port: resize 256, centre crop 224, ImageNet mean/std.
    info.layout = "pytorch";
    info.resize_size = 256;
    info.preprocess = "imagenet";
  }
  return info;
}

std::shared_ptr<Model> create_model(const std::string& name, const ModelOptions& options) {
  const Entry& e = find(name);
  return e.build(e.info.name, options);
}

const std::vector<ModelListing>& list_models() {
  static const std::vector<ModelListing> listing = [] {
    std::vector<ModelListing> out;
    nn::SkipInitGuard counting_only;
    for (const Entry& e : registry()) {
      auto model = e.build(e.info.name, {});
      out.push_back({e.info, model->count_parameters(true), model->count_buffers()});
    }
    return out;
  }();
  return listing;
}

}  // namespace scalpel::models
