// `scalpel eval --tta / --group-tta` through the binary: the flags reach the evaluation (a
// flipped pass changes the probabilities of an asymmetric model), the report says which TTA
// made it, and bad values are `error:` lines naming the flag.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "data/image.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "support/files.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel::test {
namespace {

namespace fs = std::filesystem;

using scalpel::test::slurp;

class TtaCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("scalpel-tta-cli-{}-{}",
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                                    getpid());
    fs::remove_all(root_);
    Generator g(4);
    for (const char* name : {"benign", "malignant"}) {
      fs::create_directories(root_ / "data" / name);
      for (int i = 0; i < 2; ++i) {
        data::Image image(32, 32, 3);
        for (auto& v : image.pixels) v = static_cast<uint8_t>(g.below(256));
        data::save_image((root_ / "data" / name / fmt::format("{}.png", i)).string(), image);
      }
    }
    manual_seed(6);
    models::ModelOptions o;
    o.classes = 2;
    o.width = 0.25;
    const auto model = models::create_model("mobilenet_v2", o);
    // A randomly initialized network's probabilities hardly depend on the image; a large head
    // makes the mirrored pass visibly different at predictions.csv's 6 digits.
    for (auto& p : model->named_parameters())
      if (p.name == "classifier.1.weight") p.tensor.copy_(ops::mul_scalar(p.tensor, 1000.0));
    models::save_checkpoint(path("model.safetensors"), *model, {"mobilenet_v2", o, {"benign", "malignant"}, Json()});
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string path(const std::string& name) const { return (root_ / name).string(); }

  CliResult eval(const std::string& report, std::vector<std::string> flags) const {
    std::vector<std::string> args = {"eval", "--weights", path("model.safetensors"), "--data", path("data"),
                                     "--report", path(report), "--size", "32", "32", "--gallery", "0"};
    args.insert(args.end(), flags.begin(), flags.end());
    return run_cli(args);
  }
  fs::path root_;
};

TEST_F(TtaCli, FlagsReachTheEvaluationAndTheReport) {
  const CliResult plain = eval("plain", {});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const CliResult flip = eval("flip", {"--tta", "flip"});
  ASSERT_EQ(flip.exit_code, 0) << flip.err;
  EXPECT_NE(slurp(path("plain/predictions.csv")), slurp(path("flip/predictions.csv")));
  const std::string title = fmt::format("scalpel eval: mobilenet_v2 on {}, TTA flip", path("data"));
  EXPECT_NE(slurp(path("flip/report.html")).find(title), std::string::npos);
  EXPECT_EQ(slurp(path("plain/report.html")).find(title), std::string::npos);
}

TEST_F(TtaCli, BadValuesAreErrorsNamingTheFlag) {
  const CliResult unknown = eval("r1", {"--tta", "rotate"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(unknown.first_err_line().starts_with("error: --tta: unknown test-time augmentation 'rotate'"))
      << unknown.err;
  // An ImageFolder has no patient or lesion ids to group by.
  const CliResult groups = eval("r2", {"--group-tta"});
  EXPECT_EQ(groups.exit_code, 1);
  EXPECT_TRUE(groups.first_err_line().starts_with("error: --group-tta: the samples of")) << groups.err;
  EXPECT_FALSE(fs::exists(path("r1")));
  EXPECT_FALSE(fs::exists(path("r2")));
}

}  // namespace
}  // namespace scalpel::test
