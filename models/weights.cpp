#include "models/weights.h"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string_view>

#include "layers/modules.h"
#include "models/registry.h"
#include "tensor/error.h"

namespace scalpel::models {

WeightsMap parse_weights_map(const std::string& text) {
  if (text == "names") return WeightsMap::names;
  if (text == "order") return WeightsMap::order;
  fail("--weights-map: unknown value '{}' (expected names or order)", text);
}

namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool is_batch_counter(const std::string& name) {
  constexpr std::string_view kCounter = "num_batches_tracked";
  return name.size() >= kCounter.size() && name.compare(name.size() - kCounter.size(), kCounter.size(), kCounter) == 0;
}

// An integer scalar of a file (num_batches_tracked under any name): skipped by --weights-map order.
bool is_file_counter(const Tensor& t) { return !is_floating(t.dtype()) && t.numel() == 1; }

// "a, b, c, ... (12 more)"
std::string list_some(const std::vector<std::string>& items, size_t shown = 8) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < shown; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > shown) out += fmt::format(", ... ({} more)", items.size() - shown);
  return out;
}

// One rule of the timm table: timm sub-module -> ours, matched on a whole dotted prefix.
struct Rule {
  std::string_view from, to;
};

// Replaces the longest rule prefix of `rest` ("conv_dw.weight" -> "0.0.weight"); false when no
// rule matches.
bool apply_rules(const std::vector<Rule>& rules, std::string_view rest, std::string& out) {
  const Rule* best = nullptr;
  for (const Rule& r : rules)
    if (starts_with(rest, r.from) && rest.size() > r.from.size() && rest[r.from.size()] == '.' &&
        (!best || r.from.size() > best->from.size()))
      best = &r;
  if (!best) return false;
  out = std::string(best->to) + std::string(rest.substr(best->from.size()));
  return true;
}

// "blocks.3.5.conv_dw.weight" -> (3, 5, "conv_dw.weight"); false for other names.
bool split_block(const std::string& name, int64_t& stage, int64_t& index, std::string& rest) {
  if (!starts_with(name, "blocks.")) return false;
  size_t a = name.find('.', 7);
  if (a == std::string::npos) return false;
  size_t b = name.find('.', a + 1);
  if (b == std::string::npos) return false;
  try {
    stage = std::stoll(name.substr(7, a - 7));
    index = std::stoll(name.substr(a + 1, b - a - 1));
  } catch (const std::exception&) {
    return false;
  }
  rest = name.substr(b + 1);
  return stage >= 0 && index >= 0;
}

std::string rename_timm_efficientnet(const std::string& name) {
  // torchvision's EfficientNet: features.0 stem, features.1..7 stages, features.8 head conv.
  static const std::vector<Rule> top = {{"conv_stem", "features.0.0"}, {"bn1", "features.0.1"},
                                        {"conv_head", "features.8.0"}, {"bn2", "features.8.1"},
                                        {"classifier", "classifier.1"}};
  static const std::vector<Rule> depthwise_separable = {{"conv_dw", "0.0"},        {"bn1", "0.1"},
                                                        {"se.conv_reduce", "1.fc1"}, {"se.conv_expand", "1.fc2"},
                                                        {"conv_pw", "2.0"},        {"bn2", "2.1"}};
  static const std::vector<Rule> inverted_residual = {
      {"conv_pw", "0.0"},         {"bn1", "0.1"},           {"conv_dw", "1.0"},  {"bn2", "1.1"},
      {"se.conv_reduce", "2.fc1"}, {"se.conv_expand", "2.fc2"}, {"conv_pwl", "3.0"}, {"bn3", "3.1"}};
  int64_t stage = 0, index = 0;
  std::string rest, out;
  if (split_block(name, stage, index, rest)) {
    if (apply_rules(stage == 0 ? depthwise_separable : inverted_residual, rest, out))
      return fmt::format("features.{}.{}.block.{}", stage + 1, index, out);
    return "";
  }
  return apply_rules(top, name, out) ? out : "";
}

