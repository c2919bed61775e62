// scalpel export: a model and its weights -> an ONNX file (models/export/onnx.h), for ONNX
// Runtime, TensorRT and the other runtimes that read ONNX.
#include <cstdio>

#include "apps/cli.h"
#include "apps/model_flags.h"
#include "models/export/onnx.h"
#include "models/graph.h"
#include "models/export/zoo_graph.h"
#include "tensor/error.h"

namespace scalpel::cli {
namespace {

int run_export(const std::vector<std::string>& argv) {
  Args args("export", "--weights CKPT --format onnx --out model.onnx [--opset 17] [--dynamic-batch] [--fused]");
  add_model_flags(args);
  args.option("format", "output format: onnx", "onnx")
      .option("out", "the file to write")
      .option("opset", fmt::format("ONNX opset to write ({}..{})", models::kOnnxMinOpset, models::kOnnxMaxOpset), "17")
      .flag("dynamic-batch", "the batch axis of the input and output is the symbol N (any batch size)")
      .flag("fused", "fold each BatchNorm that follows a conv into the conv's weights")
      .option("size", "input height and width (default: the checkpoint's preprocessing size)", "", 2);
  if (!args.parse(argv)) return 0;
  SCALPEL_CHECK(!args.get("weights").empty(), "--weights is required for 'scalpel export' (see scalpel export --help)");
  const std::string format = args.get("format");
  SCALPEL_CHECK(format == "onnx", "--format {}: scalpel exports onnx only", format);
  const std::string out = args.require("out");
  models::OnnxOptions options;
  options.opset = args.get_int("opset");
  SCALPEL_CHECK(options.opset >= models::kOnnxMinOpset && options.opset <= models::kOnnxMaxOpset,
                "--opset {}: the exporter writes opsets {} to {}", options.opset, models::kOnnxMinOpset,
                models::kOnnxMaxOpset);
  options.dynamic_batch = args.has("dynamic-batch");

  ModelSetup s = load_model_from_flags(args);
  s.model->to(Device::cpu());
  const data::Preprocess p = eval_preprocess(s);
  int64_t h = p.height, w = p.width;
  if (args.has("size")) {
    const auto hw = args.get_hw("size");
    h = hw[0];
    w = hw[1];
  }

  models::ExportedGraph g = models::model_to_graph(*s.model, {s.model->in_channels(), h, w});
  const int64_t folded = args.has("fused") ? models::fold_batchnorm(g.spec, g.weights) : 0;

  const auto* graph = dynamic_cast<const models::GraphModel*>(s.model.get());
  const bool ends_in_softmax = graph && graph->ends_in_softmax();
  Json classes = Json::array();
  for (const std::string& name : s.class_names) classes.push_back(name);
  options.metadata = {{"model", s.model->name()},
                      {"options", models::options_to_json(s.model->options()).dump()},
                      {"classes", classes.dump()},
                      {"preprocess", preprocess_to_json(p).dump()},
                      {"input", "float32 NCHW, preprocessed as 'preprocess' says"},
                      {"output", ends_in_softmax ? "probabilities (the imported network's softmax)" : "logits (no softmax)"}};
  models::write_onnx(out, g.spec, g.weights, g.input_shape, g.output_shape, options);
  std::printf("wrote %s (%s, opset %lld, %zu nodes%s, input %s%s)\n", out.c_str(), s.model->name().c_str(),
              static_cast<long long>(options.opset), g.spec.nodes.size(),
              args.has("fused") ? fmt::format(", {} BatchNorms folded", folded).c_str() : "",
              shape_str(g.input_shape).c_str(), options.dynamic_batch ? ", batch N" : "");
  return 0;
}

SCALPEL_REGISTER_COMMAND({"export", "export a model to ONNX (ONNX Runtime, TensorRT, ...)", run_export});

}  // namespace
}  // namespace scalpel::cli
