// The CLI under hostile use (issue 16): write errors, non-UTF-8 file names, partial outputs,
// stale temporaries, what train says when it starts, and the help texts.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "data/image.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "tensor/json.h"

namespace scalpel::test {
namespace {

namespace fs = std::filesystem;

// A scratch folder per test with a 2-class image folder (6 "normal", 2 "pneumonia", 32 x 32)
// and a 2-class mobilenet_v1 x0.25 checkpoint.
class Hardening : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("scalpel-hardening-{}-{}", getpid(),
                                                    testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    uint32_t seed = 3;
    for (const auto& [name, count] : {std::pair<std::string, int>{"normal", 6}, {"pneumonia", 2}}) {
      fs::create_directories(root_ / "data" / name);
      for (int i = 0; i < count; ++i) {
        data::Image im(32, 32, 3);
        for (auto& v : im.pixels) v = static_cast<uint8_t>((seed = seed * 1664525u + 1013904223u) >> 24);
        data::save_image((root_ / "data" / name / fmt::format("{}.png", i)).string(), im);
      }
    }
    models::ModelOptions o;
    o.classes = 2;
    o.width = 0.25;
    o.padding = "torch";
    const auto model = models::create_model("mobilenet_v1", o);
    models::save_checkpoint(path("ckpt.safetensors"), *model, {"mobilenet_v1", o, {"normal", "pneumonia"}, Json()});
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string path(const std::string& name) const { return (root_ / name).string(); }

  std::vector<std::string> tiny_train(const std::string& out) const {
    return {"train", "--model", "mobilenet_v1", "--width", "0.25", "--padding", "torch", "--data", path("data"),
            "--out", out, "--size", "32", "32", "--epochs", "1", "--batch", "4", "--workers", "1"};
  }
  fs::path root_;
};

void expect_error(const CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const size_t at = r.err.find("error: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
  EXPECT_NE(line.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

// The scalpel binary with its stdout sent to `target` (a shell redirection; "$0" is the binary).
CliResult run_with_stdout(const std::string& target, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"-c", "exec \"$0\" \"$@\" > " + target, SCALPEL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_cli(argv, "/bin/sh");
}

// ---------------------------------------------------------------- write errors (item 5)

TEST_F(Hardening, PredictToAFullDeviceIsAnError) {
  data::save_image(path("x.png"), data::Image(40, 40, 3));
  const std::vector<std::string> json = {"predict", "--weights", path("ckpt.safetensors"), "--image", path("x.png"),
                                         "--json"};
  ASSERT_EQ(run_cli(json).exit_code, 0);
  expect_error(run_with_stdout("/dev/full", json), "cannot write to standard output");
  std::vector<std::string> text = json;
  text.pop_back();
  expect_error(run_with_stdout("/dev/full", text), "cannot write to standard output");
}

TEST_F(Hardening, LogJsonToAFullDeviceStopsTrainingAndLeavesNoSplitManifest) {
  std::vector<std::string> args = tiny_train(path("run"));
  for (const char* a : {"--log-json", "/dev/full"}) args.push_back(a);
  expect_error(run_cli(args), "--log-json: cannot write /dev/full");
  // The run failed before its first checkpoint: no split.csv of a training that never happened.
  EXPECT_FALSE(fs::exists(path("run/split.csv")));
  EXPECT_FALSE(fs::exists(path("run/last.safetensors")));
}

// ---------------------------------------------------------------- JSON of any file name (item 6)

TEST_F(Hardening, PredictJsonEscapesANonUtf8FileName) {
  const std::string latin1 = path("caf\xe9.png");  // "café" in Latin-1: not UTF-8
  data::save_image(latin1, data::Image(40, 40, 3));
  const CliResult r = run_cli({"predict", "--weights", path("ckpt.safetensors"), "--image", latin1, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = Json::parse(r.out, "predict --json");  // strict: refuses invalid UTF-8
  EXPECT_EQ(j.at("predictions").at(0).at("image").as_string(), path("caf\xef\xbf\xbd.png"));  // U+FFFD
  EXPECT_NE(r.out.find("caf\\ufffd.png"), std::string::npos) << r.out;
}

// ---------------------------------------------------------------- train (items 10 and 13)

TEST_F(Hardening, TrainInfersClassesEchoesItsSetUpAndRemovesStaleTemporaries) {
  const fs::path out = root_ / "run";
  fs::create_directories(out);
  // A temporary of a killed run (its pid is gone) and one of a live writer (this process).
  const pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  waitpid(dead, nullptr, 0);
  const fs::path stale = out / fmt::format("last.safetensors.tmp.{}", dead);
  const fs::path live = out / fmt::format("best.safetensors.tmp.{}", getpid());
  std::ofstream(stale) << "half a checkpoint";
  std::ofstream(live) << "being written";

  std::vector<std::string> args = tiny_train(out.string());
  for (const char* a : {"--class-weights", "balanced"}) args.push_back(a);
  const CliResult r = run_cli(args);  // no --classes: 2 class folders
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("note: --classes 2 from the class folders of " + path("data") + " (normal, pneumonia)"),
            std::string::npos) << r.err;
  EXPECT_NE(r.out.find("samples: train 8, val 0, test 0\n"), std::string::npos) << r.out;
  // balanced: n / (classes * count) = 8 / (2 * 6) and 8 / (2 * 2).
  EXPECT_NE(r.out.find("class weights (balanced): normal 0.6667, pneumonia 2\n"), std::string::npos) << r.out;
  // The default augmentation flips nothing (chest X-rays are not left-right symmetric).
  const size_t augment = r.out.find("augment: xray");
  ASSERT_NE(augment, std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(augment, r.out.find('\n', augment) - augment).find("flip"), std::string::npos) << r.out;

  EXPECT_FALSE(fs::exists(stale));
  EXPECT_NE(r.err.find(stale.string()), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(out / "split.csv"));
  EXPECT_TRUE(fs::exists(out / "last.safetensors"));
}

// ---------------------------------------------------------------- help texts (item 16)

std::vector<std::string> command_names() {
  const CliResult r = run_cli({"--help"});
  std::istringstream lines(r.out.substr(r.out.find("commands:\n") + 10));
  std::vector<std::string> names;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string name;
    if (words >> name) names.push_back(name);
  }
  return names;
}

TEST(Help, NoFlagStatesItsDefaultTwice) {
  const std::vector<std::string> names = command_names();
  ASSERT_GE(names.size(), 8u);
  for (const std::string& name : names) {
    const CliResult r = run_cli({name, "--help"});
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      const size_t first = line.find("(default");
      EXPECT_TRUE(first == std::string::npos || line.find("(default", first + 1) == std::string::npos)
          << "scalpel " << name << " --help: " << line;
    }
  }
  const CliResult gradcam = run_cli({"gradcam", "--help"});
  EXPECT_NE(gradcam.out.find("0..classes-1 (default: the predicted class)\n"), std::string::npos) << gradcam.out;
}

TEST(Help, DataShowsItsSubcommandsAndTheirFlags) {
  const CliResult r = run_cli({"data", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("\n  stats "), std::string::npos) << r.out;
  for (const char* flag : {"--no-duplicates", "--blur-threshold", "--blurriest", "--strict"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << " in " << r.out;
}

TEST(Help, HelpCommandShowsThatCommandsHelp) {
  const CliResult help = run_cli({"help", "train"}), direct = run_cli({"train", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_EQ(help.out, direct.out);
  EXPECT_EQ(help.out.rfind("usage: scalpel train ", 0), 0u) << help.out;
}

TEST(Help, ModelIsOptionalWhereACheckpointNamesIt) {
  for (const char* name : {"predict", "eval", "gradcam", "serve"}) {
    const CliResult r = run_cli({name, "--help"});
    const std::string usage = r.out.substr(0, r.out.find('\n'));
    EXPECT_NE(usage.find("--weights W [--model M]"), std::string::npos) << usage;
    EXPECT_NE(r.out.find("optional when --weights is a scalpel checkpoint"), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace scalpel::test
