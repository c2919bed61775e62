#include "models/import/import.h"

#include <fcntl.h>
#include <unistd.h>

#include <string_view>

#include "models/import/keras_h5.h"
#include "models/import/onnx.h"
#include "models/import/tflite.h"
#include "models/import/tfjs.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/io/zip.h"

namespace scalpel::models {

namespace {

// The first `n` bytes of `path` (fewer for a shorter file).
std::string file_head(const std::string& path, size_t n) {
  std::string why;
  const int fd = open_regular_file(path, why);
  SCALPEL_CHECK(fd >= 0, "cannot read {}: {}", path, why);
  std::string head(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, head.data() + got, n - got);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  head.resize(got);
  return head;
}

bool is_keras_zip(const std::string& path) {
  const std::string bytes = read_file(path);
  const ZipReader zip(bytes, path);
  return zip.find("config.json") != nullptr && zip.find("model.weights.h5") != nullptr;
}

}  // namespace

std::string graph_file_format(const std::string& path) {
  const std::string head = file_head(path, 64);
  const std::string_view h(head);
  if (h.starts_with("\x89HDF\r\n\x1a\n")) return "keras-h5";
  if (h.size() >= 8 && h.substr(4, 4) == "TFL3") return "tflite";
  if (h.starts_with("PK\x03\x04")) return is_keras_zip(path) ? "keras-zip" : "";
  const size_t first = h.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && h[first] == '{') {
    // A safetensors file starts with its 8-byte header length, so '{' first is JSON: TF.js.
    return read_file(path).find("\"modelTopology\"") != std::string::npos ? "tfjs" : "";
  }
  // safetensors (scalpel's checkpoints too): an 8-byte header length, then '{'. Its first byte
  // may well be 0x08, ONNX's first byte below.
  if (h.size() >= 9 && h[8] == '{') return "";
  // ONNX ModelProto: field 1 (ir_version, varint) comes first in every exporter's output.
  if (!h.empty() && static_cast<unsigned char>(h[0]) == 0x08) return "onnx";
  return "";
}

ImportedGraph import_graph_file(const std::string& path) {
  const std::string format = graph_file_format(path);
  SCALPEL_CHECK(!format.empty(),
                "{}: not a model file scalpel imports (Keras .h5/.keras, TF.js model.json, ONNX, TFLite)", path);
  if (format == "keras-h5") return import_keras_h5(path);
  if (format == "keras-zip") return import_keras_zip(path);
  if (format == "tfjs") return read_tfjs_model(path);
  if (format == "onnx") return import_onnx(path);
  if (format == "tflite") return import_tflite_file(path);
  fail("{}: reading {} files is not built yet", path, format);
}

std::shared_ptr<GraphModel> build_imported_model(const ImportedGraph& g, const ModelOptions& options) {
  auto model = std::make_shared<GraphModel>(g.spec, options);
  std::vector<nn::NamedTensor> state;
  state.reserve(g.weights.size());
  for (const auto& [name, tensor] : g.weights) state.push_back({name, tensor});
  model->load_state_dict(state);
  model->eval();
  return model;
}

}  // namespace scalpel::models
