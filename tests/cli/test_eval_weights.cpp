// `scalpel eval` with weights that do not fit the model: one `error:` line naming the weights
// file and the mismatching keys or shapes, exit 1, no report written.
#include <gtest/gtest.h>

#include <filesystem>

#include <fmt/format.h>

#include "data/image.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "tensor/io/safetensors.h"

namespace scalpel::test {
namespace {

namespace fs = std::filesystem;

class EvalWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("scalpel-eval-weights-{}-{}",
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                                    getpid());
    fs::remove_all(root_);
    for (const char* name : {"cyst", "normal", "tumor"}) {
      fs::create_directories(root_ / "data" / name);
      data::save_image((root_ / "data" / name / "0.png").string(), data::Image(32, 32, 3));
    }
    // A 3-class mobilenet_v2 of width 0.25, as a scalpel checkpoint and as a bare state dict.
    models::ModelOptions o;
    o.classes = 3;
    o.width = 0.25;
    const auto model = models::create_model("mobilenet_v2", o);
    models::save_checkpoint(path("ckpt.safetensors"), *model, {"mobilenet_v2", o, {"cyst", "normal", "tumor"}, Json()});
    NamedTensors state;
    for (const auto& nt : model->state_dict()) state.push_back({nt.name, nt.tensor});
    save_safetensors(path("state.safetensors"), state);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string path(const std::string& name) const { return (root_ / name).string(); }

  CliResult eval(std::vector<std::string> flags) const {
    std::vector<std::string> args = {"eval", "--data", path("data"), "--report", path("report"), "--size", "32", "32"};
    args.insert(args.end(), flags.begin(), flags.end());
    return run_cli(args);
  }
  // Exit 1, one error line (notes may precede it) holding every needle, no report folder.
  void expect_error(const CliResult& r, const std::vector<std::string>& needles) const {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    const size_t at = r.err.find("error: ");
    ASSERT_NE(at, std::string::npos) << r.err;
    const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
    EXPECT_EQ(r.err.find("error: ", at + 1), std::string::npos) << r.err;
    for (const std::string& needle : needles) EXPECT_NE(line.find(needle), std::string::npos) << needle << " in " << line;
    EXPECT_FALSE(fs::exists(path("report")));
  }
  fs::path root_;
};

TEST_F(EvalWeights, OtherWidthNamesTheFileAndTheShapes) {
  // mobilenet_v2's stem has 32 * width channels (rounded to a multiple of 8): 8 at 0.25, 16 at 0.5.
  expect_error(eval({"--weights", path("ckpt.safetensors"), "--width", "0.5"}),
               {path("ckpt.safetensors"), "does not fit mobilenet_v2",
                "features.0.0.weight: model [16, 3, 3, 3], file [8, 3, 3, 3]"});
}

TEST_F(EvalWeights, OtherModelNamesTheFileAndTheMissingKeys) {
  expect_error(eval({"--model", "resnet18", "--classes", "3", "--weights", path("state.safetensors")}),
               {path("state.safetensors"), "does not fit resnet18", "missing key(s): conv1.weight"});
  expect_error(eval({"--model", "resnet18", "--weights", path("ckpt.safetensors")}),
               {"--model resnet18", path("ckpt.safetensors"), "holds a mobilenet_v2"});
}

TEST_F(EvalWeights, OtherClassCountThanTheCheckpointIsAnError) {
  // Today's 3-class data, a 3-class file: --classes 4 would evaluate a random 4-class head.
  expect_error(eval({"--weights", path("ckpt.safetensors"), "--classes", "4"}),
               {"--classes 4", path("ckpt.safetensors"), "has a 3-class head"});
  expect_error(eval({"--model", "mobilenet_v2", "--width", "0.25", "--classes", "4", "--weights",
                     path("state.safetensors")}),
               {"--classes 4", path("state.safetensors"), "has a 3-class head"});
}

}  // namespace
}  // namespace scalpel::test
