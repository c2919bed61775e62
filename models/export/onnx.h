#pragma once
// ONNX export: a GraphSpec (models/graph.h) and its weights written as an ONNX ModelProto with
// our own protobuf wire-format writer (tensor/io/protobuf_writer.h), no libprotobuf.
//
//   ExportedGraph g = zoo_to_graph(*model, {3, 224, 224});   // models/export/zoo_graph.h
//   fold_batchnorm(g.spec, g.weights);                        // --fused (optional)
//   write_onnx("model.onnx", g.spec, g.weights, input_shape, output_shape, options);
//
// Each op of the GraphSpec vocabulary becomes one ONNX node, or a few where ONNX has no single
// op (silu: Sigmoid, Mul; gelu: the erf form; hard_swish below opset 14; a linear on more than
// two axes: MatMul, Add; a global pool that drops the 1x1 axes: then Flatten). Weights are
// initializers named "<node>.<param>" (raw little-endian float32), so an importer reading the
// file back gets the GraphModel's own parameter names. The graph's input and output carry
// their shapes; with dynamic_batch the first axis of both is the symbol "N".
#include <string>
#include <utility>
#include <vector>

#include "models/graph.h"
#include "tensor/io/weights.h"

namespace scalpel::models {

struct OnnxOptions {
  int64_t opset = 17;  // opset_import of the default domain: 13 .. 21 (ONNX Runtime 1.20 runs them all)
  bool dynamic_batch = false;
  // metadata_props, in order (e.g. "classes" -> JSON array, "preprocess" -> JSON object).
  std::vector<std::pair<std::string, std::string>> metadata;
  std::string producer_version;  // optional
};

// The smallest and largest opset write_onnx accepts.
inline constexpr int64_t kOnnxMinOpset = 13, kOnnxMaxOpset = 21;

// The serialized ModelProto. input_shape [N, C, H, W] and output_shape are the shapes at
// batch N (the batch axis is written as "N" with dynamic_batch). Error naming the node for an
// op the exporter does not know or a weight that is missing, and naming the opset when it is
// out of range.
std::string onnx_model_bytes(const GraphSpec& spec, const NamedTensors& weights, const Shape& input_shape,
                             const Shape& output_shape, const OnnxOptions& options = {});
// The same, written atomically to `path` (tensor/atomic_file.h).
void write_onnx(const std::string& path, const GraphSpec& spec, const NamedTensors& weights, const Shape& input_shape,
                const Shape& output_shape, const OnnxOptions& options = {});

// Folds every batch_norm whose input is a conv2d's output used by nothing else into that conv
// (W' = s W, b' = s (b - mean) + beta with s = gamma / sqrt(var + eps); models/fuse.h does the
// same on modules): the conv takes over the batch_norm's output name and gains a bias, the
// batch_norm node and its weights go. Other batch_norms (DenseNet's after a concatenation,
// pre-activation ResNets') stay. Returns how many were folded.
int64_t fold_batchnorm(GraphSpec& spec, NamedTensors& weights);

}  // namespace scalpel::models
