#pragma once
// Models written by other frameworks, read into a GraphSpec (models/graph.h) and its weights.
//
//   ImportedGraph g = import_graph_file(path);   // by content, not by extension
//   auto model = build_imported_model(g);        // a GraphModel with the weights loaded
//
// Containers and their readers:
//   Keras .h5 / .hdf5 full-model file   models/import/keras_h5.cpp  (tensor/io/hdf5.h)
//   Keras 3 .keras (zip: config.json + model.weights.h5)            models/import/keras_h5.cpp
//   TF.js layers model.json + shards    models/import/tfjs.cpp
//     (the Keras topology of .h5, .keras and model.json is translated by one builder,
//      models/import/keras_config.cpp)
//   ONNX .onnx                          models/import/onnx.cpp  (tensor/io/protobuf.h)
//   TFLite .tflite                      models/import/tflite.cpp (tensor/io/flatbuffer.h)
// Every reader refuses bad input (truncated file, unknown layer or op named with its node,
// config / weights mismatch, absurd sizes) with one Error naming the file and the culprit,
// and returns nothing half-built.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/graph.h"
#include "tensor/io/weights.h"

namespace scalpel::models {

struct ImportedGraph {
  GraphSpec spec;
  NamedTensors weights;  // "<node>.<param>" in scalpel's layout, as GraphModel names them
  std::vector<std::string> class_names;  // when the file names its outputs; else empty
  // Preprocessing the file states (as apps/model_flags.h stores it), else null: the user then
  // says it with --normalize and --size.
  Json preprocess;
};

// The format of `path` judged from its first bytes (and, for TF.js, a model.json with
// "modelTopology"): "keras-h5", "keras-zip", "tfjs", "onnx", "tflite", or "" for anything else
// (a torch.save or safetensors file: not a graph).
std::string graph_file_format(const std::string& path);

// Reads any of the formats above; Error naming the file for other files.
ImportedGraph import_graph_file(const std::string& path);

// A GraphModel of g.spec with g.weights loaded (strict: every parameter present, shapes equal).
std::shared_ptr<GraphModel> build_imported_model(const ImportedGraph& g, const ModelOptions& options = {});

}  // namespace scalpel::models
