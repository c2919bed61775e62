// ONNX export (models/export/, `scalpel export`): the protobuf wire format, BatchNorm folding on
// a graph, the zoo walk, and the exported files run by ONNX Runtime (tests/reference/ort_run.js,
// npm onnxruntime-node) against scalpel's own logits. The ONNX Runtime tests skip with a message
// when node or the npm modules (`make reference`) are absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <tuple>

#include "autograd/autograd.h"
#include "layers/modules.h"
#include "models/checkpoint.h"
#include "models/export/onnx.h"
#include "models/export/zoo_graph.h"
#include "models/graph.h"
#include "models/import/import.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "tensor/error.h"
#include "tensor/io/protobuf_writer.h"
#include "tensor/npy.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::run_cli;

class Scratch {
 public:
  Scratch() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    std::string name = fmt::format("scalpel-export-{}-{}-{}", getpid(), info->test_suite_name(), info->name());
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::temp_directory_path() / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  std::string operator/(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

// Random running statistics and affine parameters, so that BatchNorm (and folding it) matters,
// with shifts up to 4 so that activations reach ReLU6's cap.
void randomize_batchnorms(nn::Module& model, Generator& gen) {
  for (auto& [name, m] : model.named_modules()) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(m);
    if (!bn) continue;
    uniform_(bn->running_mean, -0.5, 0.5, gen);
    uniform_(bn->running_var, 0.5, 2.0, gen);
    uniform_(bn->weight, 0.5, 2.0, gen);
    uniform_(bn->bias, -1.0, 4.0, gen);
  }
}

// max |a - b| / max |a|
double relative_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> va = a.to_vector(), vb = b.to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    diff = std::max(diff, std::abs(va[i] - vb[i]));
    scale = std::max(scale, std::abs(va[i]));
  }
  return diff / scale;
}

std::string hex(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}

ModelOptions with_classes(int64_t classes) {
  ModelOptions o;
  o.classes = classes;
  return o;
}

ModelOptions unet_options(bool bilinear);

// ---------------------------------------------------------------- wire format

TEST(ProtoWriter, WritesTheWireFormat) {
  ProtoWriter w;
  w.varint(1, 300);  // the protobuf documentation's example: 08 ac 02
  EXPECT_EQ(hex(w.str()), "08ac02");
  ProtoWriter neg;
  neg.int64(3, -1);  // negative int64: ten bytes, two's complement
  EXPECT_EQ(hex(neg.str()), "18ffffffffffffffffff01");
  ProtoWriter f;
  f.float32(2, 1.0f);  // fixed32, little-endian
  EXPECT_EQ(hex(f.str()), "150000803f");
  ProtoWriter inner;
  inner.bytes(1, "ab");
  ProtoWriter outer;
  outer.message(7, inner);  // length-delimited: tag 3a, length 4, then 0a 02 'a' 'b'
  EXPECT_EQ(hex(outer.str()), "3a040a026162");
}

// ---------------------------------------------------------------- graph passes

GraphNode make_node(std::string name, std::string op, std::vector<std::string> inputs, Json attrs = Json::object()) {
  GraphNode n;
  n.name = name;
  n.op = std::move(op);
  n.inputs = std::move(inputs);
  n.output = std::move(name);
  n.attrs = std::move(attrs);
  return n;
}

