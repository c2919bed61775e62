// A TF.js layers model.json through the CLI (the nsfwjs MobileNetV2 of the shared samples):
// predict gives the library's logits, convert writes a checkpoint that predicts the same,
// summary lists the imported graph, and a truncated shard is one error line naming it.
// Skipped with a message when ../shared/samples is absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "autograd/autograd.h"
#include "models/import/import.h"
#include "support/cli_runner.h"
#include "tensor/npy.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::run_cli;

const fs::path kNsfwjs = fs::path(SCALPEL_SAMPLES) / "weights/tfjs/nsfwjs_mobilenet_v2";

class Scratch {
 public:
  Scratch() {
    dir_ = fs::temp_directory_path() / fs::path("scalpel-tfjs-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  std::string operator/(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

TEST(TfjsCli, ModelJsonPredictsConvertsAndSummarizes) {
  const std::string model_json = (kNsfwjs / "model.json").string();
  if (!fs::exists(model_json)) GTEST_SKIP() << "shared samples absent: " << model_json;
  Scratch scratch;
  Generator gen(4);
  const Tensor input = rand({1, 3, 224, 224}, gen);
  const std::string x = scratch / "x.npy";
  save_npy(x, input);
  Tensor expected;
  {
    NoGradGuard no_grad;
    auto model = models::build_imported_model(models::import_graph_file(model_json));
    expected = model->forward(input);
  }

  CliResult r = run_cli({"predict", "--weights", model_json, "--input-npy", x, "--output-npy", scratch / "a.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_npy(scratch / "a.npy").to_vector(), expected.to_vector());

  r = run_cli({"convert", "--weights", model_json, "--out", scratch / "nsfw.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"predict", "--weights", scratch / "nsfw.safetensors", "--input-npy", x, "--output-npy",
               scratch / "b.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_npy(scratch / "b.npy").to_vector(), expected.to_vector());

  r = run_cli({"summary", "--weights", model_json});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("expanded_conv_depthwise"), std::string::npos) << r.out;
}

TEST(TfjsCli, TruncatedShardIsOneErrorLine) {
  if (!fs::exists(kNsfwjs / "model.json")) GTEST_SKIP() << "shared samples absent: " << kNsfwjs;
  Scratch scratch;
  const fs::path dir = scratch / "model";
  fs::create_directories(dir);
  fs::copy_file(kNsfwjs / "model.json", dir / "model.json");
  const std::string shard = (kNsfwjs / "group1-shard1of1").string();
  const uintmax_t size = fs::file_size(shard);
  {
    std::ifstream in(shard, std::ios::binary);
    std::string bytes(size / 2, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream(dir / "group1-shard1of1", std::ios::binary) << bytes;
  }
  const CliResult r = run_cli({"predict", "--weights", (dir / "model.json").string(), "--input-npy", scratch / "x.npy",
                               "--output-npy", scratch / "y.npy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // one line
  EXPECT_NE(r.first_err_line().find("error: "), std::string::npos) << r.err;
  EXPECT_NE(r.first_err_line().find("group1-shard1of1"), std::string::npos) << r.err;
  EXPECT_NE(r.first_err_line().find("truncated"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(scratch / "y.npy"));
}

}  // namespace
}  // namespace scalpel
