// ONNX import (models/import/onnx.h): ONNX's own operator tests (Debian's libonnx-testdata),
// the PaddleOCR classifier against ONNX Runtime at two widths, hand-built models for weight
// sources, shape folding with run-time dimensions, and bad files (one Error, nothing loaded).
#include <fnmatch.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "autograd/autograd.h"
#include "models/import/import.h"
#include "models/import/onnx.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/protobuf_writer.h"
#include "tensor/atomic_file.h"
#include "tensor/npy.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::expect_error;
using test::ProtoWriter;

const char* const kNodeTests = "/usr/share/libonnx-testdata/data/node";

// A scratch folder removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / fmt::format("scalpel_onnx_{}_{}", ::getpid(), counter()++);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

// max |a - b| - (atol + rtol |b|) over all elements: <= 0 when a is within ONNX's tolerance.
double tolerance_excess(const Tensor& a, const Tensor& b, double rtol, double atol) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double worst = -1;
  for (size_t k = 0; k < x.size(); ++k) {
    const double excess = std::isnan(x[k]) != std::isnan(y[k]) ? 1e30 : std::abs(x[k] - y[k]) - (atol + rtol * std::abs(y[k]));
    worst = std::max(worst, std::isnan(excess) ? -1.0 : excess);
  }
  return worst;
}

// The value named `name` in a run_all result.
Tensor value_of(const std::vector<std::pair<std::string, Tensor>>& values, const std::string& name) {
  for (const auto& [n, t] : values) {
    if (n == name) return t;
  }
  throw Error("no value " + name);
}

Tensor run_imported(const ImportedGraph& g, const Tensor& x) {
  auto model = build_imported_model(g);
  NoGradGuard no_grad;
  return value_of(model->run_all(x), g.spec.output);
}

// ---------------------------------------------------------------- ONNX's operator tests

// Cases of supported ops that are left out (fnmatch patterns), and why; anything else must pass.
const std::vector<std::pair<std::string, std::string>>& node_test_exclusions() {
  static const std::vector<std::pair<std::string, std::string>> exclusions = {
      {"test_*pool_[13]d_*", "1-D and 3-D pooling (scalpel pools 2-D)"},
      {"test_convtranspose_[13]d", "1-D and 3-D convolution (scalpel convolves 2-D)"},
      {"test_maxpool_2d_dilations", "dilated max pooling is not in the vocabulary"},
      {"test_*pool_2d_pads*", "pads larger than half the kernel (PyTorch's limit, kept by scalpel's pooling)"},
      {"test_resize_*cubic*", "cubic resize"},
      {"test_resize_tf_crop_and_resize", "tf_crop_and_resize coordinates"},
      {"test_resize_downsample_scales_*", "scales giving fractional sizes (ONNX maps with the scale, scalpel with the size ratio)"},
      {"test_resize_*_sizes_nearest*", "nearest resize with fractional factors or ceil/floor rounding of half-pixel coordinates"},
      {"test_resize_downsample_sizes_linear_pytorch_half_pixel", "pytorch_half_pixel to an output of size 1"},
      {"test_slice_neg_steps", "negative slice steps on a computed tensor"},
      {"test_slice_start_out_of_bounds", "an empty slice (scalpel's slice refuses empty results)"},
      {"test_reshape_allowzero_reordered", "allowzero with a zero dimension"},
      {"test_gather_2d_indices", "2-D indices into a computed tensor"},
      {"test_training_dropout", "Dropout in training mode (random)"},
      {"test_training_dropout_default", "Dropout in training mode (random)"},
      {"test_identity_opt", "optional values (not tensors)"},
      {"test_identity_sequence", "sequence values (not tensors)"},
  };
  return exclusions;
}

const std::string* excluded(const std::string& name) {
  for (const auto& [pattern, reason] : node_test_exclusions()) {
    if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return &reason;
  }
  return nullptr;
}

