// `scalpel eval --split`: the held-out split of the training run (split.csv next to the
// checkpoint or --split-file), MedMNIST's official split for .npz data, what metrics.json and
// the terminal say about it (split, size, data fingerprint, per-class table).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/dataset.h"
#include "data/image.h"
#include "data/split.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "tensor/json.h"

namespace scalpel {
namespace {

namespace fs = std::filesystem;
using test::run_cli;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Json metrics(const fs::path& report) { return Json::parse(slurp(report / "metrics.json"), "metrics.json"); }

size_t prediction_rows(const fs::path& report) {
  std::istringstream in(slurp(report / "predictions.csv"));
  size_t rows = 0;
  for (std::string line; std::getline(in, line);) ++rows;
  return rows - 1;  // header
}

// data/<class>/<i>.png (2 classes x 10 images), a 2-class mobilenet_v2 checkpoint in run/ with
// the split.csv a `--split 60/20/20` run writes (seed 0), and the same checkpoint in bare/ alone.
class EvalSplitCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() / ("scalpel-eval-split-test-" + std::to_string(::getpid())));
    fs::create_directories(*root_);
    for (const char* name : {"benign", "malignant"}) {
      fs::create_directories(*root_ / "data" / name);
      for (int i = 0; i < 10; ++i) {
        data::Image im(32, 32, 3, static_cast<uint8_t>(name[0] == 'b' ? 40 + i : 200 - i));
        data::save_image((*root_ / "data" / name / (std::to_string(i) + ".png")).string(), im);
      }
    }
    models::ModelOptions o;
    o.classes = 2;
    o.width = 0.25;
    const auto model = models::create_model("mobilenet_v2", o);
    for (const char* dir : {"run", "bare", "all_train"}) {
      fs::create_directories(*root_ / dir);
      models::save_checkpoint((*root_ / dir / "best.safetensors").string(), *model,
                              {"mobilenet_v2", o, {"benign", "malignant"}, Json()});
    }
    data::Warnings warnings;
    data::Dataset d = data::load_dataset((*root_ / "data").string(), warnings);
    data::assign_splits(d, data::parse_split_ratios("60/20/20"), 0);
    data::write_split_manifest((*root_ / "run" / "split.csv").string(), d);
    for (auto& s : d.samples) s.split = "train";  // a run without --split
    data::write_split_manifest((*root_ / "all_train" / "split.csv").string(), d);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }
  static fs::path path(const std::string& name) { return *root_ / name; }
  static test::CliResult eval(const std::string& weights_dir, const std::string& report,
                              std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"eval", "--weights", path(weights_dir + "/best.safetensors").string(),
                                     "--data", path("data").string(), "--report", path(report).string(),
                                     "--size", "32", "32", "--gallery", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  }
  static fs::path* root_;
};
fs::path* EvalSplitCli::root_ = nullptr;

