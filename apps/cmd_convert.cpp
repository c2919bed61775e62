// scalpel convert: any weights file the loader reads -> a scalpel checkpoint (safetensors with
// PyTorch names, see models/checkpoint.h).
#include <cstdio>
#include <sstream>

#include "apps/cli.h"
#include "apps/model_flags.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace scalpel::cli {
namespace {

int run_convert(const std::vector<std::string>& argv) {
  Args args("convert", "--model M --weights IN --out OUT.safetensors [--labels FILE]");
  add_model_flags(args);
  args.option("out", "the checkpoint to write (safetensors)")
      .option("labels", "class names to store, one per line");
  if (!args.parse(argv)) return 0;
  SCALPEL_CHECK(!args.get("weights").empty(), "--weights is required for 'scalpel convert' (see scalpel convert --help)");
  const std::string out = args.require("out");

  ModelSetup s = load_model_from_flags(args);
  models::CheckpointInfo info;
  info.model = s.model->name();
  info.options = s.model->options();
  info.class_names = s.class_names;
  if (args.has("labels")) {
    std::istringstream in(read_file(args.get("labels")));
    info.class_names.clear();
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) info.class_names.push_back(line.back() == '\r' ? line.substr(0, line.size() - 1) : line);
    SCALPEL_CHECK(static_cast<int64_t>(info.class_names.size()) == info.options.classes,
                  "--labels {}: {} names for a model with {} classes", args.get("labels"), info.class_names.size(),
                  info.options.classes);
  }
  info.preprocess = s.preprocess.is_null() ? preprocess_to_json(default_preprocess(s.info, s.model->in_channels()))
                                           : s.preprocess;
  s.model->to(Device::cpu());
  models::save_checkpoint(out, *s.model, info);
  std::printf("wrote %s (%s, %zu tensors)\n", out.c_str(), info.model.c_str(), s.model->state_dict().size());
  return 0;
}

SCALPEL_REGISTER_COMMAND({"convert", "convert a PyTorch/safetensors weights file to a scalpel checkpoint", run_convert});

}  // namespace
}  // namespace scalpel::cli