TEST(OnnxNodeTests, EveryApplicableCasePasses) {
  if (!fs::exists(kNodeTests)) GTEST_SKIP() << kNodeTests << " is absent (Debian package libonnx-testdata)";
  const std::vector<std::string>& supported = onnx_supported_ops();
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(kNodeTests)) cases.push_back(entry.path());
  std::sort(cases.begin(), cases.end());
  int applicable = 0, passed = 0;
  std::map<std::string, int> not_applicable;  // reason -> count
  std::vector<std::string> failures;
  for (const fs::path& dir : cases) {
    const std::string name = dir.filename().string();
    const fs::path model_path = dir / "model.onnx";
    if (!fs::exists(model_path) || !fs::exists(dir / "test_data_set_0")) continue;
    const std::string bytes = read_file(model_path.string());
    OnnxModelInfo info;
    try {
      info = read_onnx_info(bytes, model_path.string());
    } catch (const Error& e) {
      failures.push_back(name + ": " + e.what());
      continue;
    }
    const bool ops_supported = std::all_of(info.op_types.begin(), info.op_types.end(), [&](const std::string& op) {
      return std::binary_search(supported.begin(), supported.end(), op);
    });
    if (!ops_supported || info.op_types.empty()) continue;  // not one of ours
    if (const std::string* reason = excluded(name)) {
      ++not_applicable[*reason];
      continue;
    }
    std::vector<OnnxTensor> inputs, outputs;
    try {
      for (const auto& [prefix, list] : {std::pair{"input", &inputs}, std::pair{"output", &outputs}}) {
        for (size_t k = 0;; ++k) {
          const fs::path p = dir / "test_data_set_0" / fmt::format("{}_{}.pb", prefix, k);
          if (!fs::exists(p)) break;
          list->push_back(parse_onnx_tensor(read_file(p.string()), p.string()));
        }
      }
    } catch (const Error& e) {
      if (std::string(e.what()).find("data type") == std::string::npos) throw;
      ++not_applicable["string or complex data (scalpel reads numbers)"];
      continue;
    }
    if (outputs.size() != 1) {
      ++not_applicable["several outputs (scalpel graphs make one)"];
      continue;
    }
    if (inputs.empty() || inputs.size() != info.inputs.size()) {
      ++not_applicable["no runtime input, or optional inputs left out"];
      continue;
    }
    if (inputs[0].data_type != 1 || outputs[0].data_type != 1) {
      ++not_applicable["input or output not float32 (scalpel runs float32)"];
      continue;
    }
    ++applicable;
    // The first input runs; the others (a second operand, shapes, scales) become constants.
    OnnxImportOptions options;
    options.tensor_input = true;
    for (size_t k = 1; k < inputs.size(); ++k) options.constant_inputs.emplace_back(info.inputs[k], inputs[k].value);
    try {
      const ImportedGraph g = parse_onnx(bytes, model_path.string(), dir.string(), options);
      const Tensor got = run_imported(g, inputs[0].value);
      const Tensor& expected = outputs[0].value;
      if (got.shape() != expected.shape()) {
        failures.push_back(fmt::format("{}: shape {} instead of {}", name, shape_str(got.shape()),
                                       shape_str(expected.shape())));
        continue;
      }
      const double excess = tolerance_excess(got, expected, 1e-3, 1e-5);
      if (excess > 0) {
        failures.push_back(fmt::format("{}: outside rtol 1e-3, atol 1e-5 by {}", name, excess));
        continue;
      }
      ++passed;
    } catch (const Error& e) {
      failures.push_back(name + ": " + e.what());
    }
  }
  std::string reasons;
  for (const auto& [reason, count] : not_applicable) reasons += fmt::format("\n  {} x {}", count, reason);
  std::printf("ONNX operator tests of supported ops: %d passed of %d applicable; not applicable:%s\n", passed,
              applicable, reasons.c_str());
  for (const std::string& f : failures) ADD_FAILURE() << f;
  EXPECT_GE(applicable, 150) << "fewer applicable cases than expected: is the test data complete?";
}