std::string rename_timm_mobilenet_v1(const std::string& name) {
  static const std::vector<Rule> top = {{"conv_stem", "stage1.0.0"}, {"bn1", "stage1.0.1"}, {"classifier", "fc"}};
  static const std::vector<Rule> block = {{"conv_dw", "0"}, {"bn1", "1"}, {"conv_pw", "3"}, {"bn2", "4"}};
  // timm's stages hold 1, 2, 2, 6, 2 blocks; ours (the PyTorch port's) 5 (+ stem), 6, 2.
  static constexpr std::array<int64_t, 5> kStageStart = {0, 1, 3, 5, 11};
  static constexpr std::array<int64_t, 5> kStageBlocks = {1, 2, 2, 6, 2};
  int64_t stage = 0, index = 0;
  std::string rest, out;
  if (split_block(name, stage, index, rest)) {
    if (stage >= 5 || index >= kStageBlocks[stage] || !apply_rules(block, rest, out)) return "";
    const int64_t k = kStageStart[stage] + index;
    if (k < 5) return fmt::format("stage1.{}.{}", k + 1, out);
    if (k < 11) return fmt::format("stage2.{}.{}", k - 5, out);
    return fmt::format("stage3.{}.{}", k - 11, out);
  }
  return apply_rules(top, name, out) ? out : "";
}

bool has_timm_names(const NamedTensors& tensors) {
  return std::any_of(tensors.begin(), tensors.end(), [](const auto& t) { return t.first == "conv_stem.weight"; });
}

// File tensors paired with model entries by position (see WeightsMap::order).
NamedTensors pair_by_order(const Model& model, const NamedTensors& tensors, const std::string& source) {
  std::vector<std::string> targets;
  for (const auto& nt : model.state_dict())
    if (!is_batch_counter(nt.name)) targets.push_back(nt.name);
  NamedTensors inputs;
  for (const auto& [name, t] : tensors)
    if (!is_file_counter(t)) inputs.push_back({name, t});
  SCALPEL_CHECK(inputs.size() == targets.size(),
                "--weights-map order: {} holds {} tensors but {} has {} parameters and buffers (without "
                "num_batches_tracked); the networks differ",
                source, inputs.size(), model.name(), targets.size());
  NamedTensors out;
  for (size_t i = 0; i < inputs.size(); ++i) out.push_back({targets[i], inputs[i].second});
  return out;
}

// The widths a width-multiplied family is published in (Keras' MobileNet V1 alphas).
std::vector<double> published_widths(const std::string& model_name) {
  if (model_name == "mobilenet_v1") return {0.25, 0.5, 0.75, 1.0};
  return {};
}

// The published width of `model`'s family whose shapes all agree with the file's (the head
// aside: --classes is a separate question), or nullopt. A legacy state dict carries no options,
// so a wrong --width makes every layer mismatch; this finds the one that fits.
std::optional<double> fitting_width(const Model& model, const std::map<std::string, Tensor>& given,
                                    const std::set<std::string>& head) {
  for (double width : published_widths(model.name())) {
    if (model.options().width.value_or(1.0) == width) continue;
    ModelOptions options = model.options();
    options.width = width;
    std::shared_ptr<Model> candidate;
    {
      nn::SkipInitGuard skip_init;
      candidate = create_model(model.name(), options);
    }
    bool fits = true;
    for (const auto& nt : candidate->state_dict()) {
      if (head.count(nt.name) || is_batch_counter(nt.name)) continue;
      const auto it = given.find(nt.name);
      if (it == given.end() || it->second.shape() != nt.tensor.shape()) {
        fits = false;
        break;
      }
    }
    if (fits) return width;
  }
  return std::nullopt;
}

