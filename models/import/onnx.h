#pragma once
// ONNX models (https://onnx.ai): ModelProto read with our own wire-format reader
// (tensor/io/protobuf.h) and translated into a GraphSpec plus weights (models/graph.h).
//
// Weights come from the graph's initializers and from Constant nodes; a TensorProto may hold
// raw_data, the typed fields (float, int32, int64, double, float16 / bfloat16 bits) or point to
// an external data file (data_location EXTERNAL: "location" relative to the model's folder,
// "offset", "length"; bounds-checked, and a location outside the folder is refused).
// Everything that depends only on constants and on static dimensions (Shape -> Gather ->
// Concat -> Reshape chains, Constant, Cast, ...) is evaluated at import; a dimension of any
// size (a dynamic batch or width) is carried symbolically, so a Reshape to [N, -1] built
// from Shape(x)[0] becomes reshape {shape [0, -1]}. The supported ops are onnx_supported_ops()
// (docs/onnx.md tells how each one maps); another op is an Error naming it and its node.
#include <string>
#include <string_view>
#include <vector>

#include "models/import/import.h"

namespace scalpel::models {

struct OnnxImportOptions {
  // Graph inputs fed as constants (by input name): the model then has one runtime input left.
  // The operator tests of ONNX feed several inputs; a model file normally needs none of this.
  NamedTensors constant_inputs;
  // The input is a plain tensor, not an image batch: the spec's input_shape is left empty, so
  // the GraphModel runs it as it is (no image dry run, no feature layer).
  bool tensor_input = false;
};

// `folder` is where external data files are looked up ("" = the current folder).
ImportedGraph import_onnx(const std::string& path, const OnnxImportOptions& options = {});
ImportedGraph parse_onnx(std::string_view bytes, const std::string& source, const std::string& folder,
                         const OnnxImportOptions& options = {});

// One serialized TensorProto (the input_*.pb / output_*.pb files of ONNX's tests).
struct OnnxTensor {
  std::string name;
  int data_type = 0;  // TensorProto.DataType: 1 float, 7 int64, 11 double, ...
  Tensor value;       // floating types as float32, integer and bool types as int64
};
OnnxTensor parse_onnx_tensor(std::string_view bytes, const std::string& source,
                             const std::string& folder = "");

// The op types (default domain) the importer translates, sorted.
const std::vector<std::string>& onnx_supported_ops();

// What a model file declares, without translating it (for tools and tests).
struct OnnxModelInfo {
  int64_t opset = 0;  // of the default domain
  std::vector<std::string> op_types;  // of every node, in file order ("domain:Op" outside it)
  std::vector<std::string> inputs;    // graph inputs that are not initializers
  std::vector<std::string> outputs;
};
OnnxModelInfo read_onnx_info(std::string_view bytes, const std::string& source);

}  // namespace scalpel::models
