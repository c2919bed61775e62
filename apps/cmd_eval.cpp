// scalpel eval: metrics, predictions and an HTML report of a classifier on a labelled
// dataset (see ../shared/interface.md and apps/report/evaluate.h).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "apps/cli.h"
#include "apps/image_inputs.h"
#include "apps/model_flags.h"
#include "apps/progress.h"
#include "apps/report/evaluate.h"
#include "apps/report/evaluate_segmentation.h"
#include "apps/train/segmentation.h"
#include "data/dataset.h"
#include "data/medmnist.h"
#include "data/split.h"
#include "tensor/error.h"

namespace scalpel::cli {
namespace {

// The samples to evaluate, which split they are and where that split comes from.
struct EvalSplit {
  data::Dataset samples;
  std::string name;    // test | val | train | all
  std::string source;  // the layout's splits, a split.csv, or "" (no split known)
};

// The split of every sample: the layout's own (split folders, MedMNIST's official split), else
// the training run's split.csv (--split-file, or found next to --weights). Then --split picks
// one; the default is the held-out test split when there is one, else every sample.
EvalSplit pick_split(data::Dataset all, const Args& args, data::Warnings& warnings) {
  const std::string requested = args.get("split");
  SCALPEL_CHECK(requested.empty() || requested == "test" || requested == "val" || requested == "train" ||
                    requested == "all",
                "--split: unknown split '{}' (test, val, train, all)", requested);
  std::string source;
  if (all.has_fixed_splits()) {
    source = all.layout == "medmnist" ? "MedMNIST's official splits" : "the split folders of " + all.root;
  } else {
    std::string manifest_path = args.get("split-file");
    const std::filesystem::path beside = std::filesystem::path(args.get("weights")).parent_path() / "split.csv";
    if (manifest_path.empty() && std::filesystem::is_regular_file(beside)) manifest_path = beside.string();
    if (!manifest_path.empty()) {
      const data::Dataset manifest = data::read_split_manifest(manifest_path, warnings);
      const size_t unmatched = data::apply_split_manifest(all, manifest, manifest_path);
      if (unmatched == all.samples.size()) {
        // Data the run never saw (an external test set): all of it is held out.
        SCALPEL_CHECK(!args.has("split-file") && (requested.empty() || requested == "all"),
                      "--split {}: the split manifest {} names none of the {} images of {}",
                      requested.empty() ? "test" : requested, manifest_path, all.samples.size(), all.root);
        std::fprintf(stderr, "note: %s names none of these images; evaluating all %zu of them\n",
                     manifest_path.c_str(), all.samples.size());
        return {std::move(all), "all", ""};
      }
      if (unmatched > 0)
        warnings.add(fmt::format("{} of the {} images of {} are not in the split manifest {}; left out unless "
                                 "--split all", unmatched, all.samples.size(), all.root, manifest_path));
      source = manifest_path;
    }
  }
  if (source.empty()) {
    SCALPEL_CHECK(requested.empty() || requested == "all",
                  "--split {}: {} has no split folders and no split.csv was found next to --weights {} (give the "
                  "training run's split manifest with --split-file)", requested, all.root, args.get("weights"));
    return {std::move(all), "all", ""};
  }
  std::string name = requested;
  if (name.empty()) name = all.split_part("test").samples.empty() ? "all" : "test";
  if (name == "all") {
    if (requested.empty() && !all.split_part("train").samples.empty())
      std::fprintf(stderr, "warning: %s has no test split; evaluating every image, training images included\n",
                   source.c_str());
    return {std::move(all), "all", source};
  }
  data::Dataset part = all.split_part(name);
  SCALPEL_CHECK(!part.samples.empty(), "--split {}: {} has no {} images ({})", name, all.root, name, source);
  return {std::move(part), name, source};
}

// eval of a segmentation model on images with masks (apps/report/evaluate_segmentation.h).
int eval_segmentation(const Args& args, const ModelSetup& s, const data::Dataset& dataset, const data::Preprocess& p) {
  SCALPEL_CHECK(args.get("tta") == "none" && !args.has("group-tta"),
                "--tta and --group-tta average class probabilities; {} is a segmentation model", s.info.name);
  const report::SegmentationEvalResult r = report::evaluate_segmentation(
      *s.model, dataset, p, {.batch = args.get_int("batch"), .device = s.device});
  report::SegmentationReportOptions ro;
  ro.title = "scalpel eval: " + s.model->name() + " on " + args.get("data");
  ro.model = s.model.get();
  ro.preprocess = p;
  ro.device = s.device;
  ro.gallery_size = static_cast<int>(args.get_int("gallery"));
  ro.history_path = report::find_history(args.get("weights"));
  report::write_segmentation_report(r, args.get("report"), ro);
  const report::SegmentationMetrics& m = r.metrics;
  std::printf("%lld images, Dice %.4f, IoU %.4f, mean Dice per image %.4f, pixel accuracy %.4f\n",
              static_cast<long long>(m.images), m.mean_dice, m.mean_iou, m.mean_image_dice, m.pixel_accuracy);
  std::printf("report: %s/report.html\n", args.get("report").c_str());
  return 0;
}

// ", test split of split.csv: 624 images, data fnv1a64:..." for the report header and the terminal.
std::string split_description(const EvalSplit& split, const report::EvalDataInfo& info) {
  const std::string which = split.name == "all" ? "all images" : fmt::format("{} split of {}", split.name, split.source);
  return fmt::format(", {}: {} images, data {}", which, info.size, info.fingerprint);
}

int run_eval(const std::vector<std::string>& argv) {
  Args args("eval", "--weights W [--model M] --data DIR --report OUT [--split test|val|train|all] [--size H W]\n"
                    "       [--tta none|flip|flip4|crops] [--group-tta]");
  add_model_flags(args);
  args.option("data", "labelled images (any layout of data/dataset.h, e.g. DIR/<class>/<image>; DIR/images + "
                      "DIR/masks for a segmentation model)")
      .option("report", "output folder: metrics.json, predictions.csv, report.html")
      .option("split", "test | val | train | all: which split to evaluate, from the data's own split folders or "
                       "the training run's split.csv (default: test when there is one, else all)")
      .option("split-file", "the training run's split manifest (default: split.csv next to --weights)")
      .option("class-names", "names for the data's classes, comma-separated in label order (e.g. for .npz files)")
      .option("size", "input height and width (default: the checkpoint's or the model's preprocessing)", "", 2)
      .option("batch", "images per forward pass", "16")
      .option("gallery", "Grad-CAM images of the most confident errors in the report (segmentation: the "
                        "images with the lowest Dice)", "6")
      .option("tta", "test-time augmentation, mean of the probabilities over: none | flip (+ horizontal mirror) | "
                     "flip4 (+ vertical and both mirrors) | crops (corners and centre of an 8/7 larger resize)",
              "none")
      .flag("group-tta", "average the probabilities over the images of one group (patient or lesion id, e.g. "
                         "HAM10000 lesion_id) and give each image the group's prediction");
  add_max_pixels_flag(args);
  add_precision_flag(args);
  if (!args.parse(argv)) return 0;
  apply_max_pixels_flag(args);
  apply_precision_flag(args, parse_device(args.get("device")));
  const std::string data_dir = args.require("data"), out = args.require("report");
  SCALPEL_CHECK(!args.get("weights").empty(), "--weights is required for 'scalpel eval' (see scalpel eval --help)");

  data::Warnings warnings;
  data::Dataset all = data::load_dataset(data_dir, warnings);
  if (args.has("class-names")) data::rename_classes(all, args.get("class-names"));
  const EvalSplit split = pick_split(std::move(all), args, warnings);
  const data::Dataset& dataset = split.samples;
  if (warnings.count() > 0) std::fprintf(stderr, "%s", warnings.report().c_str());

  ModelSetup s = load_model_from_flags(args);
  train::check_task_fits_data(s.info, dataset);
  const bool segmentation = s.info.task == "segmentation";
  SCALPEL_CHECK(segmentation || s.class_names.empty() || s.class_names == dataset.classes,
                "eval: the classes of --weights {} ({}) differ from those of --data {} ({})", args.get("weights"),
                fmt::join(s.class_names, ", "), data_dir, fmt::join(dataset.classes, ", "));
  data::Preprocess p = eval_preprocess(s);
  if (args.has("size")) {
    const auto [h, w] = args.get_hw("size");
    p.height = static_cast<int>(h);
    p.width = static_cast<int>(w);
  }
  if (segmentation) return eval_segmentation(args, s, dataset, p);

  report::EvalOptions eo;
  eo.batch = args.get_int("batch");
  eo.device = s.device;
  eo.tta = report::parse_tta(args.get("tta"));
  eo.group_tta = args.has("group-tta");
  SCALPEL_CHECK(!eo.group_tta || dataset.has_groups(),
                "--group-tta: the samples of {} have no group ids (patient or lesion ids of the layout)", data_dir);
  ProgressBar bar(std::cout, stdout_is_terminal(), "eval", static_cast<int64_t>(dataset.samples.size()));
  eo.on_batch = [&bar](int64_t done, int64_t) { bar.update(done, done, ""); };
  const report::EvalResult result = report::evaluate(*s.model, dataset, p, eo);
  bar.finish();
  for (const std::string& skipped : result.skipped) std::fprintf(stderr, "warning: %s; image left out\n", skipped.c_str());

  report::ReportOptions ro;
  ro.data = {.path = data_dir, .split = split.name, .split_source = split.source,
             .size = static_cast<int64_t>(dataset.samples.size()), .fingerprint = data::content_fingerprint(dataset)};
  ro.title = "scalpel eval: " + s.model->name() + " on " + data_dir;
  if (eo.tta != report::Tta::none) ro.title += ", TTA " + report::tta_name(eo.tta);
  if (eo.group_tta) ro.title += ", averaged per group";
  ro.title += split_description(split, ro.data);
  ro.model = s.model.get();
  ro.preprocess = p;
  ro.device = s.device;
  ro.gallery_size = static_cast<int>(args.get_int("gallery"));
  ro.history_path = report::find_history(args.get("weights"));
  report::write_eval_report(result, out, ro);

  const report::Metrics& m = result.metrics;
  std::printf("%s\n\n%s\n", split_description(split, ro.data).substr(2).c_str(),
              report::classification_report(m).c_str());
  std::printf("%lld images, accuracy %.4f, balanced accuracy %.4f, macro F1 %.4f, macro AUC %.4f\n",
              static_cast<long long>(m.samples), m.accuracy, m.balanced_accuracy, m.macro_f1, m.macro_auc);
  std::printf("report: %s/report.html\n", out.c_str());
  return 0;
}

SCALPEL_REGISTER_COMMAND({"eval", "metrics, predictions.csv and an HTML report on a labelled dataset", run_eval});

}  // namespace
}  // namespace scalpel::cli
