#include "models/checkpoint.h"

#include <bit>
#include <cmath>

#include "models/graph.h"
#include "tensor/error.h"
#include "tensor/io/mapped_file.h"
#include "tensor/io/safetensors.h"

namespace scalpel::models {

namespace {

constexpr const char* kFormat = "scalpel";
constexpr const char* kFormatVersion = "1";
constexpr const char* kGraphModel = "graph";
constexpr std::string_view kOptimizerPrefix = "training/optimizer/";

// uint64 values (RNG state) do not fit a JSON double: exact hex strings instead.
std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }
uint64_t from_hex64(const Json& j, const std::string& source) {
  const std::string& s = j.as_string();
  SCALPEL_CHECK(s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos,
                "{}: bad RNG state '{}' in the checkpoint metadata", source, s);
  return std::stoull(s, nullptr, 16);
}

Json training_to_json(const TrainingState& t) {
  Json j = Json::object();
  j["step"] = t.step;
  j["epoch"] = t.epoch;
  j["optimizer"] = t.optimizer;
  j["scheduler"] = t.scheduler;
  Json rng = Json::object();
  rng["state"] = hex64(t.rng.state);
  rng["inc"] = hex64(t.rng.inc);
  rng["has_spare"] = t.rng.has_spare;
  rng["spare"] = hex64(std::bit_cast<uint64_t>(t.rng.spare));
  j["rng"] = rng;
  j["extra"] = t.extra;
  return j;
}

TrainingState training_from_json(const Json& j, const std::string& source) {
  TrainingState t;
  t.step = j.at("step").as_int();
  t.epoch = j.at("epoch").as_int();
  t.optimizer = j.at("optimizer").as_string();
  t.scheduler = j.at("scheduler").as_string();
  const Json& rng = j.at("rng");
  t.rng.state = from_hex64(rng.at("state"), source);
  t.rng.inc = from_hex64(rng.at("inc"), source);
  t.rng.has_spare = rng.at("has_spare").as_bool();
  t.rng.spare = std::bit_cast<double>(from_hex64(rng.at("spare"), source));
  t.extra = j.at("extra");
  return t;
}

// NaN/Inf refused as load_weights_file does; float64 entries (optimizer lrs) are kept as they
// are, so that resuming is exact.
void check_finite(const NamedTensors& tensors, const std::string& path) {
  for (const auto& [name, t] : tensors) {
    if (!is_floating(t.dtype())) continue;
    const std::vector<double> values = t.to_vector();
    for (size_t i = 0; i < values.size(); ++i)
      SCALPEL_CHECK(std::isfinite(values[i]), "{}: tensor '{}' holds {} at element {}", path, name, values[i], i);
  }
}

const std::string* lookup(const StringMap& map, std::string_view key) {
  for (const auto& [k, v] : map)
    if (k == key) return &v;
  return nullptr;
}

}  // namespace

Json options_to_json(const ModelOptions& o) {
  Json j = Json::object();
  j["classes"] = o.classes;
  j["in_channels"] = o.in_channels;
  j["headless"] = o.headless;
  if (o.width) j["width"] = *o.width;
  if (o.activation) j["activation"] = *o.activation;
  if (o.padding) j["padding"] = *o.padding;
  if (o.base_width) j["base_width"] = *o.base_width;
  if (o.bilinear) j["bilinear"] = *o.bilinear;
  if (o.aux_logits) j["aux_logits"] = *o.aux_logits;
  if (o.dropout) j["dropout"] = *o.dropout;
  if (o.drop_path) j["drop_path"] = *o.drop_path;
  if (o.stem) j["stem"] = *o.stem;
  return j;
}

