#pragma once
// scalpel's own checkpoints: one safetensors file (tensor/io/safetensors.h) holding
//   - the model's state dict under its PyTorch names ("layer1.0.conv1.weight", ...,
//     num_batches_tracked included), so that in PyTorch
//       model.load_state_dict(safetensors.torch.load_file(path))
//     works for a checkpoint without training state (what `scalpel convert` writes); with
//     training state, drop the "training/" entries first:
//       {k: v for k, v in load_file(path).items() if not k.startswith("training/")}
//   - the optimizer state (nn::Optimizer::state_dict()) as "training/optimizer/<name>";
//   - "__metadata__" strings: "format" = "scalpel", "format_version" = "1", "model" (registry
//     name, or "graph" for an imported network: then "graph" holds its GraphSpec as JSON,
//     models/graph.h), "options" (ModelOptions as JSON), "classes" (JSON array of class names),
//     "preprocess" (JSON object, see apps/model_flags.h) and, with training state, "training"
//     (JSON: step, epoch, optimizer name, scheduler spec, RNG state as exact hex, extra).
// Written atomically (temporary file, fsync, rename: a crash mid-save keeps the old file).
#include <optional>
#include <string>
#include <vector>

#include "models/model.h"
#include "tensor/io/weights.h"
#include "tensor/json.h"
#include "tensor/random.h"

namespace scalpel::models {

// What exact resume needs besides the model's weights.
struct TrainingState {
  int64_t step = 0;   // optimizer steps taken
  int64_t epoch = 0;  // epochs completed
  std::string optimizer;                        // nn::Optimizer::name()
  std::vector<nn::NamedTensor> optimizer_state;  // nn::Optimizer::state_dict()
  std::string scheduler;                        // the schedule spec (nn::parse_schedule)
  Generator::State rng{};                       // e.g. default_generator().get_state()
  Json extra = Json::object();                  // anything else the trainer wants back
};

struct CheckpointInfo {
  std::string model;  // registry name, or "graph"
  ModelOptions options;
  std::vector<std::string> class_names;  // in index order; empty when unnamed
  Json preprocess;                       // null when unknown
  Json graph;  // the GraphSpec of model "graph" (read_checkpoint fills it; save takes the model's); else null
};

struct Checkpoint {
  CheckpointInfo info;
  NamedTensors model;  // the state dict, file order
  std::optional<TrainingState> training;
};

// Saves model.state_dict() (CPU copies) with `info` and, when given, the training state. A
// GraphModel is saved as model "graph" with its spec, whatever info.model says.
void save_checkpoint(const std::string& path, const Model& model, const CheckpointInfo& info,
                     const TrainingState* training = nullptr);

// Reads any weights file: a scalpel checkpoint gives its info and training state; any other
// file (torch.save, a foreign safetensors file) is returned as `nullopt` so the caller falls
// back to load_weights_file(). Error naming the file for a malformed scalpel checkpoint
// (unknown format_version, bad metadata JSON) and, as load_weights_file, for NaN/Inf values.
std::optional<Checkpoint> read_checkpoint(const std::string& path);

// ModelOptions <-> JSON (unset optional options are left out).
Json options_to_json(const ModelOptions& options);
ModelOptions options_from_json(const Json& json);  // Error naming an unknown key

}  // namespace scalpel::models