// ---------------------------------------------------------------- PaddleOCR vs ONNX Runtime

TEST(OnnxPaddleOcr, MatchesOnnxRuntimeAtTwoWidths) {
  const std::string model_path = std::string(SCALPEL_SAMPLES) + "/weights/onnx/ch_ppocr_mobile_v2.0_cls_infer.onnx";
  if (!fs::exists(model_path)) GTEST_SKIP() << "shared sample absent: " << model_path;
  const std::string node = SCALPEL_NODE;
  const std::string modules = SCALPEL_REFERENCE_NODE_MODULES;
  if (node.empty() || !fs::exists(fs::path(modules) / "onnxruntime-node")) {
    GTEST_SKIP() << "ONNX Runtime for node is absent (" << modules << "; `make reference` installs it)";
  }
  const std::string script = std::string(SCALPEL_FIXTURES) + "/../reference/ort_run.js";
  const ImportedGraph g = import_graph_file(model_path);
  auto model = build_imported_model(g);
  TempDir tmp;
  Generator gen(18);
  for (const int64_t width : {192, 100}) {
    SCOPED_TRACE(fmt::format("width {}", width));
    const Tensor x = ops::add_scalar(ops::mul_scalar(rand({2, 3, 48, width}, gen), 2.0), -1.0);
    const std::string in = (tmp.path / "in.npy").string(), out = (tmp.path / "out.npy").string();
    save_npy(in, x.contiguous());
    const std::string command = fmt::format("NODE_PATH='{}' '{}' '{}' '{}' '{}' '{}'", modules, node, script,
                                            model_path, in, out);
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    const Tensor expected = load_npy(out);
    NoGradGuard no_grad;
    const Tensor got = value_of(model->run_all(x), g.spec.output);
    ASSERT_EQ(shape_str(got.shape()), shape_str(expected.shape()));
    double scale = 0, diff = 0;
    const std::vector<double> a = got.to_vector(), b = expected.to_vector();
    for (size_t k = 0; k < a.size(); ++k) {
      scale = std::max(scale, std::abs(b[k]));
      diff = std::max(diff, std::abs(a[k] - b[k]));
    }
    std::printf("PaddleOCR classifier 2x3x48x%lld: max |scalpel - ORT| = %.3g (max |ORT| = %.3g)\n",
                static_cast<long long>(width), diff, scale);
    EXPECT_LE(diff, 1e-4 * scale);
  }
}

// ---------------------------------------------------------------- hand-built models

