// scalpel summary: the per-layer table of a network (models/summary.h).
#include <cstdio>

#include "apps/cli.h"
#include "apps/model_flags.h"
#include "layers/modules.h"
#include "models/summary.h"
#include "tensor/error.h"

namespace scalpel::cli {
namespace {

int run_summary(const std::vector<std::string>& argv) {
  Args args("summary", "--model M [--classes N] [--size H W] [--depth D] | --weights FILE");
  add_model_flags(args);
  args.option("size", "input height and width (default: the model's input size)", "", 2)
      .option("batch", "batch size of the input", "1")
      .option("depth", "leave out rows nested deeper than this (0 = all)", "0");
  if (!args.parse(argv)) return 0;
  std::shared_ptr<models::Model> model;
  models::ModelInfo info;
  if (args.has("weights")) {  // a checkpoint or another framework's model file: its network
    const ModelSetup s = load_model_from_flags(args);
    model = s.model;
    info = s.info;
  } else {
    const std::string name = models::canonical_model_name(args.require("model"));
    const models::ModelOptions options = model_options_from_flags(args);
    nn::SkipInitGuard skip_init;  // the values do not matter for shapes and counts
    model = models::create_model(name, options);
    info = models::model_info(name, options);
  }
  const std::string& name = info.name;
  int64_t h = info.input_size, w = info.input_size;
  if (args.has("size")) {
    const auto hw = args.get_hw("size");
    h = hw[0];
    w = hw[1];
  }
  const int64_t batch = args.get_int("batch"), depth = args.get_int("depth");
  SCALPEL_CHECK(batch > 0, "--batch must be positive, got {}", batch);
  SCALPEL_CHECK(depth >= 0, "--depth must be >= 0, got {}", depth);
  const Device device = parse_device(args.get("device"));
  if (!device.is_cpu() && !args.has("weights")) model->to(device);
  const models::Summary summary = models::summarize(*model, {batch, model->in_channels(), h, w});
  std::printf("%s (%s layout), input %s\n", name.c_str(), info.layout.c_str(), shape_str(summary.input).c_str());
  std::fputs(models::format_summary(summary, static_cast<int>(depth)).c_str(), stdout);
  return 0;
}

SCALPEL_REGISTER_COMMAND({"summary", "per-layer table: output shapes, parameters, MACs", run_summary});

}  // namespace
}  // namespace scalpel::cli
