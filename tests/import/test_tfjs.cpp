// The TF.js layers container (models/import/tfjs.h) on model.json files written here:
//  - float32, float16 and uint8/uint16-quantized weights (value = q * scale + min) decode
//    exactly, read from a group split over two shards mid-weight
//  - import_graph_file recognizes model.json by content and reads it
//  - bad input is one Error naming the file and the weight: truncated shard, missing shard,
//    bytes that do not add up, an unknown layer class, a weight missing or left over
//  - the real nsfwjs MobileNetV2 (shared samples) translates to the expected graph
//  - a safetensors file is never taken for ONNX (its first byte may be 0x08)
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "models/import/import.h"
#include "models/import/tfjs.h"
#include "support/errors.h"
#include "tensor/error.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;
using scalpel::test::expect_error;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "scalpel-tfjs-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

template <typename T>
void append(std::string& bytes, T value) {
  bytes.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// Input (2, 2, 1) -> Conv2D 1x1 (1 filter, bias) -> Flatten -> Dense 2.
Json topology(const std::string& conv_class = "Conv2D") {
  return Json::parse(R"({"keras_version": "2.2.4", "backend": "tensorflow", "model_config": {
    "class_name": "Sequential", "config": {"name": "tiny", "layers": [
      {"class_name": ")" + conv_class + R"(", "config": {"name": "conv", "filters": 1, "kernel_size": [1, 1],
        "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "use_bias": true,
        "activation": "linear", "batch_input_shape": [null, 2, 2, 1]}},
      {"class_name": "Flatten", "config": {"name": "flat"}},
      {"class_name": "Dense", "config": {"name": "dense", "units": 2, "use_bias": true, "activation": "linear"}}]}}})");
}

struct TinyModel {
  Json manifest;
  std::string shard;  // every weight's bytes, in manifest order
};

// conv/kernel uint8 (q 10, scale 0.5, min -1: 4.0), conv/bias float16 (1.0), dense/kernel
// uint16 (q = 0..7, scale 0.25, min -1), dense/bias float32 (0.5, -2).
TinyModel tiny_weights() {
  TinyModel m;
  append<uint8_t>(m.shard, 10);
  append<uint16_t>(m.shard, 0x3C00);
  for (uint16_t q = 0; q < 8; ++q) append<uint16_t>(m.shard, q);
  append<float>(m.shard, 0.5f);
  append<float>(m.shard, -2.0f);
  m.manifest = Json::parse(R"([{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": [
    {"name": "conv/kernel", "shape": [1, 1, 1, 1], "dtype": "float32",
     "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1}},
    {"name": "conv/bias", "shape": [1], "dtype": "float32", "quantization": {"dtype": "float16"}},
    {"name": "dense/kernel", "shape": [4, 2], "dtype": "float32",
     "quantization": {"dtype": "uint16", "scale": 0.25, "min": -1}},
    {"name": "dense/bias", "shape": [2], "dtype": "float32"}]}])");
  return m;
}

// model.json and its two shards (split at byte 6, inside dense/kernel) in `dir`.
std::string write_model(const TempDir& dir, const Json& topo, const Json& manifest, const std::string& shard) {
  Json j = Json::object();
  j["format"] = "layers-model";
  j["modelTopology"] = topo;
  j["weightsManifest"] = manifest;
  write(dir / "model.json", j.dump());
  const size_t split = std::min<size_t>(6, shard.size());
  write(dir / "group1-shard1of2.bin", shard.substr(0, split));
  write(dir / "group1-shard2of2.bin", shard.substr(split));
  return (dir / "model.json").string();
}

const Tensor& named(const NamedTensors& tensors, const std::string& name) {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  throw Error("no tensor " + name);
}

TEST(Tfjs, QuantizedWeightsDecodeExactly) {
  TempDir dir;
  const TinyModel m = tiny_weights();
  const std::string path = write_model(dir, topology(), m.manifest, m.shard);
  EXPECT_EQ(graph_file_format(path), "tfjs");
  const ImportedGraph g = import_graph_file(path);
  EXPECT_EQ(g.spec.source, "tfjs");
  EXPECT_EQ(g.spec.name, "tiny");
  EXPECT_EQ(named(g.weights, "conv.weight").to_vector(), std::vector<double>{4.0});  // 10 * 0.5 - 1
  EXPECT_EQ(named(g.weights, "conv.bias").to_vector(), std::vector<double>{1.0});    // half 0x3C00
  // Keras [in 4, out 2] holds q = 2 * in + out; scalpel's [out, in] is its transpose.
  const Tensor& dense = named(g.weights, "dense.weight");
  ASSERT_EQ(dense.shape(), (Shape{2, 4}));
  for (int64_t out = 0; out < 2; ++out)
    for (int64_t in = 0; in < 4; ++in) EXPECT_EQ(dense.at({out, in}), (2 * in + out) * 0.25 - 1);
  EXPECT_EQ(named(g.weights, "dense.bias").to_vector(), (std::vector<double>{0.5, -2.0}));
}

