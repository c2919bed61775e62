#include "models/import/tfjs.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "models/import/keras_config.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/io/element_convert.h"

namespace scalpel::models {

namespace {

namespace fs = std::filesystem;

struct StoredWeight {
  Tensor value;
  bool used = false;
};

// A shard path from the manifest, relative to model.json's folder; absolute paths and ".."
// would read files outside the model's folder.
std::string shard_path(const fs::path& folder, const std::string& name, const std::string& what) {
  const fs::path p(name);
  SCALPEL_CHECK(!name.empty() && p.is_relative(), "{}: weight shard path '{}' must be relative to model.json", what,
                name);
  for (const fs::path& part : p) {
    SCALPEL_CHECK(part != "..", "{}: weight shard path '{}' leaves the model's folder", what, name);
  }
  return (folder / p).string();
}

// One group's shards, concatenated; `files[i]` ends at `ends[i]` bytes.
struct Group {
  std::string bytes;
  std::vector<std::string> files;
  std::vector<size_t> ends;

  // The shard holding byte `offset` (the last one past the end).
  const std::string& file_at(size_t offset) const {
    for (size_t i = 0; i < ends.size(); ++i)
      if (offset < ends[i]) return files[i];
    return files.back();
  }
};

// Bytes per stored element and the decoder of one weight.
struct Encoding {
  std::string dtype;  // "float32", "float16", "uint8", "uint16"
  size_t bytes = 4;
  double scale = 1;
  double min = 0;
};

Encoding encoding_of(const Json& w, const std::string& what, const std::string& name) {
  const std::string dtype = w.contains("dtype") ? w.at("dtype").as_string() : "float32";
  SCALPEL_CHECK(dtype == "float32", "{}: weight '{}' has dtype {}; only float32 weights are read", what, name, dtype);
  Encoding e{"float32", 4, 1, 0};
  const Json* q = w.find("quantization");
  if (q == nullptr || q->is_null()) return e;
  e.dtype = q->at("dtype").as_string();
  if (e.dtype == "float16") {
    e.bytes = 2;
  } else if (e.dtype == "uint8" || e.dtype == "uint16") {
    e.bytes = e.dtype == "uint8" ? 1 : 2;
    e.scale = q->at("scale").as_number();
    e.min = q->at("min").as_number();
  } else {
    fail("{}: weight '{}' is quantized as {}; float16, uint8 and uint16 are read", what, name, e.dtype);
  }
  return e;
}

Tensor decode(std::string_view raw, const Encoding& e, const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  float* out = t.data<float>();
  const size_t n = static_cast<size_t>(t.numel());
  for (size_t i = 0; i < n; ++i) {
    const char* p = raw.data() + i * e.bytes;
    if (e.dtype == "float32") {
      out[i] = io_detail::load_unaligned<float>(p);
    } else if (e.dtype == "float16") {
      out[i] = io_detail::half_to_float(io_detail::load_unaligned<uint16_t>(p));
    } else {
      const double q = e.dtype == "uint8" ? static_cast<unsigned char>(*p) : io_detail::load_unaligned<uint16_t>(p);
      out[i] = static_cast<float>(q * e.scale + e.min);
    }
  }
  return t;
}

// Every weight of the manifest by name, read from the shards.
std::map<std::string, StoredWeight> read_manifest(const Json& manifest, const fs::path& folder,
                                                  const std::string& what) {
  std::map<std::string, StoredWeight> out;
  SCALPEL_CHECK(manifest.is_array(), "{}: weightsManifest is not a list", what);
  for (const Json& g : manifest.as_array()) {
    Group group;
    const Json& weights = g.at("weights");
    const std::string first = weights.size() > 0 ? weights[0].at("name").as_string() : "";
    for (const Json& p : g.at("paths").as_array()) {
      const std::string file = shard_path(folder, p.as_string(), what);
      std::string bytes;
      try {
        bytes = read_file(file);
      } catch (const Error& e) {
        fail("{}: weight shard of '{}' missing: {}", what, first, e.what());
      }
      group.bytes += bytes;
      group.files.push_back(file);
      group.ends.push_back(group.bytes.size());
    }
    SCALPEL_CHECK(!group.files.empty() || weights.size() == 0, "{}: a manifest group lists weights but no shard",
                  what);
    size_t offset = 0;
    for (const Json& w : weights.as_array()) {
      const std::string name = w.at("name").as_string();
      const Encoding e = encoding_of(w, what, name);
      Shape shape;
      uint64_t count = 1;
      for (const Json& d : w.at("shape").as_array()) {
        const int64_t n = d.as_int();
        SCALPEL_CHECK(n >= 0 && n <= std::numeric_limits<int32_t>::max(), "{}: weight '{}' has a bad dimension {}",
                      what, name, n);
        shape.push_back(n);
        SCALPEL_CHECK(n == 0 || count <= std::numeric_limits<uint64_t>::max() / 8 / static_cast<uint64_t>(n),
                      "{}: weight '{}' is too large", what, name);
        count *= static_cast<uint64_t>(n);
      }
      const uint64_t size = count * e.bytes;
      if (size > group.bytes.size() - offset) {
        fail("{}: {} is truncated: weight '{}' needs {} bytes at offset {}, the shards hold {} in all", what,
             group.file_at(offset), name, size, offset, group.bytes.size());
      }
      Tensor t = decode(std::string_view(group.bytes).substr(offset, size), e, shape);
      const float* v = t.data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) {
        SCALPEL_CHECK(std::isfinite(v[i]), "{}: weight '{}' holds {} at element {}", what, name, v[i], i);
      }
      offset += size;
      SCALPEL_CHECK(out.emplace(name, StoredWeight{t}).second, "{}: weight '{}' is listed twice", what, name);
    }
    SCALPEL_CHECK(offset == group.bytes.size(), "{}: {} holds {} bytes, its weights take {} (size mismatch)", what,
                  group.files.empty() ? std::string("the shard group") : group.files.back(), group.bytes.size(),
                  offset);
  }
  return out;
}

// The manifest name of a Keras weight: "<layer>/<param>", or "<model layer>/<layer>/<param>"
// for a nested model's layer; ":0" suffixes (TF variable names) are accepted.
StoredWeight* find_weight(std::map<std::string, StoredWeight>& stored, const KerasWeight& w) {
  for (const std::string& name : {w.layer + "/" + w.param, w.top_layer + "/" + w.layer + "/" + w.param}) {
    for (const std::string& candidate : {name, name + ":0"}) {
      auto it = stored.find(candidate);
      if (it != stored.end()) return &it->second;
    }
  }
  return nullptr;
}

}  // namespace

