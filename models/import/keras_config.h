#pragma once
// The Keras model config (the JSON of model.to_json(): an .h5 file's "model_config", a .keras
// file's config.json, a TF.js model.json's "modelTopology") translated into a GraphSpec
// (models/graph.h) and the recipe for its weights. One builder for the three containers:
//
//   KerasGraph g = keras_graph_from_config(config_json, {"keras", "model.h5"});
//   // g.weights lists every weight the file must hold, layer by layer in config order and,
//   // within a layer, in Keras' own order (Conv2D: kernel, bias; BatchNormalization: gamma,
//   // beta, moving_mean, moving_variance, each only when the layer has it). The container
//   // matches its tensors to that list (by position within a layer: Keras 2.0.x names the
//   // kernel of layer conv2d_1 "conv2d_1_1/kernel"; or by "<layer>/<param>" name), then:
//   std::vector<Tensor> stored = ...;          // stored[i] is g.weights[i], as the file has it
//   NamedTensors w = keras_weights_to_graph(g, stored, "model.h5");
//   // w: "<node>.<param>" in scalpel's layout (conv kernels [out, in/groups, kh, kw], Dense
//   // [out, in]), plus the constants the config itself fixes (Rescaling, BatchNormalization
//   // without scale/center, Normalization with its mean in the config).
//
// Sequential and Functional models are read (Keras 2's list form of inbound_nodes and Keras 3's
// dict form), nested models used as layers included (their layers are inlined). Activations
// are NCHW in the graph: a channels_last image tensor is kept as NCHW and every axis, padding
// and kernel is translated; a Flatten of such a map first transposes it back to NHWC so that
// the Dense weights after it keep Keras' order. Supported layers: docs/keras.md. Any other
// layer (Lambda, custom classes) is an Error naming the layer and its class.
#include <string>
#include <vector>

#include "models/graph.h"
#include "tensor/io/weights.h"
#include "tensor/json.h"

namespace scalpel::models {

// How a stored Keras tensor becomes the graph parameter.
enum class KerasWeightLayout {
  AsIs,             // vectors (bias, gamma, beta, moving statistics)
  ConvKernel,       // [kh, kw, in/groups, out] -> [out, in/groups, kh, kw]
  DepthwiseKernel,  // [kh, kw, in, mult] -> [in * mult, 1, kh, kw] (output channel c * mult + m)
  ConvTransposeKernel,  // [kh, kw, out, in] -> [in, out, kh, kw]
  DenseKernel,      // [in, out] -> [out, in]
  ChannelConstant,  // a per-channel vector -> the graph constant's broadcast shape
  ChannelStd,       // a Normalization variance -> max(sqrt(variance), 1e-7), broadcast shape
  Unused,           // read and checked but not part of the graph (Normalization's count)
};

struct KerasWeight {
  std::string layer;      // the Keras layer owning it (for a nested model's layer: its own name)
  std::string top_layer;  // the layer of the outermost model that holds it (the .h5 group name)
  std::string param;      // Keras' name within the layer: "kernel", "depthwise_kernel", "gamma", ...
  std::vector<int64_t> shape;  // the shape Keras stores (channels-last kernels)
  // Keras' trainable flag of the weight: false for moving statistics and frozen layers. A
  // nested model saves its trainable weights first, then the others (Keras 2).
  bool trainable = true;
  std::string target;     // "<node>.<param>" in the graph; "" for Unused
  KerasWeightLayout layout = KerasWeightLayout::AsIs;
  std::vector<int64_t> target_shape;  // the graph parameter's shape
};

struct KerasConfigOptions {
  std::string source = "keras";  // GraphSpec::source: "keras" or "tfjs"
  std::string what = "model";    // names the file in errors
  // The Keras that wrote the file (an .h5 file's "keras_version" attribute), "" when unknown.
  // Standalone Keras before 2.3 ran on TF1, whose bilinear resize used other coordinates.
  std::string keras_version;
};

struct KerasGraph {
  GraphSpec spec;
  std::vector<KerasWeight> weights;
  NamedTensors constants;  // graph parameters fixed by the config itself
};

// `config` is the model config: {"class_name": "Sequential"|"Functional"|"Model", "config":
// {...}}, or a .keras/.h5 wrapper holding it under "config"/"model_config". Error naming
// options.what and the layer (with its class) for anything unsupported or inconsistent.
KerasGraph keras_graph_from_config(const Json& config, const KerasConfigOptions& options = {});

// The graph's parameters from the stored tensors: stored[i] is g.weights[i] (any float dtype;
// its shape must be g.weights[i].shape). Error naming `what`, the layer and the weight on a
// count or shape mismatch; returns g.constants followed by the converted weights.
NamedTensors keras_weights_to_graph(const KerasGraph& g, const std::vector<Tensor>& stored,
                                    const std::string& what);

}  // namespace scalpel::models