ModelOptions options_from_json(const Json& j) {
  ModelOptions o;
  for (const auto& [key, v] : j.as_object()) {
    if (key == "classes") o.classes = v.as_int();
    else if (key == "in_channels") o.in_channels = v.as_int();
    else if (key == "headless") o.headless = v.as_bool();
    else if (key == "width") o.width = v.as_number();
    else if (key == "activation") o.activation = v.as_string();
    else if (key == "padding") o.padding = v.as_string();
    else if (key == "base_width") o.base_width = v.as_int();
    else if (key == "bilinear") o.bilinear = v.as_bool();
    else if (key == "aux_logits") o.aux_logits = v.as_bool();
    else if (key == "dropout") o.dropout = v.as_number();
    else if (key == "drop_path") o.drop_path = v.as_number();
    else if (key == "stem") o.stem = v.as_string();
    else fail("model options: unknown option '{}'", key);
  }
  return o;
}

void save_checkpoint(const std::string& path, const Model& model, const CheckpointInfo& info,
                     const TrainingState* training) {
  NamedTensors tensors;
  for (const auto& nt : model.state_dict()) tensors.push_back({nt.name, nt.tensor});
  const auto* graph = dynamic_cast<const GraphModel*>(&model);
  StringMap meta = {{"format", kFormat},
                    {"format_version", kFormatVersion},
                    {"model", graph ? std::string(kGraphModel) : info.model},
                    {"options", options_to_json(info.options).dump()}};
  if (graph) meta.push_back({"graph", graph->spec().to_json().dump()});
  Json classes = Json::array();
  for (const auto& c : info.class_names) classes.push_back(c);
  meta.push_back({"classes", classes.dump()});
  meta.push_back({"preprocess", info.preprocess.dump()});
  if (training) {
    for (const auto& nt : training->optimizer_state)
      tensors.push_back({std::string(kOptimizerPrefix) + nt.name, nt.tensor});
    meta.push_back({"training", training_to_json(*training).dump()});
  }
  save_safetensors(path, tensors, meta);
}

std::optional<Checkpoint> read_checkpoint(const std::string& path) {
  const MappedFile file(path);
  if (sniff_weights_format(file.bytes().substr(0, 16), path) != WeightsFormat::Safetensors) return std::nullopt;
  SafetensorsContents contents = parse_safetensors(file.bytes(), path);
  const StringMap& meta = contents.metadata;
  const std::string* format = lookup(meta, "format");
  if (!format || *format != kFormat) return std::nullopt;
  const std::string* version = lookup(meta, "format_version");
  SCALPEL_CHECK(version && *version == kFormatVersion,
                "{}: scalpel checkpoint format_version '{}' is not supported (this build reads {})", path,
                version ? *version : "", kFormatVersion);
  auto field = [&](const char* key) -> Json {
    const std::string* text = lookup(meta, key);
    SCALPEL_CHECK(text, "{}: scalpel checkpoint without '{}' metadata", path, key);
    return Json::parse(*text, path + " metadata '" + key + "'");
  };

  Checkpoint ck;
  const std::string* model = lookup(meta, "model");
  SCALPEL_CHECK(model && !model->empty(), "{}: scalpel checkpoint without 'model' metadata", path);
  ck.info.model = *model;
  ck.info.options = options_from_json(field("options"));
  const Json classes = field("classes");
  for (const Json& c : classes.as_array()) ck.info.class_names.push_back(c.as_string());
  ck.info.preprocess = field("preprocess");
  if (ck.info.model == kGraphModel) {
    ck.info.graph = field("graph");
    GraphSpec::from_json(ck.info.graph, path);  // malformed: refused here, naming the file
  }
  if (lookup(meta, "training")) ck.training = training_from_json(field("training"), path);

  check_finite(contents.tensors, path);
  for (auto& [name, t] : contents.tensors) {
    if (name.compare(0, kOptimizerPrefix.size(), kOptimizerPrefix) == 0) {
      SCALPEL_CHECK(ck.training, "{}: optimizer entry '{}' without 'training' metadata", path, name);
      ck.training->optimizer_state.push_back({name.substr(kOptimizerPrefix.size()), t});
    } else {
      ck.model.push_back({name, t});
    }
  }
  return ck;
}

}  // namespace scalpel::models
