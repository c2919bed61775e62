// scalpel models: every network of the zoo with its layout, input size and parameter counts.
#include <cstdio>

#include "apps/cli.h"
#include "apps/args.h"
#include "models/registry.h"
#include "models/summary.h"

namespace scalpel::cli {
namespace {

int run_models(const std::vector<std::string>& argv) {
  Args args("models", "");
  if (!args.parse(argv)) return 0;
  std::printf("%-18s %-15s %-12s %6s %14s %14s  %s\n", "name", "task", "layout", "input", "trainable",
              "non-trainable", "preprocess");
  for (const models::ModelListing& m : models::list_models()) {
    std::printf("%-18s %-15s %-12s %6lld %14s %14s  %s\n", m.info.name.c_str(), m.info.task.c_str(),
                m.info.layout.c_str(), static_cast<long long>(m.info.input_size),
                models::thousands(m.trainable).c_str(), models::thousands(m.non_trainable).c_str(),
                m.info.preprocess.c_str());
  }
  return 0;
}

SCALPEL_REGISTER_COMMAND({"models", "list the networks --model accepts", run_models});

}  // namespace
}  // namespace scalpel::cli