// BatchNorm running variances are >= 0 (PyTorch turns a negative one into NaN logits, we would
// silently give finite ones): a corrupt or hand-edited file, refused naming the tensor.
void check_running_variances(const std::vector<nn::NamedTensor>& state, const std::string& source) {
  constexpr std::string_view kSuffix = "running_var";
  for (const auto& [name, t] : state) {
    if (name.size() < kSuffix.size() || name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
      continue;
    const std::vector<double> v = t.to_vector();
    const auto negative = std::find_if(v.begin(), v.end(), [](double x) { return x < 0; });
    SCALPEL_CHECK(negative == v.end(), "{}: {} holds a negative variance ({:g} at index {}); BatchNorm running "
                  "variances are >= 0 (corrupt file?)", source, name, *negative, negative - v.begin());
  }
}

// torchvision's DenseNet checkpoints (densenet121-a639ec97.pth, ...) predate the layer names
// norm1/conv1/...: "denselayer1.norm.1.weight" is "denselayer1.norm1.weight". torchvision's
// loader renames them with the regex ^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.
// (?:weight|bias|running_mean|running_var))$; this does the same (an empty string: no match).
std::string rename_old_densenet(const std::string& name) {
  static const std::regex pattern(R"(^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$)");
  std::smatch m;
  return std::regex_match(name, m, pattern) ? m[1].str() + m[2].str() : "";
}

}  // namespace

NamedTensors rename_timm(const std::string& model_name, const NamedTensors& tensors, const std::string& source) {
  const bool efficientnet = starts_with(model_name, "efficientnet_b");
  SCALPEL_CHECK(efficientnet || model_name == "mobilenet_v1",
                "{} holds timm names (conv_stem, blocks.*), which are mapped only for efficientnet_b0..b7 and "
                "mobilenet_v1, not {} (try --weights-map order)",
                source, model_name);
  NamedTensors out;
  for (const auto& [name, t] : tensors) {
    const std::string ours = efficientnet ? rename_timm_efficientnet(name) : rename_timm_mobilenet_v1(name);
    SCALPEL_CHECK(!ours.empty(), "{}: timm tensor '{}' has no counterpart in {} (see models/weights.h)", source, name,
                  model_name);
    out.push_back({ours, t});
  }
  return out;
}

