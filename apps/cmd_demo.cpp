// scalpel demo: the whole workflow on procedurally generated, SYNTHETIC dermoscopy-like
// images (apps/demo/synthetic.h), or on a real dataset with --data: split, train a small
// network, evaluate it on the test split and write the HTML report (apps/report).
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "apps/cli.h"
#include "apps/demo/synthetic.h"
#include "apps/model_flags.h"
#include "apps/progress.h"
#include "apps/report/evaluate.h"
#include "apps/train/trainer.h"
#include "data/split.h"
#include "models/registry.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::cli {
namespace {

int run_demo(const std::vector<std::string>& argv) {
  Args args("demo", "[--out DIR] [--data DIR] [--epochs E] [--images N]");
  args.option("out", "output folder (data, checkpoints, report)", "demo-out")
      .option("data", "a real dataset instead of the synthetic one (split 70/15/15 unless it has splits)")
      .option("model", "network to train", "resnet18")
      .option("width", "mobilenet_v2 width multiplier", "0.35")
      .option("images", "synthetic images per class", "120")
      .option("size", "input size (square)", "48")
      .option("epochs", "epochs", "8")
      .option("batch", "batch size", "16")
      .option("lr", "Adam learning rate", "0.003")
      .option("seed", "seed of data generation, split and training", "0");
  if (!args.parse(argv)) return 0;
  const std::string out = args.get("out");
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed"));
  const int size = static_cast<int>(args.get_int("size"));
  SCALPEL_CHECK(size >= 32, "--size must be at least 32, got {}", size);
  std::filesystem::create_directories(out);

  std::string data_dir = args.get("data");
  const bool synthetic = data_dir.empty();
  if (synthetic) {
    data_dir = out + "/data";
    std::cout << fmt::format("NOTE: this demo uses SYNTHETIC images generated procedurally (ABCD-rule-like\n"
                             "lesions: round single-coloured 'benign' vs asymmetric multi-coloured 'malignant').\n"
                             "They are not real dermoscopy and the resulting model has no medical value.\n"
                             "generating {} images per class into {} ...\n",
                             args.get_int("images"), data_dir);
    std::filesystem::remove_all(data_dir);
    demo::write_synthetic_dataset(data_dir, args.get_int("images"), size, seed);
  }
  data::Warnings warnings;
  data::Dataset dataset = data::load_dataset(data_dir, warnings);
  data::check_classification(dataset);
  std::cerr << warnings.report();
  if (!dataset.has_fixed_splits()) data::assign_splits(dataset, data::parse_split_ratios("70/15/15"), seed);

  manual_seed(seed);
  models::ModelOptions options;
  options.classes = static_cast<int64_t>(dataset.classes.size());
  const std::string name = models::canonical_model_name(args.get("model"));  // Keras names too
  if (name == "mobilenet_v2") options.width = args.get_double("width");
  auto model = models::create_model(name, options);

  train::TrainConfig config;
  config.out_dir = out + "/run";
  config.epochs = args.get_int("epochs");
  config.batch_size = static_cast<int>(args.get_int("batch"));
  config.optimizer = "adam";
  config.lr = args.get_double("lr");
  config.schedule = "cosine";
  config.augment = "dermoscopy";
  config.seed = seed;
  config.monitor = "val_macro_f1";
  config.preprocess.width = config.preprocess.height = size;
  config.preprocess.fit = data::Fit::stretch;
  config.preprocess.norm = data::normalization_preset("imagenet");
  config.log_json = out + "/run/steps.jsonl";
  config.progress_bar = stdout_is_terminal();

  models::CheckpointInfo info;
  info.model = name;
  info.options = options;
  info.class_names = dataset.classes;
  info.preprocess = preprocess_to_json(config.preprocess);
  std::filesystem::create_directories(config.out_dir);
  data::write_split_manifest(config.out_dir + "/split.csv", dataset);
  std::cout << fmt::format("training {} on {} images ({} classes) for {} epochs ...\n", info.model,
                           dataset.split_part("train").samples.size(), dataset.classes.size(), config.epochs);
  const train::TrainResult trained = train::train_classifier(*model, dataset, info, config, std::cout);

  // Evaluate the best epoch's weights on the held-out test split.
  const auto best = models::read_checkpoint(trained.best_path);
  SCALPEL_CHECK(best.has_value(), "{}: not a scalpel checkpoint", trained.best_path);
  train::load_checkpoint_state(*model, best->model);
  data::Dataset test = dataset.split_part("test");
  if (test.samples.empty()) test = dataset.split_part("val");
  const report::EvalResult result = report::evaluate(*model, test, config.preprocess);
  report::ReportOptions ropts;
  ropts.title = synthetic ? "scalpel demo — SYNTHETIC data (procedurally generated, not real lesions)"
                          : fmt::format("scalpel demo — {}", data_dir);
  ropts.model = model.get();
  ropts.preprocess = config.preprocess;
  ropts.history_path = config.out_dir + "/history.json";
  const std::string report_dir = out + "/report";
  report::write_eval_report(result, report_dir, ropts);

  const report::Metrics& m = result.metrics;
  std::cout << fmt::format("\ntest split ({} images{}): accuracy {:.3f}  balanced accuracy {:.3f}  macro F1 {:.3f}  "
                           "macro AUC {:.3f}\n",
                           result.labels.size(), synthetic ? ", SYNTHETIC" : "", m.accuracy, m.balanced_accuracy,
                           m.macro_f1, m.macro_auc);
  std::cout << fmt::format("report: {}/report.html\nmetrics: {}/metrics.json\ncheckpoint: {}\n", report_dir,
                           report_dir, trained.best_path);
  return 0;
}

SCALPEL_REGISTER_COMMAND(Command{"demo", "train and evaluate on a synthetic dermoscopy-like dataset (or --data DIR)",
                                 run_demo});

}  // namespace
}  // namespace scalpel::cli