TEST_F(EvalSplitCli, DefaultIsTheRunsTestSplit) {
  const auto r = eval("run", "r_default");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json m = metrics(path("r_default"));
  const Json& data = m.at("data");
  EXPECT_EQ(data.at("split").as_string(), "test");
  EXPECT_EQ(data.at("size").as_int(), 4);  // 20% of 10 per class
  EXPECT_EQ(data.at("split_source").as_string(), path("run/split.csv").string());
  EXPECT_TRUE(data.at("fingerprint").as_string().starts_with("fnv1a64:"));
  EXPECT_EQ(m.at("samples").as_int(), 4);
  EXPECT_EQ(prediction_rows(path("r_default")), 4u);
  // The terminal: the split line, then the per-class table.
  EXPECT_NE(r.out.find("test split of " + path("run/split.csv").string() + ": 4 images, data fnv1a64:"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("precision     recall   f1-score  specificity        auc    support"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("weighted avg"), std::string::npos) << r.out;
  EXPECT_NE(slurp(path("r_default/report.html")).find("test split of "), std::string::npos);
}

TEST_F(EvalSplitCli, ExplicitSplitsAndSplitFile) {
  for (const auto& [split, size] : std::vector<std::pair<std::string, int64_t>>{{"val", 4}, {"train", 12}, {"all", 20}}) {
    const auto r = eval("run", "r_" + split, {"--split", split});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(metrics(path("r_" + split)).at("data").at("split").as_string(), split);
    EXPECT_EQ(metrics(path("r_" + split)).at("data").at("size").as_int(), size);
  }
  // bare/ has no split.csv: --split-file names the run's.
  const auto r = eval("bare", "r_file", {"--split-file", path("run/split.csv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(metrics(path("r_file")).at("data").at("size").as_int(), 4);
  // Same images, same fingerprint, wherever the split came from (run's own split.csv: test).
  const auto by_run = eval("run", "r_by_run");
  ASSERT_EQ(by_run.exit_code, 0) << by_run.err;
  EXPECT_EQ(metrics(path("r_file")).at("data").at("fingerprint").as_string(),
            metrics(path("r_by_run")).at("data").at("fingerprint").as_string());
}

TEST_F(EvalSplitCli, WithoutASplitEverythingIsEvaluatedAndSaidSo) {
  const auto bare = eval("bare", "r_bare");
  ASSERT_EQ(bare.exit_code, 0) << bare.err;
  EXPECT_EQ(metrics(path("r_bare")).at("data").at("split").as_string(), "all");
  EXPECT_EQ(metrics(path("r_bare")).at("data").at("size").as_int(), 20);
  const auto bad = eval("bare", "r_bad", {"--split", "test"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(bad.first_err_line().starts_with("error: --split test: " + path("data").string() +
                                               " has no split folders and no split.csv was found next to --weights"))
      << bad.err;
  // A run trained on every image: evaluating them is flagged.
  const auto all_train = eval("all_train", "r_all_train");
  ASSERT_EQ(all_train.exit_code, 0) << all_train.err;
  EXPECT_NE(all_train.err.find("no test split; evaluating every image, training images included"), std::string::npos)
      << all_train.err;
  const auto unknown = eval("run", "r_unknown", {"--split", "holdout"});
  EXPECT_EQ(unknown.first_err_line(), "error: --split: unknown split 'holdout' (test, val, train, all)");
}

TEST_F(EvalSplitCli, MedMnistFileUsesItsOfficialTestSplit) {
  const std::string npz = std::string(SCALPEL_FIXTURES) + "/data/medmnist_gray.npz";
  models::ModelOptions o;
  o.classes = 3;
  o.width = 0.25;
  o.in_channels = 1;
  models::save_checkpoint(path("npz.safetensors").string(), *models::create_model("mobilenet_v2", o),
                          {"mobilenet_v2", o, {"0", "1", "2"}, Json()});
  const auto r = run_cli({"eval", "--weights", path("npz.safetensors").string(), "--data", npz, "--report",
                          path("r_npz").string(), "--size", "32", "32", "--gallery", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json data = metrics(path("r_npz")).at("data");
  EXPECT_EQ(data.at("split").as_string(), "test");
  EXPECT_EQ(data.at("size").as_int(), 3);
  EXPECT_EQ(data.at("split_source").as_string(), "MedMNIST's official splits");
  const auto stats = run_cli({"data", "stats", npz, "--no-duplicates", "--class-names", "mild,moderate,severe"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_NE(stats.out.find("(layout medmnist)"), std::string::npos) << stats.out;
  EXPECT_NE(stats.out.find("moderate"), std::string::npos) << stats.out;
  // --class-names renames the file's classes; a checkpoint with other names is refused.
  const auto renamed = run_cli({"eval", "--weights", path("npz.safetensors").string(), "--data", npz, "--report",
                                path("r_npz2").string(), "--size", "32", "32", "--class-names", "a,b,c"});
  EXPECT_EQ(renamed.exit_code, 1);
  EXPECT_NE(renamed.first_err_line().find("a, b, c"), std::string::npos) << renamed.err;
}

}  // namespace
}  // namespace scalpel