LoadResult load_weights(Model& model, const NamedTensors& tensors, const std::string& source, WeightsMap map) {
  LoadResult result;
  NamedTensors named;
  if (map == WeightsMap::order) {
    result.naming = "order";
    named = pair_by_order(model, tensors, source);
  } else if (has_timm_names(tensors)) {
    result.naming = "timm";
    named = rename_timm(model.name(), tensors, source);
  } else {
    result.naming = "torchvision";
    named = tensors;
    if (starts_with(model.name(), "densenet"))
      for (auto& [name, t] : named)
        if (const std::string renamed = rename_old_densenet(name); !renamed.empty()) name = renamed;
  }
  if (result.naming != "torchvision") {
    size_t i = 0;
    for (const auto& [name, t] : tensors) {
      if (map == WeightsMap::order && is_file_counter(t)) continue;
      result.mapping.push_back({name, named[i++].first});
    }
  }

  // Check everything before anything is written.
  std::map<std::string, Tensor> given;
  for (const auto& [name, t] : named)
    SCALPEL_CHECK(given.emplace(name, t).second, "{}: two tensors map to '{}'", source, name);
  std::vector<std::string> missing, unexpected, mismatched;
  std::map<std::string, Tensor> ours;
  for (const auto& nt : model.state_dict()) {
    ours[nt.name] = nt.tensor;
    auto it = given.find(nt.name);
    if (it == given.end()) {
      if (!is_batch_counter(nt.name)) missing.push_back(nt.name);
    } else if (it->second.shape() != nt.tensor.shape()) {
      mismatched.push_back(fmt::format("{}: model {}, file {}", nt.name, shape_str(nt.tensor.shape()),
                                       shape_str(it->second.shape())));
    }
  }
  for (const auto& [name, t] : named)
    if (!ours.count(name)) unexpected.push_back(name);

  // Transfer learning: only the head differs (other classes) or is absent (a headless file).
  const std::vector<std::string> head = model.head_parameter_names();
  const std::set<std::string> head_set(head.begin(), head.end());
  auto in_head = [&](const std::string& entry) { return head_set.count(entry.substr(0, entry.find(':'))) > 0; };
  const bool head_only = unexpected.empty() && !(missing.empty() && mismatched.empty()) &&
                         std::all_of(missing.begin(), missing.end(), in_head) &&
                         std::all_of(mismatched.begin(), mismatched.end(), in_head);
  // Every layer's shape differs while every name matches: the same network at another width
  // (a legacy file loaded with the wrong --width), said in one line instead of a wall of shapes.
  const size_t layers = std::count_if(named.begin(), named.end(), [](const auto& nt) { return nt.second.dim() >= 2; });
  const size_t layers_mismatched = std::count_if(named.begin(), named.end(), [&](const auto& nt) {
    return nt.second.dim() >= 2 && ours.count(nt.first) && ours.at(nt.first).shape() != nt.second.shape();
  });
  if (missing.empty() && unexpected.empty() && layers > 1 && layers_mismatched == layers) {
    const std::optional<double> width = fitting_width(model, given, head_set);
    const std::string current = model.options().width ? fmt::format(" --width {:g}", *model.options().width) : "";
    if (width)
      fail("{} does not fit {}{}: the shapes of all {} layers differ; it fits --width {:g}", source, model.name(),
           current, layers, *width);
    fail("{} does not fit {}{}: the shapes of all {} layers differ (e.g. {}){}", source, model.name(), current,
         layers, mismatched.front(),
         published_widths(model.name()).empty() ? std::string(" (is --model right?)")
                                                : std::string("; no published --width fits either"));
  }
  if (!head_only && !(missing.empty() && unexpected.empty() && mismatched.empty())) {
    std::string message = fmt::format("{} does not fit {} (--classes {}):", source, model.name(), model.options().classes);
    if (!missing.empty()) message += fmt::format(" {} missing key(s): {};", missing.size(), list_some(missing));
    if (!unexpected.empty())
      message += fmt::format(" {} unexpected key(s): {};", unexpected.size(), list_some(unexpected));
    if (!mismatched.empty())
      message += fmt::format(" {} shape mismatch(es): {};", mismatched.size(), list_some(mismatched));
    if (unexpected.size() == named.size())
      message += " no name matches: is --model right? (--weights-map order matches tensors by position);";
    message.pop_back();
    throw Error(message);
  }

  std::vector<nn::NamedTensor> state;
  for (const auto& [name, t] : named)
    if (!head_only || !head_set.count(name)) state.push_back({name, t});
  if (head_only) {
    SCALPEL_CHECK(!nn::init_skipped(), "load_weights: called under SkipInitGuard, the new head of {} would stay "
                                       "uninitialized", model.name());
    result.head_replaced = true;
    for (const std::string& head_name : model.head_names()) {
      const std::string weight = head_name + ".weight", bias = head_name + ".bias";
      if (head_name == model.head_name() && given.count(weight)) result.file_classes = given.at(weight).shape().at(0);
      // A fresh nn.Linear / nn.Conv2d of the head's shape, as a PyTorch user replacing the head gets.
      Tensor w = Tensor::empty(ours.at(weight).shape()), b;
      if (ours.count(bias)) b = Tensor::empty(ours.at(bias).shape());
      nn::reset_default_parameters(w, b);
      state.push_back({weight, w});
      if (b.defined()) state.push_back({bias, b});
    }
  }
  check_running_variances(state, source);
  model.load_state_dict(state, /*strict=*/true);
  return result;
}

}  // namespace scalpel::models