namespace {

ImportedGraph read_tfjs(const std::string& model_json) {
  const Json j = Json::parse(read_file(model_json), model_json);
  SCALPEL_CHECK(j.is_object() && j.contains("modelTopology"), "{}: no modelTopology: not a TF.js model", model_json);
  if (const Json* format = j.find("format"); format && format->is_string()) {
    SCALPEL_CHECK(format->as_string() == "layers-model",
                  "{}: a TF.js {}; scalpel reads TF.js layers models (the Keras topology)", model_json,
                  format->as_string());
  }
  const Json* manifest = j.find("weightsManifest");
  SCALPEL_CHECK(manifest != nullptr, "{}: no weightsManifest", model_json);

  const KerasGraph g = keras_graph_from_config(j.at("modelTopology"), {"tfjs", model_json});
  std::map<std::string, StoredWeight> stored =
      read_manifest(*manifest, fs::path(model_json).parent_path(), model_json);
  std::vector<Tensor> tensors;
  for (const KerasWeight& w : g.weights) {
    StoredWeight* s = find_weight(stored, w);
    SCALPEL_CHECK(s != nullptr, "{}: layer '{}' needs weight '{}/{}', the manifest has none", model_json, w.layer,
                  w.layer, w.param);
    SCALPEL_CHECK(!s->used, "{}: weight '{}/{}' is claimed twice", model_json, w.layer, w.param);
    s->used = true;
    tensors.push_back(s->value);
  }
  for (const auto& [name, s] : stored) {
    SCALPEL_CHECK(s.used, "{}: weight '{}' of the manifest belongs to no layer of the model", model_json, name);
  }
  ImportedGraph out;
  out.weights = keras_weights_to_graph(g, tensors, model_json);
  out.spec = g.spec;
  return out;
}

}  // namespace

ImportedGraph read_tfjs_model(const std::string& model_json) {
  try {
    return read_tfjs(model_json);
  } catch (const Error& e) {
    // A member of the wrong JSON type, deep in the manifest: name the file all the same.
    const std::string what = e.what();
    if (what.find(model_json) != std::string::npos) throw;
    fail("{}: {}", model_json, what);
  }
}

}  // namespace scalpel::models
