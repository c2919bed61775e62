#pragma once
// The Keras containers of HDF5 weights (tensor/io/hdf5.h); the topology goes through the one
// Keras config builder (models/import/keras_config.h). import_graph_file dispatches here.
//
// Full-model .h5 (Keras 2 / tf.keras model.save("m.h5")): root attribute "model_config" (the
// model's JSON) and group "model_weights" whose attribute "layer_names" lists the layers and
// each layer group's "weight_names" its weights. A layer's weights are taken by position in
// weight_names (Keras 2.0.x stores layer conv2d_1's kernel as "conv2d_1_1/kernel:0"); their
// number must be the config's, their shapes too: otherwise one Error naming the layer.
//
// Keras 3 .keras (a zip): config.json and model.weights.h5, whose weights sit in
// "layers/<snake_case class>[_k]/vars/<i>" (Keras names the group after the class, counting
// repeats: conv2d, conv2d_1, ...; a nested model's layers under its own ".../layers/").
//
// Weights-only .h5 (model.save_weights("w.h5"): the layer groups at the root, no config): no
// graph; keras_h5_weights_for_model maps its layers onto a zoo model by order.
#include <string>

#include "layers/module.h"
#include "models/import/import.h"

namespace scalpel::models {

ImportedGraph import_keras_h5(const std::string& path);
ImportedGraph import_keras_zip(const std::string& path);

// The weights of a weights-only Keras .h5 file as `model`'s state dict (names and layout of
// scalpel), ready for load_weights (models/weights.h). The file's layers that hold weights, in
// the file's order (its "layer_names"), are paired with the model's modules that hold
// parameters, in definition order:
//   Conv2D (kernel [kh, kw, in, out], bias)       one Conv2d
//   DepthwiseConv2D (depthwise_kernel, bias)       one depthwise Conv2d
//   SeparableConv2D (depthwise_kernel, pointwise_kernel, bias)   two Conv2d: depthwise, 1x1
//   BatchNormalization (gamma, beta, moving_mean, moving_variance; gamma/beta may be absent)
//                                                  one BatchNorm2d
//   Dense (kernel [in, out], bias)                 one Linear; after a conv whose C channels
//                                                  divide `in` by S > 1, the Dense is taken to
//                                                  read a flattened map: Keras' (H, W, C) rows
//                                                  are reordered to scalpel's (C, H, W)
// Kernels are transposed to scalpel's layout. Error naming the file, the first Keras layer that
// does not fit and the module it met (or the one left over), before anything is loaded.
NamedTensors keras_h5_weights_for_model(const std::string& path, nn::Module& model);

}  // namespace scalpel::models