TEST(Tfjs, TruncatedShardNamesTheFileAndTheWeight) {
  TempDir dir;
  const TinyModel m = tiny_weights();
  const std::string path = write_model(dir, topology(), m.manifest, m.shard.substr(0, m.shard.size() - 3));
  expect_error([&] { read_tfjs_model(path); }, {"group1-shard2of2.bin", "truncated", "dense/bias"});
}

TEST(Tfjs, MissingShardFileIsNamed) {
  TempDir dir;
  const TinyModel m = tiny_weights();
  const std::string path = write_model(dir, topology(), m.manifest, m.shard);
  fs::remove(dir / "group1-shard2of2.bin");
  expect_error([&] { read_tfjs_model(path); }, {"model.json", "group1-shard2of2.bin", "conv/kernel"});
}

TEST(Tfjs, BytesThatDoNotAddUpAreASizeMismatch) {
  TempDir dir;
  const TinyModel m = tiny_weights();
  const std::string path = write_model(dir, topology(), m.manifest, m.shard + "xx");
  expect_error([&] { read_tfjs_model(path); }, {"group1-shard2of2.bin", "size mismatch"});
}

TEST(Tfjs, UnknownLayerClassIsNamed) {
  TempDir dir;
  const TinyModel m = tiny_weights();
  const std::string path = write_model(dir, topology("MyCustomConv"), m.manifest, m.shard);
  expect_error([&] { import_graph_file(path); }, {"model.json", "'conv'", "MyCustomConv", "not supported"});
}

TEST(Tfjs, ConfigAndManifestMustAgree) {
  TempDir dir;
  TinyModel m = tiny_weights();
  // dense/bias missing from the manifest (and its 8 bytes from the shard).
  Json fewer = m.manifest;
  Json& weights = fewer[0]["weights"];
  Json kept = Json::array();
  for (size_t i = 0; i + 1 < weights.size(); ++i) kept.push_back(weights[i]);
  weights = kept;
  std::string path = write_model(dir, topology(), fewer, m.shard.substr(0, m.shard.size() - 8));
  expect_error([&] { read_tfjs_model(path); }, {"model.json", "dense/bias", "has none"});
  // A weight no layer takes.
  Json more = m.manifest;
  more[0]["weights"].push_back(Json::parse(R"({"name": "extra/kernel", "shape": [1], "dtype": "float32"})"));
  path = write_model(dir, topology(), more, m.shard + std::string(4, '\0'));
  expect_error([&] { read_tfjs_model(path); }, {"model.json", "extra/kernel", "belongs to no layer"});
  // A shape the config does not expect.
  Json wrong = m.manifest;
  wrong[0]["weights"][3]["shape"] = Json::array({2, 1});
  path = write_model(dir, topology(), wrong, m.shard);
  expect_error([&] { read_tfjs_model(path); }, {"model.json", "dense", "bias", "[2]"});
  // A member of the wrong type.
  Json bad_type = m.manifest;
  bad_type[0]["paths"][0] = 7;
  path = write_model(dir, topology(), bad_type, m.shard);
  expect_error([&] { read_tfjs_model(path); }, {"model.json", "string"});
  // A shard path outside the model's folder.
  Json outside = m.manifest;
  outside[0]["paths"][0] = "../elsewhere.bin";
  path = write_model(dir, topology(), outside, m.shard);
  expect_error([&] { read_tfjs_model(path); }, {"model.json", "../elsewhere.bin"});
}

// A safetensors file (a scalpel checkpoint) whose header length's low byte is 0x08, ONNX's
// first byte, is no graph file.
TEST(ImportFormat, SafetensorsIsNeverOnnx) {
  TempDir dir;
  std::string header = R"({"__metadata__":{"format":"pt"}})";
  header.resize(0x108, ' ');
  std::string bytes;
  append<uint64_t>(bytes, header.size());
  write(dir / "w.safetensors", bytes + header);
  EXPECT_EQ(graph_file_format((dir / "w.safetensors").string()), "");
  write(dir / "m.onnx", std::string("\x08\x07\x12\x07pytorch", 12));
  EXPECT_EQ(graph_file_format((dir / "m.onnx").string()), "onnx");
}

const fs::path kNsfwjs = fs::path(SCALPEL_SAMPLES) / "weights/tfjs/nsfwjs_mobilenet_v2/model.json";

TEST(Tfjs, NsfwjsMobileNetV2Translates) {
  if (!fs::exists(kNsfwjs)) GTEST_SKIP() << "shared samples absent: " << kNsfwjs;
  const ImportedGraph g = read_tfjs_model(kNsfwjs.string());
  EXPECT_EQ(g.spec.input_shape, (std::vector<int64_t>{3, 224, 224}));
  EXPECT_EQ(g.spec.name, "model_1");
  // 266 manifest weights, every one taken.
  EXPECT_EQ(g.weights.size(), 266u);
  EXPECT_EQ(named(g.weights, "Conv1.weight").shape(), (Shape{32, 3, 3, 3}));
  EXPECT_EQ(named(g.weights, "expanded_conv_depthwise.weight").shape(), (Shape{32, 1, 3, 3}));
  int flattens = 0;
  for (const GraphNode& n : g.spec.nodes) flattens += n.op == "flatten";
  EXPECT_EQ(flattens, 1);
}

}  // namespace
}  // namespace scalpel::models
