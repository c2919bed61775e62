#include "models/registry.h"

#include <functional>

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
    e.push_back({{"unet", "segmentation", "milesial", 256, 256, "bilinear", "unit"}, make_unet});
    return e;
  }();
  return entries;
}

const Entry& find(const std::string& name) {
  for (const Entry& e : registry())
    if (e.info.name == name) return e;
  fail("unknown model '{}'; known models: {}", name, fmt::join(model_names(), ", "));
}

}  // namespace

void check_options(const std::string& name, const ModelOptions& o, std::initializer_list<std::string_view> allowed) {
  SCALPEL_CHECK(o.classes >= 1, "{}: classes must be at least 1, got {}", name, o.classes);
  SCALPEL_CHECK(o.in_channels >= 1, "{}: in_channels must be at least 1, got {}", name, o.in_channels);
  const std::pair<std::string_view, bool> given[] = {
      {"width", o.width.has_value()},           {"activation", o.activation.has_value()},
      {"padding", o.padding.has_value()},       {"base_width", o.base_width.has_value()},
      {"bilinear", o.bilinear.has_value()},     {"dropout", o.dropout.has_value()},
      {"drop_path", o.drop_path.has_value()},   {"stem", o.stem.has_value()},
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
  if (name == "mobilenet_v1" && options.padding.value_or("keras") == "torch") {
    // The PyTorch port: resize 256, centre crop 224, ImageNet mean/std.
    info.layout = "pytorch";
    info.resize_size = 256;
    info.preprocess = "imagenet";
  }
  return info;
}

std::shared_ptr<Model> create_model(const std::string& name, const ModelOptions& options) {
  return find(name).build(name, options);
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