TEST(FoldBatchnorm, FoldsIntoTheConvAndKeepsTheRest) {
  GraphSpec spec;
  spec.input = "input";
  Json conv = Json::object();
  conv["kernel"] = Json::array({1, 1});
  conv["bias"] = false;
  Json bn = Json::object();
  bn["eps"] = 0.25;
  spec.nodes = {make_node("c", "conv2d", {"input"}, conv), make_node("b", "batch_norm", {"c"}, bn),
                make_node("c2", "conv2d", {"b"}, conv), make_node("r", "relu", {"c2"}),
                make_node("b2", "batch_norm", {"c2"}, bn), make_node("s", "add", {"r", "b2"})};
  spec.output = "s";
  NamedTensors w = {{"c.weight", Tensor::from_vector({2, -1}, {2, 1, 1, 1})},
                    {"b.weight", Tensor::from_vector({3, 1}, {2})},
                    {"b.bias", Tensor::from_vector({0.5, 0}, {2})},
                    {"b.running_mean", Tensor::from_vector({1, -2}, {2})},
                    {"b.running_var", Tensor::from_vector({0.75, 3.75}, {2})},
                    {"c2.weight", Tensor::from_vector({1, 1}, {1, 2, 1, 1})},
                    {"b2.weight", Tensor::from_vector({1}, {1})},
                    {"b2.bias", Tensor::from_vector({0}, {1})},
                    {"b2.running_mean", Tensor::from_vector({0}, {1})},
                    {"b2.running_var", Tensor::from_vector({1}, {1})}};
  EXPECT_EQ(fold_batchnorm(spec, w), 1);  // b2's conv output also feeds the relu: kept
  ASSERT_EQ(spec.nodes.size(), 5u);
  EXPECT_EQ(spec.nodes[0].name, "c");
  EXPECT_EQ(spec.nodes[0].output, "b");  // the conv took over the batch norm's output
  EXPECT_TRUE(spec.nodes[0].attrs.at("bias").as_bool());
  EXPECT_EQ(spec.nodes[3].op, "batch_norm");
  auto get = [&](const std::string& name) {
    for (auto& [k, t] : w)
      if (k == name) return t.to_vector();
    ADD_FAILURE() << name << " missing";
    return std::vector<double>{};
  };
  // s = gamma / sqrt(var + eps) = {3 / 1, 1 / 2}; W' = s W; b' = (0 - mean) s + beta
  EXPECT_EQ(get("c.weight"), (std::vector<double>{6, -0.5}));
  EXPECT_EQ(get("c.bias"), (std::vector<double>{-2.5, 1}));
  for (auto& [k, t] : w) EXPECT_FALSE(k.starts_with("b.")) << k;
}

