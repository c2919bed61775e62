#pragma once
// A model as a GraphSpec (models/graph.h) plus its weights, for the exporters.
//
// A GraphModel (an imported network) already is one: its spec and state dict are returned
// (with the file's trailing softmax, if any, so the export computes what the file did).
// A zoo model is walked through its known structure: one small function per block and per
// family (resnet, vgg, mobilenet v1/v2, efficientnet, densenet, inception, xception, unet)
// turns each layer module into its node (Conv2d -> conv2d, BatchNorm2d -> batch_norm, ...)
// and writes the glue its forward() does in code (residual add, concatenation, flatten, the
// squeeze-excite mul, U-Net's pad) as nodes of their own. Why a walk and not a tracer that
// records the ops a forward runs: the glue ops are plain functions (autograd/functions.h,
// layers/functional.h) called from a dozen forward()s; recording them would put hooks in those
// functions and an identity map from tensors to values (views from flatten and DenseNet's
// ChannelBuffer), for about the same number of lines as these walkers, with the risk spread
// over the op layer.
//
// The walk runs every layer on a probe input of the export size as it goes (so shape-
// dependent glue such as U-Net's padding, adaptive pooling and Keras SAME pooling is written
// for that size), and checks its result against model.forward() on the same input: a block
// whose forward() changed without its walker gets an Error naming the model, not a wrong file.
// The model is put in evaluation mode (dropout and stochastic depth vanish, the auxiliary
// classifier of Inception V3 is left out).
#include <string>

#include "models/graph.h"
#include "models/model.h"
#include "tensor/io/weights.h"

namespace scalpel::models {

struct ExportedGraph {
  GraphSpec spec;        // input "input", nodes named after the modules ("layer1_0_conv1")
  NamedTensors weights;  // "<node>.<param>", CPU float32
  Shape input_shape;     // [1, C, H, W] the graph was walked at
  Shape output_shape;    // the output at that input
};

// input_chw: [C, H, W] to export at. Error naming the model and module for a module type no
// walker knows, and when the walked graph disagrees with model.forward().
ExportedGraph model_to_graph(Model& model, const Shape& input_chw);

}  // namespace scalpel::models
