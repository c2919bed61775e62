#pragma once
// The model flags every command that runs a model shares, and the one function that turns
// them into a ready model:
//   --model M  --classes N  --width W  --activation A  --padding P  --in-channels C
//   --base-width B  --weights FILE  --weights-map names|order  --device cpu|cuda|cuda-emu
//   --conv-engine handwritten|cudnn[,MODULE=ENGINE...]
//
//   Args args("predict", "--model M --weights W ...");
//   add_model_flags(args);
//   ... command flags ...
//   if (!args.parse(argv)) return 0;
//   ModelSetup s = load_model_from_flags(args);   // built, weights loaded, on its device
//
// A scalpel checkpoint (models/checkpoint.h) as --weights supplies the model name, its options
// and class names, so `--model` and `--classes` may be left out; flags given explicitly win.
// A --classes that differs from the file's head (or a file without a head) is an error, except
// for train (TrainingLoad), where the head is replaced by a fresh one (models/weights.h):
// elsewhere a fresh head would be a random classifier. Notes about the load (a replaced head,
// the --weights-map order mapping) go to stderr.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/args.h"
#include "data/preprocess.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "tensor/device.h"
#include "tensor/gemm_bf16.h"

namespace scalpel::cli {

// Declares the model flags; `with_weights` adds --weights and --weights-map (summary and
// bench build untrained models and leave them out).
void add_model_flags(Args& args, bool with_weights = true);

struct ModelSetup {
  std::shared_ptr<models::Model> model;  // training mode, as create_model leaves it
  models::ModelInfo info;
  Device device;
  // From a scalpel checkpoint (empty / null / nullopt otherwise).
  std::vector<std::string> class_names;
  Json preprocess;
  std::optional<models::TrainingState> training;
};

// The options the flags give on top of `base` (a checkpoint's, or the defaults).
models::ModelOptions model_options_from_flags(const Args& args, models::ModelOptions base = {});

// Builds the model (without random initialization when weights follow), loads --weights when
// given and moves the model to --device. Commands that declared the flags without weights get
// an untrained model (random initialization from the default generator). `defaults` are the
// options the flags start from when --weights is not a scalpel checkpoint.
// What train asks on top: a head of another class count is freshly initialized, and a
// classifier without --classes gets `data_classes` outputs (the class folders; 0 = no say),
// over the defaults and a checkpoint's count alike.
struct TrainingLoad {
  int64_t data_classes = 0;
};
ModelSetup load_model_from_flags(const Args& args, const models::ModelOptions& defaults = {},
                                 const TrainingLoad* training = nullptr);

// Preprocessing as a checkpoint stores it: {"width", "height", "channels", "fit",
// "crop_fraction", "interp", "normalize"} (normalize = a preset name of data/transforms.h).
Json preprocess_to_json(const data::Preprocess& p);
data::Preprocess preprocess_from_json(const Json& json);
// The model's reference evaluation preprocessing (models/registry.h ModelInfo): short side to
// resize_size, centre crop input_size, its interpolation and normalization; gray images are
// replicated to `in_channels` = 3.
data::Preprocess default_preprocess(const models::ModelInfo& info, int64_t in_channels);
// What eval, predict, gradcam and serve feed the model: the checkpoint's preprocessing when it
// has one, else default_preprocess.
data::Preprocess eval_preprocess(const ModelSetup& s);

// --precision fp32|bf16 (predict, eval, bench, serve): bf16 runs the float GEMMs of inference
// (convolutions, linear layers) with bf16 operands and float sums (tensor/gemm_bf16.h).
void add_precision_flag(Args& args);

// What --precision `flag` runs with on `device` on a CPU with or without AVX512_BF16: bf16 on
// a CPU without it falls back to fp32 with `note` saying so (a script that asks for bf16 runs
// everywhere, and says where it did not get it); bf16 on a device other than the CPU, or an
// unknown value, is an error.
struct PrecisionChoice {
  MatmulPrecision precision = MatmulPrecision::fp32;
  std::string note;  // empty unless the request could not be honoured
};
PrecisionChoice choose_precision(const std::string& flag, Device device, bool cpu_has_bf16);

// choose_precision for this CPU, the note printed on stderr, the choice made process-wide
// (set_float32_matmul_precision). Returns the precision in effect.
MatmulPrecision apply_precision_flag(const Args& args, Device device);

}  // namespace scalpel::cli
