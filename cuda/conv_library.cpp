#include "cuda/conv_library.h"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>

#include "cuda/cudnn.h"
#include "tensor/error.h"

namespace scalpel::cuda {

namespace {

std::atomic<ConvLibrary> g_engine{ConvLibrary::Handwritten};

// Overrides keyed by the weight's TensorImpl through weak pointers compared by owner: an entry
// can never match a later tensor that happens to reuse a destroyed weight's address.
struct LayerOverrides {
  std::mutex mutex;
  std::map<std::weak_ptr<TensorImpl>, ConvLibrary, std::owner_less<>> engines;
};
LayerOverrides& overrides() {
  static LayerOverrides o;
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

const char* conv_library_name(ConvLibrary engine) {
  return engine == ConvLibrary::Cudnn ? "cudnn" : "handwritten";
}

ConvLibrary parse_conv_library(std::string_view text) {
  if (text == "handwritten") return ConvLibrary::Handwritten;
  if (text == "cudnn") return ConvLibrary::Cudnn;
  fail("unknown convolution engine '{}': use handwritten or cudnn", text);
}

bool ConvLibrarySpec::uses(ConvLibrary engine) const {
  if (global == engine) return true;
  for (const auto& [name, e] : layers)
    if (e == engine) return true;
  return false;
}

ConvLibrarySpec parse_conv_library_spec(std::string_view text) {
  ConvLibrarySpec spec;
  bool first = true;
  while (true) {
    const size_t comma = text.find(',');
    const std::string_view item = trim(text.substr(0, comma));
    SCALPEL_CHECK(!item.empty(), "--conv-engine: empty entry in '{}'; expected ENGINE[,MODULE=ENGINE...]", text);
    const size_t eq = item.find('=');
    if (first) {
      SCALPEL_CHECK(eq == std::string_view::npos, "--conv-engine: '{}' must start with the global engine "
                    "(handwritten or cudnn), e.g. cudnn,{}", item, item);
      spec.global = parse_conv_library(item);
    } else {
      SCALPEL_CHECK(eq != std::string_view::npos, "--conv-engine: '{}' is not MODULE=ENGINE "
                    "(e.g. layer1.0.conv1=handwritten)", item);
      const std::string name(trim(item.substr(0, eq)));
      SCALPEL_CHECK(!name.empty(), "--conv-engine: '{}' names no module", item);
      for (const auto& [other, e] : spec.layers)
        SCALPEL_CHECK(other != name, "--conv-engine: module '{}' is given twice", name);
      spec.layers.emplace_back(name, parse_conv_library(trim(item.substr(eq + 1))));
    }
    first = false;
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return spec;
}

void set_conv_library(ConvLibrary engine) { g_engine = engine; }
ConvLibrary conv_library() { return g_engine; }

void set_layer_conv_library(const Tensor& weight, ConvLibrary engine) {
  SCALPEL_CHECK(weight.defined(), "set_layer_conv_library: the weight tensor is undefined");
  LayerOverrides& o = overrides();
  std::lock_guard lock(o.mutex);
  std::erase_if(o.engines, [](const auto& entry) { return entry.first.expired(); });
  o.engines.insert_or_assign(std::weak_ptr<TensorImpl>(weight.impl_ptr()), engine);
}

void clear_layer_conv_libraries() {
  LayerOverrides& o = overrides();
  std::lock_guard lock(o.mutex);
  o.engines.clear();
}

ConvLibrary resolve_conv_library(const Tensor& weight, Device device) {
  ConvLibrary engine = g_engine;
  {
    LayerOverrides& o = overrides();
    std::lock_guard lock(o.mutex);
    if (!o.engines.empty()) {
      const auto it = o.engines.find(weight.impl_ptr());
      if (it != o.engines.end()) engine = it->second;
    }
  }
  if (engine == ConvLibrary::Cudnn) cudnn::require(device);
  return engine;
}

}  // namespace scalpel::cuda