// TensorProto of float values (raw_data) or typed ints.
ProtoWriter float_tensor(const std::string& name, const Shape& dims, const std::vector<float>& values) {
  ProtoWriter t;
  t.packed_varints(1, dims).varint(2, 1).string(8, name);
  t.string(9, std::string_view(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  return t;
}
ProtoWriter int_tensor(const std::string& name, const Shape& dims, const std::vector<int64_t>& values) {
  ProtoWriter t;
  t.packed_varints(1, dims).varint(2, 7).string(8, name).packed_varints(7, values);
  return t;
}

ProtoWriter node(const std::string& name, const std::string& op, const std::vector<std::string>& inputs,
                 const std::vector<std::string>& outputs, const std::vector<ProtoWriter>& attrs = {}) {
  ProtoWriter n;
  for (const std::string& in : inputs) n.string(1, in);
  for (const std::string& out : outputs) n.string(2, out);
  n.string(3, name).string(4, op);
  for (const ProtoWriter& a : attrs) n.message(5, a);
  return n;
}
ProtoWriter int_attr(const std::string& name, int64_t value) {
  ProtoWriter a;
  a.string(1, name).varint(3, static_cast<uint64_t>(value)).varint(20, 2);
  return a;
}
ProtoWriter ints_attr(const std::string& name, const std::vector<int64_t>& values) {
  ProtoWriter a;
  a.string(1, name).packed_varints(8, values).varint(20, 7);
  return a;
}
ProtoWriter tensor_attr(const std::string& name, const ProtoWriter& tensor) {
  ProtoWriter a;
  a.string(1, name).message(5, tensor).varint(20, 4);
  return a;
}

// ValueInfoProto of a float tensor; a negative dim is the named parameter "N" (or "W").
ProtoWriter value_info(const std::string& name, const std::vector<int64_t>& dims) {
  ProtoWriter shape;
  for (const int64_t d : dims) {
    ProtoWriter dim;
    if (d >= 0) dim.varint(1, static_cast<uint64_t>(d));
    else dim.string(2, d == -1 ? "N" : "W");
    shape.message(1, dim);
  }
  ProtoWriter tensor_type;
  tensor_type.varint(1, 1).message(2, shape);
  ProtoWriter type;
  type.message(1, tensor_type);
  ProtoWriter v;
  v.string(1, name).message(2, type);
  return v;
}

std::string model_bytes(const std::vector<ProtoWriter>& nodes, const std::vector<ProtoWriter>& initializers,
                        const ProtoWriter& input, const std::string& output, int64_t opset = 13) {
  ProtoWriter graph;
  for (const ProtoWriter& n : nodes) graph.message(1, n);
  graph.string(2, "handmade");
  for (const ProtoWriter& t : initializers) graph.message(5, t);
  graph.message(11, input);
  ProtoWriter out;
  out.string(1, output);
  graph.message(12, out);
  ProtoWriter opset_id;
  opset_id.string(1, "").varint(2, static_cast<uint64_t>(opset));
  ProtoWriter model;
  model.varint(1, 8).string(2, "scalpel-test").message(7, graph).message(8, opset_id);
  return model.bytes();
}

// Conv (weights as an initializer) -> Relu -> Shape/Gather/Unsqueeze/Concat -> Reshape [N, -1]
// -> Gemm with a Constant-node weight: every dimension but the channels is dynamic.
std::string small_cnn() {
  std::vector<float> w(4 * 2 * 3 * 3), b = {0.1f, -0.2f, 0.3f, 0.0f}, fc(3 * 4), fc_bias = {1, 2, 3};
  for (size_t k = 0; k < w.size(); ++k) w[k] = std::sin(static_cast<float>(k)) * 0.3f;
  for (size_t k = 0; k < fc.size(); ++k) fc[k] = std::cos(static_cast<float>(k));
  ProtoWriter fc_tensor = float_tensor("", {3, 4}, fc);
  return model_bytes(
      {node("conv", "Conv", {"x", "w", "b"}, {"c"}, {ints_attr("pads", {1, 1, 1, 1}), ints_attr("strides", {2, 2})}),
       node("relu", "Relu", {"c"}, {"r"}),
       node("pool", "GlobalAveragePool", {"r"}, {"p"}),
       node("shape", "Shape", {"p"}, {"s"}),
       node("zero", "Constant", {}, {"zero"}, {tensor_attr("value", int_tensor("", {}, {0}))}),
       node("batch", "Gather", {"s", "zero"}, {"n"}),
       node("axes", "Constant", {}, {"axes"}, {tensor_attr("value", int_tensor("", {1}, {0}))}),
       node("unsq", "Unsqueeze", {"n", "axes"}, {"n1"}),
       node("minus_one", "Constant", {}, {"m1"}, {tensor_attr("value", int_tensor("", {1}, {-1}))}),
       node("cat", "Concat", {"n1", "m1"}, {"target"}, {int_attr("axis", 0)}),
       node("flat", "Reshape", {"p", "target"}, {"f"}),
       node("fc_w", "Constant", {}, {"fc_w"}, {tensor_attr("value", fc_tensor)}),
       node("fc", "Gemm", {"f", "fc_w", "fc_b"}, {"logits"}, {int_attr("transB", 1)})},
      {float_tensor("w", {4, 2, 3, 3}, w), float_tensor("b", {4}, b), float_tensor("fc_b", {3}, fc_bias)},
      value_info("x", {-1, 2, -2, -2}), "logits");
}

TEST(OnnxImport, FoldsShapeArithmeticWithDynamicBatch) {
  const ImportedGraph g = parse_onnx(small_cnn(), "small.onnx", "");
  EXPECT_EQ(g.spec.input_shape, (std::vector<int64_t>{2, 0, 0}));
  std::vector<std::string> ops;
  for (const GraphNode& n : g.spec.nodes) ops.push_back(n.op);
  EXPECT_EQ(ops, (std::vector<std::string>{"conv2d", "relu", "global_avg_pool", "reshape", "linear"}));
  EXPECT_EQ(g.spec.nodes[3].attrs.at("shape"), Json::parse("[0, -1]"));
  std::set<std::string> names;
  for (const auto& [name, t] : g.weights) names.insert(name);
  EXPECT_EQ(names, (std::set<std::string>{"conv.weight", "conv.bias", "fc.weight", "fc.bias"}));
  // The same weights by hand: conv, relu, mean, x W^T + b, for two batch sizes and widths.
  Generator gen(3);
  for (const Shape& shape : {Shape{1, 2, 7, 9}, Shape{3, 2, 6, 5}}) {
    const Tensor x = randn(shape, gen);
    const Tensor got = run_imported(g, x);
    ASSERT_EQ(shape_str(got.shape()), shape_str(Shape{shape[0], 3}));
    const Tensor& w = g.weights[0].second;
    const Tensor& b = g.weights[1].second;
    const int64_t oh = (shape[2] + 2 - 3) / 2 + 1, ow = (shape[3] + 2 - 3) / 2 + 1;
    for (int64_t n = 0; n < shape[0]; ++n) {
      std::vector<double> pooled(4, 0);
      for (int64_t o = 0; o < 4; ++o) {
        for (int64_t i = 0; i < oh; ++i) {
          for (int64_t j = 0; j < ow; ++j) {
            double acc = b.at({o});
            for (int64_t c = 0; c < 2; ++c) {
              for (int64_t ki = 0; ki < 3; ++ki) {
                for (int64_t kj = 0; kj < 3; ++kj) {
                  const int64_t y = i * 2 - 1 + ki, z = j * 2 - 1 + kj;
                  if (y < 0 || z < 0 || y >= shape[2] || z >= shape[3]) continue;
                  acc += x.at({n, c, y, z}) * w.at({o, c, ki, kj});
                }
              }
            }
            pooled[o] += std::max(acc, 0.0) / static_cast<double>(oh * ow);
          }
        }
      }
      for (int64_t k = 0; k < 3; ++k) {
        double logit = k + 1;
        for (int64_t o = 0; o < 4; ++o) logit += pooled[o] * std::cos(static_cast<double>(k * 4 + o));
        EXPECT_NEAR(got.at({n, k}), logit, 1e-4);
      }
    }
  }
}

TEST(OnnxImport, TensorDataInEveryEncoding) {
  // float16 bits in int32_data, doubles, int32, and raw float.
  ProtoWriter half;
  half.packed_varints(1, {2}).varint(2, 10).packed_varints(5, {0x3C00, 0xC000});  // 1.0, -2.0
  EXPECT_EQ(parse_onnx_tensor(half.bytes(), "t").value.to_vector(), (std::vector<double>{1.0, -2.0}));
  ProtoWriter doubles;
  doubles.packed_varints(1, {1}).varint(2, 11).fixed64(10, 0x3FF8000000000000u);  // 1.5
  EXPECT_EQ(parse_onnx_tensor(doubles.bytes(), "t").value.to_vector(), (std::vector<double>{1.5}));
  ProtoWriter int32s;
  int32s.packed_varints(1, {3}).varint(2, 6).packed_varints(5, {-7, 0, 9});
  const OnnxTensor i = parse_onnx_tensor(int32s.bytes(), "t");
  EXPECT_EQ(i.value.dtype(), DType::I64);
  EXPECT_EQ(i.value.to_vector(), (std::vector<double>{-7, 0, 9}));
  const OnnxTensor f = parse_onnx_tensor(float_tensor("w", {2, 1}, {0.25f, 4.0f}).bytes(), "t");
  EXPECT_EQ(f.name, "w");
  EXPECT_EQ(shape_str(f.value.shape()), "[2, 1]");
  EXPECT_EQ(f.value.to_vector(), (std::vector<double>{0.25, 4.0}));
}

// A weight in an external data file beside the model: read at its offset; a location outside
// the folder or bytes beyond the file's end are Errors.
TEST(OnnxImport, ExternalData) {
  TempDir tmp;
  const std::vector<float> values = {1, 2, 3, 4, 5, 6, 7, 8};
  std::string blob(16, 'x');
  blob.append(reinterpret_cast<const char*>(values.data()), 32);
  write_file_atomic((tmp.path / "weights.bin").string(), blob);
  auto model_with = [&](const std::string& location, const std::string& offset) {
    ProtoWriter t;
    t.packed_varints(1, {2, 4}).varint(2, 1).string(8, "w");
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"location", location}, {"offset", offset}, {"length", "32"}}) {
      ProtoWriter entry;
      entry.string(1, key).string(2, value);
      t.message(13, entry);
    }
    t.varint(14, 1);
    const std::string path = (tmp.path / "m.onnx").string();
    write_file_atomic(path, model_bytes({node("mm", "MatMul", {"x", "w"}, {"y"})}, {t}, value_info("x", {-1, 2}), "y"));
    return path;
  };
  const ImportedGraph g = import_onnx(model_with("weights.bin", "16"));
  ASSERT_EQ(g.weights.size(), 1u);
  EXPECT_EQ(g.weights[0].second.transpose(0, 1).contiguous().to_vector(),
            (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}));
  expect_error([&] { import_onnx(model_with("../weights.bin", "16")); }, {"m.onnx", "'w'", "outside the model's folder"});
  expect_error([&] { import_onnx(model_with("/etc/passwd", "0")); }, {"outside the model's folder"});
  expect_error([&] { import_onnx(model_with("weights.bin", "20")); }, {"'w'", "beyond the end"});
  expect_error([&] { import_onnx(model_with("absent.bin", "0")); }, {"absent.bin"});
}

