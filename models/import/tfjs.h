#pragma once
// TensorFlow.js layers models: model.json ("modelTopology": the Keras model config;
// "weightsManifest": groups of binary shard files, each group's shards concatenated in the order
// listed, its weights laid end to end in manifest order) and the shards beside it.
//
// Weights are float32, or quantized as the manifest's "quantization" says: float16, or
// uint8/uint16 affine (value = q * scale + min). Each weight is matched to its Keras layer by
// its name "<layer>/<param>" (as TF.js itself does). A missing or short shard, a group whose
// bytes do not add up, a weight no layer takes or a layer whose weight is absent is one Error
// naming the file and the weight; nothing is returned half-built.
#include <string>

#include "models/import/import.h"

namespace scalpel::models {

ImportedGraph read_tfjs_model(const std::string& model_json);

}  // namespace scalpel::models
