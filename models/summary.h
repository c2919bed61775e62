#pragma once
// summary: the per-layer table of a network (Darknet prints one at load; Keras' model.summary).
//
// summarize() runs one forward pass in evaluation mode without gradients on a zero input and
// observes every module call through a forward hook (layers/module.h), so it reports what
// actually ran: output shapes for that input size and multiply-accumulates (MACs, each
// module's own work as Module::macs() counts it: Conv2d, ConvTranspose2d, Linear).
#include <string>
#include <vector>

#include "layers/module.h"

namespace scalpel::models {

struct SummaryRow {
  std::string name;         // dotted name ("layer1.0.conv1")
  std::string type;         // Module::type() ("Conv2d")
  std::string description;  // Module::describe() ("64->64, k3x3, s1x1, p1")
  int depth = 0;            // number of dots + 1
  Shape output;             // output of the last call; empty when not called through operator()
                            // (U-Net's two-input Up blocks: their children have rows)
  int64_t params = 0;       // parameters of the module and its children
  int64_t macs = 0;         // MACs of the module and its children, one forward pass
};

struct Summary {
  Shape input, output;
  std::vector<SummaryRow> rows;  // every module but the root, depth first (definition order)
  // Keras convention: trainable = parameters that require a gradient; non-trainable =
  // counted buffers (BatchNorm running mean/variance) + frozen parameters.
  int64_t total_params = 0, trainable_params = 0, non_trainable_params = 0;
  int64_t macs = 0;  // whole network
};

// Restores the module's training mode afterwards. Errors of the forward pass (input too
// small, wrong channels) propagate unchanged.
Summary summarize(nn::Module& model, const Shape& input_shape);

// The table (name indented by depth, type, output shape, params, MACs), rows deeper than
// max_depth left out (0 = all), then the lines
//   Total params: 25,610,152
//   Trainable params: 25,557,032
//   Non-trainable params: 53,120
//   MACs: 4,089,184,256
std::string format_summary(const Summary& summary, int max_depth = 0);

// 1234567 -> "1,234,567"
std::string thousands(int64_t value);

}  // namespace scalpel::models