// ---------------------------------------------------------------- bad input

TEST(OnnxImport, UnknownOpNamesItsNode) {
  const std::string bytes = model_bytes({node("relu", "Relu", {"x"}, {"r"}), node("mystery_node", "FrobnicateV2", {"r"}, {"y"})},
                                        {}, value_info("x", {1, 2}), "y");
  EXPECT_EQ(error_of([&] { parse_onnx(bytes, "m.onnx", ""); }),
            "m.onnx: node 'mystery_node' (FrobnicateV2): op FrobnicateV2 is not supported (docs/onnx.md lists the "
            "ops scalpel imports)");
}

TEST(OnnxImport, CyclesAndMissingValues) {
  const std::string cycle = model_bytes({node("a", "Add", {"x", "q"}, {"p"}), node("b", "Relu", {"p"}, {"q"})}, {},
                                        value_info("x", {1, 2}), "q");
  EXPECT_EQ(error_of([&] { parse_onnx(cycle, "c.onnx", ""); }), "c.onnx: the graph has a cycle through node 'a' (Add)");
  const std::string missing = model_bytes({node("a", "Add", {"x", "ghost"}, {"y"})}, {}, value_info("x", {1, 2}), "y");
  EXPECT_EQ(error_of([&] { parse_onnx(missing, "m.onnx", ""); }),
            "m.onnx: node 'a' (Add) uses 'ghost', which no node makes and no input or initializer holds");
  // Out of order but acyclic is fine: the importer sorts.
  const std::string reversed = model_bytes({node("b", "Relu", {"p"}, {"y"}), node("a", "Sigmoid", {"x"}, {"p"})}, {},
                                           value_info("x", {1, 2}), "y");
  EXPECT_EQ(error_of([&] { parse_onnx(reversed, "r.onnx", ""); }), "");
}