TEST(OnnxWriter, NamesTheNodeOfAnUnknownOpAndAMissingWeight) {
  GraphSpec spec;
  spec.nodes = {make_node("odd", "frobnicate", {"input"})};
  spec.output = "odd";
  EXPECT_THROW(
      {
        try {
          onnx_model_bytes(spec, {}, {1, 3, 8, 8}, {1, 3, 8, 8});
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("node 'odd': op 'frobnicate'"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  Json conv = Json::object();
  conv["kernel"] = Json::array({3, 3});
  spec.nodes = {make_node("conv", "conv2d", {"input"}, conv)};
  spec.output = "conv";
  try {
    onnx_model_bytes(spec, {}, {1, 3, 8, 8}, {1, 3, 8, 8});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight 'conv.weight' is missing"), std::string::npos) << e.what();
  }
  OnnxOptions old;
  old.opset = 12;
  EXPECT_THROW(onnx_model_bytes(spec, {}, {1, 3, 8, 8}, {1, 3, 8, 8}, old), Error);
}

// ---------------------------------------------------------------- the zoo walk

TEST(ZooGraph, ResNet18HasItsBlocksGlue) {
  auto model = create_model("resnet18", {.classes = 5});
  const ExportedGraph g = model_to_graph(*model, {3, 32, 32});
  std::map<std::string, int> ops;
  for (const GraphNode& n : g.spec.nodes) ++ops[n.op];
  EXPECT_EQ(ops["conv2d"], 20);  // 17 convs + 3 downsample projections
  EXPECT_EQ(ops["batch_norm"], 20);
  EXPECT_EQ(ops["add"], 8);  // one residual add per basic block
  EXPECT_EQ(ops["flatten"], 1);
  EXPECT_EQ(ops["linear"], 1);
  EXPECT_EQ(g.spec.nodes.front().name, "conv1");
  EXPECT_EQ(g.output_shape, (Shape{1, 5}));
  bool has = false;
  for (auto& [name, t] : g.weights) has = has || name == "layer1_0_conv1.weight";
  EXPECT_TRUE(has);
}

// The walked GraphSpec with its weights, run by scalpel's own GraphModel, gives the zoo model's
// logits: the graph means what the model computes, independently of any ONNX runtime.
std::shared_ptr<GraphModel> graph_model(const ExportedGraph& g) {
  auto gm = std::make_shared<GraphModel>(g.spec);
  std::vector<nn::NamedTensor> state;
  for (const auto& [name, t] : g.weights) state.push_back({name, t});
  gm->load_state_dict(state);
  gm->eval();
  return gm;
}

TEST(ZooGraph, GraphModelRunsTheWalkedGraph) {
  ModelOptions unet;
  unet.classes = 2;
  unet.base_width = 4;
  unet.bilinear = true;
  for (const auto& [name, options, size] : std::vector<std::tuple<std::string, ModelOptions, int64_t>>{
           {"resnet18", with_classes(4), 32}, {"mobilenet_v2", with_classes(4), 32},
           {"efficientnet_b0", with_classes(4), 32}, {"unet", unet, 36}}) {
    SCOPED_TRACE(name);
    Generator gen(9);
    auto model = create_model(name, options);
    randomize_batchnorms(*model, gen);
    const ExportedGraph g = model_to_graph(*model, {3, size, size});
    auto gm = graph_model(g);
    const Tensor x = randn({2, 3, size, size}, gen);
    NoGradGuard no_grad;
    EXPECT_LE(relative_diff(model->forward(x), gm->forward(x)), 1e-5);
  }
}

// Export then import (models/import/onnx.cpp) gives the zoo model's logits: the two halves of
// scalpel's ONNX support agree with each other, with a dynamic batch and BatchNorm kept or folded.
TEST(OnnxRoundTrip, ExportThenImportGivesTheSameLogits) {
  Scratch dir;
  ModelOptions unet = unet_options(false);
  for (const auto& [name, options, size] : std::vector<std::tuple<std::string, ModelOptions, int64_t>>{
           {"resnet18", with_classes(4), 32}, {"mobilenet_v2", with_classes(4), 32},
           {"efficientnet_b0", with_classes(4), 32}, {"densenet121", with_classes(4), 32}, {"unet", unet, 40}}) {
    SCOPED_TRACE(name);
    Generator gen(13);
    auto model = create_model(name, options);
    randomize_batchnorms(*model, gen);
    model->eval();
    const Tensor x = randn({3, 3, size, size}, gen);
    Tensor expected;
    {
      NoGradGuard no_grad;
      expected = model->forward(x);
    }
    for (const bool fused : {false, true}) {
      SCOPED_TRACE(fused ? "--fused" : "BatchNorm kept");
      ExportedGraph g = model_to_graph(*model, {3, size, size});
      if (fused) fold_batchnorm(g.spec, g.weights);
      OnnxOptions o;
      o.dynamic_batch = true;
      const std::string path = dir / (name + (fused ? "_fused.onnx" : ".onnx"));
      write_onnx(path, g.spec, g.weights, g.input_shape, g.output_shape, o);
      auto imported = build_imported_model(import_graph_file(path));
      NoGradGuard no_grad;
      const double diff = relative_diff(expected, imported->forward(x));
      fmt::print("{}{}: max |imported - scalpel| / max |scalpel| = {:.2g}\n", name, fused ? " fused" : "", diff);
      EXPECT_LE(diff, 1e-5);
    }
  }
}

// Every model of the zoo walks, and the walk's own check against forward() passes. Small
// heads and the smallest inputs keep this quick.
TEST(ZooGraph, EveryZooModelWalks) {
  for (const std::string& name : model_names()) {
    const ModelInfo info = model_info(name);
    ModelOptions options;
    options.classes = 3;
    if (name == "unet") options.base_width = 4;
    std::shared_ptr<Model> model;
    {
      nn::SkipInitGuard skip;  // random values below, faster than each model's own init
      model = create_model(name, options);
    }
    Generator gen(3);
    for (auto& [pname, t] : model->named_parameters()) uniform_(t, -0.05, 0.05, gen);
    randomize_batchnorms(*model, gen);
    const int64_t size = name == "inception_v3" ? 75 : name.starts_with("xception") ? 71 : 32;
    SCOPED_TRACE(name);
    EXPECT_NO_THROW(model_to_graph(*model, {3, size, size}));
  }
}

// ---------------------------------------------------------------- ONNX Runtime

// Why ONNX Runtime cannot run here, or "" when it can.
std::string ort_missing() {
  const std::string node = SCALPEL_NODE;
  if (node.empty() || !fs::exists(node)) return "node is not installed";
  if (!fs::exists(fs::path(SCALPEL_NODE_MODULES) / "onnxruntime-node"))
    return fmt::format("onnxruntime-node is not in {} (make reference)", SCALPEL_NODE_MODULES);
  return "";
}

// ONNX Runtime's output for `input`.
Tensor run_ort(const std::string& model, const Tensor& input, const Scratch& dir) {
  const std::string in = dir / "input.npy", out = dir / "ort.npy";
  save_npy(in, input);
  setenv("NODE_PATH", SCALPEL_NODE_MODULES, 1);
  const CliResult r = run_cli({SCALPEL_ORT_RUN, model, in, out}, SCALPEL_NODE);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return Tensor();
  return load_npy(out);
}

struct OrtCase {
  std::string model;
  int64_t size;
  ModelOptions options;
};
void PrintTo(const OrtCase& c, std::ostream* os) { *os << c.model; }

class OrtMatches : public ::testing::TestWithParam<OrtCase> {};

// The exported file, with BatchNorm kept and folded, gives scalpel's logits in ONNX Runtime.
TEST_P(OrtMatches, LogitsWithBatchNormKeptAndFolded) {
  const std::string missing = ort_missing();
  if (!missing.empty()) GTEST_SKIP() << missing;
  const OrtCase& c = GetParam();
  Scratch dir;
  Generator gen(11);
  auto model = create_model(c.model, c.options);
  randomize_batchnorms(*model, gen);
  CheckpointInfo info;
  info.model = c.model;
  info.options = c.options;
  const std::string ckpt = dir / "model.safetensors";
  save_checkpoint(ckpt, *model, info);

  model->eval();
  const Tensor x = randn({2, c.options.in_channels, c.size, c.size}, gen);
  Tensor expected;
  {
    NoGradGuard no_grad;
    expected = model->forward(x);
  }
  const std::string size = std::to_string(c.size);
  for (const bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "--fused" : "BatchNorm kept");
    const std::string onnx = dir / (fused ? "fused.onnx" : "model.onnx");
    std::vector<std::string> args = {"export", "--weights", ckpt, "--format", "onnx", "--out", onnx, "--size", size, size};
    if (fused) args.push_back("--fused");
    args.push_back("--dynamic-batch");
    const CliResult r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Tensor got = run_ort(onnx, x, dir);
    ASSERT_TRUE(got.defined());
    ASSERT_EQ(got.shape(), expected.shape());
    const double diff = relative_diff(expected, got);
    fmt::print("{}{}: max |onnxruntime - scalpel| / max |scalpel| = {:.2g}\n", c.model, fused ? " --fused" : "", diff);
    EXPECT_LE(diff, 1e-4);
  }
}

ModelOptions unet_options(bool bilinear) {
  ModelOptions o;
  o.classes = 2;
  o.base_width = 8;
  o.bilinear = bilinear;
  return o;
}

// 40 pixels: U-Net's decoder pads the 2x2 -> 4x4 up-sampling to the 5x5 skip input.
INSTANTIATE_TEST_SUITE_P(Zoo, OrtMatches,
                         ::testing::Values(OrtCase{"resnet18", 32, with_classes(10)},
                                           OrtCase{"resnet50", 32, with_classes(10)},
                                           OrtCase{"mobilenet_v2", 32, with_classes(10)},
                                           OrtCase{"efficientnet_b0", 32, with_classes(10)},
                                           OrtCase{"densenet121", 32, with_classes(10)},
                                           OrtCase{"unet", 40, unet_options(false)},
                                           OrtCase{"unet", 40, unet_options(true)}));

// The other families (emu-slow: bigger models): VGG, Keras' ResNet V2 (pre-activation, ZeroPad2d),
// Inception V3 (branches, pools in code), Xception (separable convs, SAME padding in code).
INSTANTIATE_TEST_SUITE_P(ZooFamilies, OrtMatches,
                         ::testing::Values(OrtCase{"vgg11_bn", 32, with_classes(10)},
                                           OrtCase{"resnet50_v2", 32, with_classes(10)},
                                           OrtCase{"inception_v3", 75, with_classes(10)},
                                           OrtCase{"xception", 71, with_classes(10)}));

// One file with a dynamic batch axis runs batch 1 and batch 3; a static one declares batch 1.
TEST(OrtDynamicBatch, OneFileRunsBatchOneAndThree) {
  const std::string missing = ort_missing();
  if (!missing.empty()) GTEST_SKIP() << missing;
  Scratch dir;
  Generator gen(5);
  auto model = create_model("mobilenet_v1", {.classes = 4, .width = 0.25});
  randomize_batchnorms(*model, gen);
  CheckpointInfo info;
  info.model = "mobilenet_v1";
  info.options = model->options();
  info.class_names = {"a", "b", "c", "d"};
  const std::string ckpt = dir / "m.safetensors", dynamic = dir / "dynamic.onnx", fixed = dir / "fixed.onnx";
  save_checkpoint(ckpt, *model, info);
  ASSERT_EQ(run_cli({"export", "--weights", ckpt, "--out", dynamic, "--size", "32", "32", "--dynamic-batch"}).exit_code, 0);
  ASSERT_EQ(run_cli({"export", "--weights", ckpt, "--out", fixed, "--size", "32", "32", "--opset", "13"}).exit_code, 0);
  // metadata_props: the class names and the preprocessing as JSON, the producer.
  const std::string bytes = test::slurp(dynamic);
  for (const std::string want : {"scalpel", "classes", R"(["a","b","c","d"])", "preprocess", "\"normalize\":"})
    EXPECT_NE(bytes.find(want), std::string::npos) << want;
  model->eval();
  for (const int64_t batch : {1, 3}) {
    SCOPED_TRACE(batch);
    const Tensor x = randn({batch, 3, 32, 32}, gen);
    NoGradGuard no_grad;
    const Tensor expected = model->forward(x);
    const Tensor got = run_ort(dynamic, x, dir);
    ASSERT_TRUE(got.defined());
    ASSERT_EQ(got.shape(), expected.shape());
    EXPECT_LE(relative_diff(expected, got), 1e-4);
  }
  // The static file takes batch 1 only: ONNX Runtime refuses batch 3 against its declared shape.
  const Tensor one = randn({1, 3, 32, 32}, gen);
  EXPECT_TRUE(run_ort(fixed, one, dir).defined());
  save_npy(dir / "three.npy", randn({3, 3, 32, 32}, gen));
  const CliResult r = run_cli({SCALPEL_ORT_RUN, fixed, dir / "three.npy", dir / "out3.npy"}, SCALPEL_NODE);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.err.starts_with("error: ")) << r.err;
}

// Zero padding before a max pool (Keras ResNet V2's ZeroPadding2D + MaxPooling2D) keeps its zeros
// in ONNX Runtime, whose optimizer would otherwise fold the Pad into the pool's -inf padding.
TEST(OrtPad, ZeroPaddingBeforeAMaxPoolStaysZero) {
  const std::string missing = ort_missing();
  if (!missing.empty()) GTEST_SKIP() << missing;
  Scratch dir;
  GraphSpec spec;
  Json pad = Json::object();
  pad["pads"] = Json::array({1, 1, 1, 1});
  Json pool = Json::object();
  pool["kernel"] = Json::array({3, 3});
  pool["stride"] = Json::array({1, 1});
  spec.nodes = {make_node("pad", "pad", {"input"}, pad), make_node("pool", "max_pool2d", {"pad"}, pool)};
  spec.output = "pool";
  write_onnx(dir / "pad.onnx", spec, {}, {1, 1, 4, 4}, {1, 1, 4, 4});
  const Tensor got = run_ort(dir / "pad.onnx", Tensor::full({1, 1, 4, 4}, -1.0), dir);
  ASSERT_TRUE(got.defined());
  // Every window of the border touches a padded zero; the inner 2x2 windows see only -1.
  const std::vector<double> expected = {0, 0, 0, 0, 0, -1, -1, 0, 0, -1, -1, 0, 0, 0, 0, 0};
  EXPECT_EQ(got.to_vector(), expected);
}

// An imported network (a GraphModel checkpoint) exports too: its spec is written as it is.
TEST(OrtGraph, GraphModelCheckpointExports) {
  const std::string missing = ort_missing();
  if (!missing.empty()) GTEST_SKIP() << missing;
  Scratch dir;
  Generator gen(13);
  ModelOptions options = with_classes(3);
  options.width = 0.25;
  auto zoo = create_model("mobilenet_v1", options);
  randomize_batchnorms(*zoo, gen);
  auto gm = graph_model(model_to_graph(*zoo, {3, 32, 32}));
  CheckpointInfo info;
  info.options = gm->options();
  const std::string ckpt = dir / "graph.safetensors", onnx = dir / "graph.onnx";
  save_checkpoint(ckpt, *gm, info);
  const CliResult r = run_cli({"export", "--weights", ckpt, "--out", onnx, "--size", "32", "32", "--fused"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Tensor x = randn({1, 3, 32, 32}, gen);
  NoGradGuard no_grad;
  const Tensor expected = gm->forward(x);
  const Tensor got = run_ort(onnx, x, dir);
  ASSERT_TRUE(got.defined());
  ASSERT_EQ(got.shape(), expected.shape());
  EXPECT_LE(relative_diff(expected, got), 1e-4);
}

// ---------------------------------------------------------------- the command

TEST(ExportCli, BadFlagsAreOneErrorLineAndNoFile) {
  Scratch dir;
  auto model = create_model("resnet18", {.classes = 2});
  CheckpointInfo info;
  info.model = "resnet18";
  info.options = model->options();
  const std::string ckpt = dir / "m.safetensors", out = dir / "m.onnx";
  save_checkpoint(ckpt, *model, info);
  for (const auto& extra : std::vector<std::vector<std::string>>{{"--opset", "12"}, {"--format", "tflite"}}) {
    std::vector<std::string> args = {"export", "--weights", ckpt, "--out", out};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << extra[0];
    EXPECT_TRUE(r.err.starts_with("error: " + extra[0])) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
  const CliResult r = run_cli({"export", "--out", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.err.starts_with("error: --weights is required")) << r.err;
}

}  // namespace
}  // namespace scalpel::models
