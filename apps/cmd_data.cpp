// scalpel data: dataset tools. `scalpel data stats DIR` prints the exploratory analysis of
// data/stats.h (counts per split and class, sizes, intensity, duplicates, blur).
#include <cstdio>

#include "apps/cli.h"
#include "apps/args.h"
#include "apps/image_inputs.h"
#include "data/dataset.h"
#include "data/medmnist.h"
#include "data/stats.h"
#include "tensor/error.h"

namespace scalpel::cli {
namespace {

constexpr const char* kStatsSummary =
    "exploratory analysis: counts per split and class, sizes, intensity, duplicates, blur";

Args stats_args() {
  Args args("data stats", "DIR [--no-duplicates] [--blur-threshold X] [--blurriest N] [--strict]");
  args.positional("DIR", "dataset folder (any layout of data/dataset.h) or a MedMNIST .npz file")
      .option("class-names", "names for the data's classes, comma-separated in label order")
      .flag("no-duplicates", "skip the near-duplicate search (the slowest part)")
      .option("blur-threshold", "also list images whose blur score is below it", "0")
      .option("blurriest", "how many of the blurriest images to list", "5")
      .flag("strict", "stop at the first unreadable file instead of counting it");
  add_max_pixels_flag(args);
  return args;
}

int run_stats(const std::vector<std::string>& argv) {
  Args args = stats_args();
  if (!args.parse(argv)) return 0;
  apply_max_pixels_flag(args);
  const std::vector<std::string> dirs = args.positionals();
  SCALPEL_CHECK(dirs.size() == 1, "data stats expects one DIR, got {} (see scalpel data stats --help)", dirs.size());
  data::StatsOptions options;
  options.duplicates = !args.has("no-duplicates");
  options.blur_threshold = args.get_double("blur-threshold");
  options.blurriest = static_cast<int>(args.get_int("blurriest"));
  data::Warnings warnings(args.has("strict"));
  // No header check at load: a file it would leave out is then decoded, fails, and is counted
  // as unreadable like any other.
  data::Dataset dataset = data::load_dataset(dirs[0], warnings, {.check_images = false});
  if (args.has("class-names")) data::rename_classes(dataset, args.get("class-names"));
  const data::DataStats stats = data::compute_stats(dataset, options, warnings);
  std::printf("%s", data::format_stats(stats).c_str());
  if (warnings.count() > 0) std::fprintf(stderr, "%s", warnings.report().c_str());
  return 0;
}

int run_data(const std::vector<std::string>& argv) {
  if (!argv.empty() && (argv[0] == "--help" || argv[0] == "-h")) {
    // Every subcommand with its flags (there is one so far).
    std::printf("usage: scalpel data SUBCOMMAND ...\n\nsubcommands:\n  stats      %s\n\n%s", kStatsSummary,
                stats_args().help_text().c_str());
    return 0;
  }
  SCALPEL_CHECK(!argv.empty(), "data: expected a subcommand (scalpel data stats DIR)");
  SCALPEL_CHECK(argv[0] == "stats", "data: unknown subcommand '{}' (known: stats)", argv[0]);
  return run_stats({argv.begin() + 1, argv.end()});
}

SCALPEL_REGISTER_COMMAND({"data", "dataset tools: data stats DIR", run_data});

}  // namespace
}  // namespace scalpel::cli
