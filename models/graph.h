#pragma once
// GraphModel: a network read from another framework's file (Keras .h5/.keras, TF.js, ONNX,
// TFLite) or exported from scalpel, run as a zoo Model (predict, eval, gradcam, serve, train).
//
// The file's importer (models/import/) translates it once into a GraphSpec, scalpel's own small
// graph language below, plus named weights in scalpel's layout (NCHW activations, PyTorch conv
// weights [out, in/groups, kH, kW]: channels-last weights are transposed at import, not at run
// time). One builder turns any spec into modules, so the importers share every op, and a
// GraphSpec is plain JSON: a scalpel checkpoint of an imported model stores it beside the
// weights ("graph" metadata, models/checkpoint.h), and exporters (models/export/) read it.
//
//   ImportedGraph g = import_graph_file("model.h5");          // models/import/import.h
//   auto model = std::make_shared<GraphModel>(g.spec);         // modules with empty weights
//   model->load_state_dict(to_named(g.weights));               // "<node>.<param>" names
//
// Nodes run in the order given (a topological order: every input is the graph input or the
// output of an earlier node). Each node is a child module named after the node, so its
// parameters are "<node>.weight", "<node>.bias", ... and summary/Grad-CAM see every node.
//
// ---- the op vocabulary (attrs is a JSON object; [a, b] are arrays of integers) ----
// Parametric (parameters in brackets, all float):
//   conv2d            in_channels, out_channels, kernel [kh, kw], stride [1, 1], dilation [1, 1],
//                     groups 1, pads [top, left, bottom, right] (default 0) or same: true (TF
//                     "SAME", resolved per input size, extra pixel bottom/right), bias true
//                     [weight [out, in/groups, kh, kw], bias [out] when bias]
//   conv_transpose2d  in_channels, out_channels, kernel, stride, dilation, groups,
//                     pads [t, l, b, r] (cropped from the full output), output_padding [0, 0],
//                     bias  [weight [in, out/groups, kh, kw], bias [out]]
//   batch_norm        channels, eps (as written: Keras 1e-3, PyTorch 1e-5), momentum 0.1
//                     [weight, bias, running_mean, running_var: all [channels]; an importer
//                     writes ones / zeros for Keras scale=false / center=false]
//   linear            in_features, out_features, bias true: y = x W^T + b over the last axis
//                     [weight [out, in], bias [out]]
//   constant          a fixed tensor (not trained)  [value: any shape]
// Activations (one input): relu, relu6, clip {min, max: absent = unbounded},
//   leaky_relu {slope}, elu {alpha 1}, sigmoid, hard_sigmoid {alpha 0.2, beta 0.5:
//   clip(alpha x + beta, 0, 1), ONNX/Keras; PyTorch's is alpha 1/6}, hard_swish
//   (x relu6(x + 3) / 6), tanh, silu (swish), gelu, softmax {axis -1}, identity,
//   dropout {rate} (identity in eval mode, inverted dropout in training)
// Elementwise, two inputs with NumPy broadcasting: add, sub, mul, div, max, min
// Pooling (NCHW): max_pool2d / avg_pool2d {kernel, stride (default kernel), pads [t, l, b, r]
//   or same: true, ceil_mode false, count_include_pad false}, global_avg_pool / global_max_pool
//   {keepdims false: [N, C] else [N, C, 1, 1]}, reduce_mean / reduce_max {axes, keepdims true}
// Shape (ONNX semantics): flatten {axis 1} -> 2-D, reshape {shape: 0 copies the input's
//   dimension, -1 is inferred}, transpose {perm}, squeeze {axes}, unsqueeze {axes},
//   concat {axis} (any number of inputs), slice {axis, start, end, step 1} (one axis; ends
//   clamped as NumPy), pad {pads [t, l, b, r], value 0, mode "constant"|"reflect"|"edge"},
//   matmul (two inputs, batched)
// Resampling: upsample {mode "nearest"|"bilinear", scale [sh, sw] or size [h, w] (size wins),
//   coordinates "half_pixel" (default; PyTorch align_corners=False, TF2 / tfjs
//   half_pixel_centers) | "align_corners" | "asymmetric" (nearest only: floor(i / scale),
//   PyTorch's nearest)}
// An op outside this list, a missing required attribute, a value used before it is made or a
// wrong parameter shape is an Error naming the node and op when the GraphModel is built.
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "tensor/json.h"

namespace scalpel::models {

struct GraphNode {
  std::string name;                 // unique, no '.' (it names a module): see graph_safe_name
  std::string op;                   // one of graph_ops()
  std::vector<std::string> inputs;  // value names: the graph input or earlier nodes' outputs
  std::string output;               // the one value it makes (unique in the graph)
  Json attrs = Json::object();
};

struct GraphSpec {
  std::string source;   // where it came from: "keras", "tfjs", "onnx", "tflite", "scalpel"
  std::string name;     // the file's model name (Keras model name, ONNX graph name), may be ""
  std::string input = "input";  // value name of the image batch [N, C, H, W]
  // [C, H, W] the file declares; 0 for a dimension of any size (dynamic).
  std::vector<int64_t> input_shape;
  std::string output;  // value name of the network's output
  std::vector<GraphNode> nodes;  // topological order

  Json to_json() const;
  // Error naming `what` (a file name) and the bad member.
  static GraphSpec from_json(const Json& json, const std::string& what = "graph");
};

// Every op name the builder knows, sorted (for docs and error messages).
const std::vector<std::string>& graph_ops();

// `name` made usable as a node / module name: every character outside [A-Za-z0-9_] becomes
// '_' (so "conv1/BiasAdd:0" -> "conv1_BiasAdd_0", "features.0" -> "features_0"), a leading
// digit or an empty name gets "n_" in front. Importers make names unique themselves.
std::string graph_safe_name(const std::string& name);

class GraphModel : public Model {
 public:
  // Builds the modules of every node with zero weights (load them with load_state_dict) and
  // checks the graph (see the vocabulary above); Error naming the node otherwise.
  // A spec whose output is a softmax over the channel axis runs without it: forward() returns
  // the logits before it, as every zoo model does (predict's softmax gives back the file's
  // probabilities; Grad-CAM works on logits). ends_in_softmax() tells.
  explicit GraphModel(GraphSpec spec, ModelOptions options = {});

  Tensor forward_head(const Tensor& features) override;
  const GraphSpec& spec() const { return spec_; }
  bool ends_in_softmax() const { return ends_in_softmax_; }
  // forward()'s output shape for one image of the declared input size (224 where dynamic);
  // options().classes is its size 1.
  const Shape& output_shape() const { return output_shape_; }
  // Runs the graph and returns every value by name (for tests that compare intermediate
  // tensors with a reference runtime, and for exporters).
  std::vector<std::pair<std::string, Tensor>> run_all(const Tensor& x);

 protected:
  Tensor features(const Tensor& x) override;

 private:
  struct Impl;
  GraphSpec spec_;
  bool ends_in_softmax_ = false;
  Shape output_shape_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace scalpel::models