TEST(OnnxImport, AbsurdTensorSizes) {
  ProtoWriter huge;
  huge.packed_varints(1, {1 << 20, 1 << 20, 1 << 20}).varint(2, 1).string(8, "huge");
  const std::string absurd = model_bytes({node("a", "Add", {"x", "huge"}, {"y"})}, {huge}, value_info("x", {1, 2}), "y");
  expect_error([&] { parse_onnx(absurd, "a.onnx", ""); }, {"a.onnx", "tensor 'huge'", "absurd size"});
  ProtoWriter short_data;
  short_data.packed_varints(1, {1000, 1000}).varint(2, 1).string(8, "big").string(9, "abcd");
  const std::string lying = model_bytes({node("a", "Add", {"x", "big"}, {"y"})}, {short_data}, value_info("x", {1, 2}), "y");
  EXPECT_EQ(error_of([&] { parse_onnx(lying, "l.onnx", ""); }),
            "l.onnx: tensor 'big': [1000, 1000] FLOAT needs 4000000 bytes of data, found 4");
  // A few bytes asking for a huge tensor or image: refused before anything is allocated.
  const std::string fill = model_bytes({node("shape", "Constant", {}, {"s"}, {tensor_attr("value", int_tensor("", {3}, {1 << 20, 1 << 20, 1 << 10}))}),
                                        node("fill", "ConstantOfShape", {"s"}, {"c"}), node("a", "Add", {"x", "c"}, {"y"})},
                                       {}, value_info("x", {1, 2}), "y");
  expect_error([&] { parse_onnx(fill, "f.onnx", ""); }, {"node 'fill' (ConstantOfShape)", "absurd shape"});
  const std::string resize = model_bytes({node("big", "Resize", {"x", "", "", "sizes"}, {"y"})},
                                         {int_tensor("sizes", {4}, {1, 3, 1 << 20, 1 << 20})}, value_info("x", {1, 3, 8, 8}), "y");
  expect_error([&] { parse_onnx(resize, "r.onnx", ""); }, {"node 'big' (Resize)", "absurd sizes"});
  ProtoWriter negative;
  negative.packed_varints(1, {-3}).varint(2, 1).string(8, "neg");
  expect_error([&] { parse_onnx(model_bytes({}, {negative}, value_info("x", {1}), "x"), "n.onnx", ""); },
               {"tensor 'neg'", "negative dimension"});
}

// Every strict prefix of a model file is one Error (no half-built graph); every byte flipped
// gives a spec or an Error, never a crash.
TEST(OnnxImport, TruncatedAndCorruptFiles) {
  const std::string bytes = small_cnn();
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW(parse_onnx(bytes.substr(0, n), "cut.onnx", ""), Error) << "prefix of " << n << " bytes";
  }
  for (size_t k = 0; k < bytes.size(); ++k) {
    for (const uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
      std::string corrupt = bytes;
      corrupt[k] = static_cast<char>(static_cast<uint8_t>(corrupt[k]) ^ flip);
      try {
        parse_onnx(corrupt, "flip.onnx", "");
      } catch (const Error&) {
      }
    }
  }
  TempDir tmp;
  const std::string path = (tmp.path / "cut.onnx").string();
  write_file_atomic(path, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { import_graph_file(path); }, {path, "truncated"});
}

}  // namespace
}  // namespace scalpel::models
