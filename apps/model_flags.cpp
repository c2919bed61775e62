#include "apps/model_flags.h"

#include <algorithm>
#include <cstdio>

#include "cuda/conv_library.h"
#include "cuda/cudnn.h"
#include "layers/modules.h"
#include "models/graph.h"
#include "models/import/import.h"
#include "models/import/keras_h5.h"
#include "models/registry.h"
#include "models/weights.h"
#include "tensor/error.h"

namespace scalpel::cli {

void add_model_flags(Args& args, bool with_weights) {
  args.option("model", with_weights ? "network name (scalpel models lists them); optional when --weights is a scalpel "
                                      "checkpoint, which names its model"
                                    : "network name (scalpel models lists them)")
      .option("classes", "classifier outputs (default: the checkpoint's, else 1000; train: one per class folder); "
                         "unet: mask channels, 1 = binary with a sigmoid (train's default for unet), K >= 2 = "
                         "softmax over K classes")
      .option("width", "mobilenet_v1: 0.25|0.5|0.75|1.0; mobilenet_v2: width multiplier")
      .option("activation", "mobilenet_v1: relu6|relu|leaky_relu:<slope>")
      .option("padding", "mobilenet_v1: keras|torch")
      .option("in-channels", "input image channels (default 3)")
      .option("base-width", "unet: channels of the first level (default 64)")
      .option("aux-logits", "inception_v3: the auxiliary classifier, true|false (default true)")
      .option("stem", "resnet18..152: imagenet (7x7/2 conv + max pool) | small (3x3/1 conv, no pool: MedMNIST's "
                      "ResNet for 28x28 images)")
      .option("dropout", "classifier dropout probability (default: the model's, e.g. 0.2 for mobilenet_v2)");
  if (with_weights) {
    args.option("weights", "weights file: torch.save (.pt/.pth/.tar), .safetensors or a scalpel checkpoint; or a "
                           "whole model written by another framework (Keras .h5/.keras, TF.js model.json, ONNX, "
                           "TFLite), then without --model")
        .option("weights-map", "names: by name (torchvision 1:1, timm via a table); order: by position and shape",
                "names")
        .option("normalize", "imported models: input normalization when the file does not state it: "
                             "imagenet|tf|unit|caffe|none (default unit, [0, 1])");
  }
  args.option("device", "cpu|cuda|cuda-emu", "cpu")
      .option("conv-engine", "convolutions on --device cuda: handwritten|cudnn, optionally followed by "
              "per-layer overrides MODULE=ENGINE (e.g. cudnn,layer1.0.conv1=handwritten)", "handwritten");
}

models::ModelOptions model_options_from_flags(const Args& args, models::ModelOptions base) {
  if (args.has("classes")) base.classes = args.get_int("classes");
  if (args.has("in-channels")) base.in_channels = args.get_int("in-channels");
  if (args.has("width")) base.width = args.get_double("width");
  if (args.has("dropout")) base.dropout = args.get_double("dropout");
  if (args.has("activation")) base.activation = args.get("activation");
  if (args.has("padding")) base.padding = args.get("padding");
  if (args.has("base-width")) base.base_width = args.get_int("base-width");
  if (args.has("aux-logits")) {
    const std::string aux = args.get("aux-logits");
    SCALPEL_CHECK(aux == "true" || aux == "false", "--aux-logits must be true or false, got '{}'", aux);
    base.aux_logits = aux == "true";
  }
  if (args.has("stem")) base.stem = args.get("stem");
  return base;
}

namespace {

// --conv-engine (cuda/conv_library.h): checked against the device before any work runs, so
// asking for cuDNN under cuda-emu or without cuDNN fails at once; overrides are bound to the
// named convolutions' weights.
void apply_conv_engine_flag(const std::string& text, nn::Module& model, Device device) {
  const cuda::ConvLibrarySpec spec = cuda::parse_conv_library_spec(text);
  if (spec.uses(ConvLibrary::Cudnn)) cuda::cudnn::require(device);
  const std::vector<nn::NamedTensor> params = model.named_parameters();
  for (const auto& [module, engine] : spec.layers) {
    const auto it = std::find_if(params.begin(), params.end(),
                                 [&](const nn::NamedTensor& p) { return p.name == module + ".weight"; });
    SCALPEL_CHECK(it != params.end() && it->tensor.dim() == 4, "--conv-engine: the model has no "
                  "convolution named '{}' (module names as `scalpel summary` prints them)", module);
    cuda::set_layer_conv_library(it->tensor, engine);
  }
  cuda::set_conv_library(spec.global);
}

// What the zoo's ModelInfo says for an imported network: its declared input size (224 where
// dynamic), the whole image resized to it (Keras pipelines do not crop), bilinear.
models::ModelInfo graph_info(const models::GraphModel& model, const std::string& normalize) {
  const models::GraphSpec& spec = model.spec();
  models::ModelInfo info;
  info.name = model.name();
  info.task = "classification";
  info.layout = spec.source;
  info.input_size = spec.input_shape[1] > 0 ? spec.input_shape[1] : 224;
  info.resize_size = info.input_size;
  info.interpolation = "bilinear";
  info.preprocess = normalize;
  return info;
}

// A network read from another framework's file, or a scalpel checkpoint of one: the file
// holds the graph, so --model and the architecture flags do not apply.
void load_graph_model(ModelSetup& s, const Args& args, const std::string& weights,
                      std::optional<models::Checkpoint>& checkpoint) {
  SCALPEL_CHECK(!checkpoint || !args.has("model"), "--model {}: {} holds an imported network (leave --model out)",
                args.has("model") ? args.get("model") : "", weights);
  for (const char* flag : {"width", "activation", "padding", "in-channels", "base-width", "aux-logits", "stem"})
    SCALPEL_CHECK(!args.has(flag), "--{}: {} holds a whole network; architecture flags do not apply to it", flag,
                  weights);
  const std::string normalize = args.has("normalize") ? args.get("normalize") : "unit";
  data::normalization_preset(normalize);  // Error naming an unknown preset
  models::ModelOptions options = model_options_from_flags(args, checkpoint ? checkpoint->info.options : models::ModelOptions{});
  if (checkpoint) {
    auto model = std::make_shared<models::GraphModel>(models::GraphSpec::from_json(checkpoint->info.graph, weights),
                                                      options);
    std::vector<nn::NamedTensor> state;
    for (auto& [name, t] : checkpoint->model) state.push_back({name, t});
    model->load_state_dict(state);
    s.class_names = checkpoint->info.class_names;
    s.preprocess = checkpoint->info.preprocess;
    s.training = std::move(checkpoint->training);
    s.info = graph_info(*model, normalize);
    s.model = model;
  } else {
    models::ImportedGraph g = models::import_graph_file(weights);
    auto model = models::build_imported_model(g, options);
    model->train();
    s.class_names = g.class_names;
    s.info = graph_info(*model, normalize);
    s.preprocess = g.preprocess;
    if (s.preprocess.is_null()) {
      if (!args.has("normalize"))
        std::fprintf(stderr, "note: %s does not state its input normalization; using unit ([0, 1]): set --normalize "
                             "imagenet|tf|unit|caffe|none\n", weights.c_str());
      data::Preprocess p = default_preprocess(s.info, model->in_channels());
      p.fit = data::Fit::stretch;
      s.preprocess = preprocess_to_json(p);
    }
    s.model = model;
  }
  const int64_t classes = s.model->options().classes;
  SCALPEL_CHECK(!args.has("classes") || args.get_int("classes") == classes,
                "--classes {}: {} has {} outputs (changing the head of an imported network is not supported)",
                args.get_int("classes"), weights, classes);
}

}  // namespace

ModelSetup load_model_from_flags(const Args& args, const models::ModelOptions& defaults,
                                 const TrainingLoad* training) {
  // Commands that declared the flags without --weights (bench) build an untrained model.
  const bool with_weights = args.declares("weights");
  const std::string weights = with_weights ? args.get("weights") : "";
  const models::WeightsMap map = with_weights ? models::parse_weights_map(args.get("weights-map")) : models::WeightsMap::names;
  ModelSetup s;
  s.device = parse_device(args.get("device"));
  std::optional<models::Checkpoint> checkpoint;
  // Another framework's file (Keras, TF.js, ONNX, TFLite) is no checkpoint: read_checkpoint
  // would refuse its format.
  const bool foreign = !weights.empty() && !models::graph_file_format(weights).empty();
  if (!weights.empty() && !foreign) checkpoint = models::read_checkpoint(weights);
  const bool graph = checkpoint ? checkpoint->info.model == "graph" : foreign && !args.has("model");
  if (graph) {
    load_graph_model(s, args, weights, checkpoint);
    if (!s.device.is_cpu()) s.model->to(s.device);
    apply_conv_engine_flag(args.get("conv-engine"), *s.model, s.device);
    return s;
  }

  std::string name;
  if (checkpoint) {
    name = args.has("model") ? models::canonical_model_name(args.get("model")) : checkpoint->info.model;
    SCALPEL_CHECK(name == checkpoint->info.model, "--model {}: the checkpoint {} holds a {}", name, weights,
                  checkpoint->info.model);
  } else {
    name = models::canonical_model_name(args.require("model"));  // Keras names too (DenseNet201)
  }
  models::ModelOptions options = model_options_from_flags(args, checkpoint ? checkpoint->info.options : defaults);
  if (training && training->data_classes > 0 && !args.has("classes") &&
      models::model_info(name, options).task == "classification")
    options.classes = training->data_classes;
  {
    // Weights overwrite the random initialization: skip it (seconds for the VGGs).
    std::optional<nn::SkipInitGuard> skip_init;
    if (!weights.empty()) skip_init.emplace();
    s.model = models::create_model(name, options);
  }
  s.info = models::model_info(name, options);

  if (!weights.empty()) {
    // A Keras .h5 given with --model is a weights-only file (model.save_weights): its layers
    // map onto the zoo model by order (models/import/keras_h5.h).
    const NamedTensors tensors = checkpoint ? std::move(checkpoint->model)
                                 : models::graph_file_format(weights) == "keras-h5"
                                     ? models::keras_h5_weights_for_model(weights, *s.model)
                                     : load_weights_file(weights);
    const models::LoadResult r = models::load_weights(*s.model, tensors, weights, map);
    if (r.naming == "order") {
      std::fprintf(stderr, "--weights-map order: %zu tensors of %s loaded by position:\n", r.mapping.size(),
                   weights.c_str());
      for (const auto& [from, to] : r.mapping) std::fprintf(stderr, "  %s -> %s\n", from.c_str(), to.c_str());
    } else if (r.naming == "timm") {
      std::fprintf(stderr, "note: %s has timm names; mapped %zu tensors onto %s (see models/weights.h)\n",
                   weights.c_str(), r.mapping.size(), name.c_str());
    }
    if (r.head_replaced) {
      const std::string from = r.file_classes ? fmt::format("a {}-class head", r.file_classes) : "no head";
      SCALPEL_CHECK(training != nullptr,
                    "--classes {}: {} has {}; only train replaces a head (a fresh one is a random classifier): "
                    "leave --classes out, or fine-tune with scalpel train --weights {} --classes {}",
                    options.classes, weights, from, weights, options.classes);
      std::fprintf(stderr,
                   "note: %s has %s; every layer but the head '%s' loaded, the head is freshly initialized for "
                   "%lld classes\n",
                   weights.c_str(), from.c_str(), s.model->head_name().c_str(),
                   static_cast<long long>(options.classes));
    }
    if (checkpoint) {
      if (!r.head_replaced) s.class_names = checkpoint->info.class_names;
      s.preprocess = checkpoint->info.preprocess;
      s.training = std::move(checkpoint->training);
    }
  }
  if (!s.device.is_cpu()) s.model->to(s.device);
  apply_conv_engine_flag(args.get("conv-engine"), *s.model, s.device);
  return s;
}

data::Preprocess eval_preprocess(const ModelSetup& s) {
  return s.preprocess.is_null() ? default_preprocess(s.info, s.model->in_channels()) : preprocess_from_json(s.preprocess);
}

namespace {

const char* interp_name(data::Interp interp) {
  switch (interp) {
    case data::Interp::nearest: return "nearest";
    case data::Interp::bilinear: return "bilinear";
    case data::Interp::bicubic: return "bicubic";
    case data::Interp::area: return "area";
  }
  return "bilinear";
}

const char* fit_name(data::Fit fit) {
  switch (fit) {
    case data::Fit::stretch: return "stretch";
    case data::Fit::crop: return "crop";
    case data::Fit::letterbox: return "letterbox";
  }
  return "stretch";
}

}  // namespace

Json preprocess_to_json(const data::Preprocess& p) {
  Json j = Json::object();
  j["width"] = p.width;
  j["height"] = p.height;
  j["channels"] = p.channels;
  j["fit"] = fit_name(p.fit);
  j["crop_fraction"] = p.crop_fraction;
  j["interp"] = interp_name(p.interp);
  j["normalize"] = p.norm.name;
  return j;
}

data::Preprocess preprocess_from_json(const Json& j) {
  data::Preprocess p;
  p.width = static_cast<int>(j.at("width").as_int());
  p.height = static_cast<int>(j.at("height").as_int());
  p.channels = static_cast<int>(j.at("channels").as_int());
  p.fit = data::parse_fit(j.at("fit").as_string());
  p.crop_fraction = j.at("crop_fraction").as_number();
  p.interp = data::parse_interp(j.at("interp").as_string());
  p.norm = data::normalization_preset(j.at("normalize").as_string());
  return p;
}

data::Preprocess default_preprocess(const models::ModelInfo& info, int64_t in_channels) {
  data::Preprocess p;
  p.width = p.height = static_cast<int>(info.input_size);
  p.channels = static_cast<int>(in_channels);
  p.fit = data::Fit::crop;
  p.crop_fraction = static_cast<double>(info.input_size) / static_cast<double>(info.resize_size);
  p.interp = data::parse_interp(info.interpolation);
  p.norm = data::normalization_preset(info.preprocess);
  return p;
}

void add_precision_flag(Args& args) {
  args.option("precision",
              "fp32|bf16: bf16 runs the convolutions' and linear layers' products with bfloat16 operands and "
              "float sums (AVX512_BF16; --device cpu only; a CPU without it runs fp32 and says so)",
              "fp32");
}

PrecisionChoice choose_precision(const std::string& flag, Device device, bool cpu_has_bf16) {
  SCALPEL_CHECK(flag == "fp32" || flag == "bf16", "--precision must be fp32 or bf16, got '{}'", flag);
  if (flag == "fp32") return {};
  SCALPEL_CHECK(device.is_cpu(), "--precision bf16 runs on --device cpu only (got --device {})", device.str());
  if (!cpu_has_bf16)
    return {MatmulPrecision::fp32,
            fmt::format("note: --precision bf16: this CPU ({}) has no AVX512_BF16 (vdpbf16ps); running in fp32",
                        cpu_features().model_name)};
  return {MatmulPrecision::bf16, ""};
}

MatmulPrecision apply_precision_flag(const Args& args, Device device) {
  const PrecisionChoice choice = choose_precision(args.get("precision"), device, bf16_gemm_supported());
  if (!choice.note.empty()) std::fprintf(stderr, "%s\n", choice.note.c_str());
  set_float32_matmul_precision(choice.precision);
  return choice.precision;
}

}  // namespace scalpel::cli
