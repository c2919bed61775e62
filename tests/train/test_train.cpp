// `scalpel train` end to end on tiny generated datasets: the loss falls, --log-json format,
// --resume equals an uninterrupted run, divergence keeps the last good checkpoint, bad input
// gives `error:` lines, and per-step losses match torchvision (fixture made at test time).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "apps/demo/synthetic.h"
#include "apps/train/trainer.h"
#include "autograd/autograd.h"
#include "layers/loss.h"
#include "layers/ops/conv2d.h"
#include "layers/optim.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "models/weights.h"
#include "support/cli_runner.h"
#include "support/synthetic_folders.h"
#include "support/files.h"
#include "tensor/io/weights.h"
#include "tensor/json.h"
#include "tensor/npy.h"

namespace fs = std::filesystem;
using scalpel::Json;
using scalpel::test::run_cli;

namespace {

using scalpel::test::slurp;

std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> rows;
  std::istringstream in(slurp(path));
  for (std::string line; std::getline(in, line);) rows.push_back(Json::parse(line, path));
  return rows;
}

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            fmt::format("scalpel-train-{}-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name(), getpid());
    fs::remove_all(root_);
    // ImageFolder of synthetic lesions: 2 classes x 8 images, 32x32.
    scalpel::test::write_synthetic_folder(root_ / "data", 8);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::vector<std::string> base_args(const std::string& out) const {
    return {"train", "--model", "resnet18", "--classes", "2", "--data", (root_ / "data").string(), "--out",
            (root_ / out).string(), "--size", "32", "32", "--batch", "8", "--seed", "3", "--workers", "1"};
  }
  fs::path root_;
};

TEST_F(TrainTest, LossFallsAndLogsEveryStep) {
  auto args = base_args("run");
  const std::string log = (root_ / "steps.jsonl").string();
  for (const char* a : {"--epochs", "6", "--optimizer", "adam", "--lr", "0.001", "--no-shuffle", "--no-augment",
                        "--log-json"}) {
    args.push_back(a);
  }
  args.push_back(log);
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = read_jsonl(log);
  ASSERT_EQ(rows.size(), 12u);  // 16 images / batch 8 x 6 epochs
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].at("step").as_int(), static_cast<int64_t>(i));
    EXPECT_TRUE(std::isfinite(rows[i].at("loss").as_number()));
  }
  const double first = rows[0].at("loss").as_number() + rows[1].at("loss").as_number();
  const double last = rows[10].at("loss").as_number() + rows[11].at("loss").as_number();
  EXPECT_LT(last, 0.5 * first) << r.out;
  for (const char* f : {"best.safetensors", "last.safetensors", "history.csv", "history.json", "split.csv"}) {
    EXPECT_TRUE(fs::exists(root_ / "run" / f)) << f;
  }
  EXPECT_EQ(Json::parse(slurp((root_ / "run/history.json").string())).size(), 6u);
  EXPECT_NE(r.out.find("epoch 6/6"), std::string::npos) << r.out;
}

TEST_F(TrainTest, ResumeEqualsUninterrupted) {
  // Shuffling and augmentation on: resume must reproduce the sample order and the draws.
  auto run = [&](const std::string& out, const char* epochs, bool resume) {
    auto args = base_args(out);
    for (const char* a : {"--optimizer", "sgd", "--lr", "0.01", "--split", "75/25/0", "--epochs"}) args.push_back(a);
    args.push_back(epochs);
    args.push_back("--log-json");
    args.push_back((root_ / (out + ".jsonl")).string());
    if (resume) args.push_back("--resume");
    return run_cli(args);
  };
  ASSERT_EQ(run("full", "3", false).exit_code, 0);
  ASSERT_EQ(run("part", "1", false).exit_code, 0);
  const auto resumed = run("part", "3", true);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;

  EXPECT_EQ(slurp((root_ / "full.jsonl").string()), slurp((root_ / "part.jsonl").string()));
  const auto a = scalpel::models::read_checkpoint((root_ / "full/last.safetensors").string());
  const auto b = scalpel::models::read_checkpoint((root_ / "part/last.safetensors").string());
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->model.size(), b->model.size());
  for (size_t i = 0; i < a->model.size(); ++i) {
    EXPECT_EQ(a->model[i].second.to_vector(), b->model[i].second.to_vector()) << a->model[i].first;
  }
  EXPECT_EQ(a->training->step, 6);
  // The resumed run's history holds the epoch before the interruption too.
  EXPECT_EQ(Json::parse(slurp((root_ / "part/history.json").string())).size(), 3u);
}

TEST_F(TrainTest, DivergenceKeepsLastGoodCheckpoint) {
  auto good = base_args("run");
  for (const char* a : {"--epochs", "1", "--optimizer", "sgd", "--lr", "0.001"}) good.push_back(a);
  ASSERT_EQ(run_cli(good).exit_code, 0);
  const std::string before = slurp((root_ / "run/last.safetensors").string());

  auto bad = base_args("run");
  for (const char* a : {"--epochs", "2", "--optimizer", "sgd", "--lr", "1e30"}) bad.push_back(a);
  const auto r = run_cli(bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.first_err_line().starts_with("error: training diverged")) << r.err;
  EXPECT_NE(r.first_err_line().find("step"), std::string::npos) << r.err;
  EXPECT_EQ(slurp((root_ / "run/last.safetensors").string()), before);
}

TEST_F(TrainTest, BadInputGivesErrorLines) {
  const std::string data = (root_ / "data").string(), out = (root_ / "o").string();
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {{"train", "--model", "resnet18", "--classes", "2", "--data", (root_ / "missing").string(), "--out", out},
       "missing"},
      {{"train", "--model", "resnet18", "--classes", "2", "--data", data, "--out", out, "--bogus", "1"}, "--bogus"},
      {{"train", "--model", "resnet18", "--classes", "2", "--data", data, "--out", out, "--optimizer", "lion"},
       "lion"},
      {{"train", "--model", "resnet18", "--classes", "5", "--data", data, "--out", out, "--size", "32", "32"},
       "classes"},
      {{"train", "--model", "resnet18", "--classes", "2", "--data", data}, "--out"},
      {{"train", "--model", "resnet18", "--classes", "2", "--data", data, "--out", out, "--resume"}, "--resume"},
  };
  for (const auto& c : cases) {
    const auto r = run_cli(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.mentions << ": " << r.err;
    EXPECT_TRUE(r.first_err_line().starts_with("error: ")) << r.err;
    EXPECT_NE(r.first_err_line().find(c.mentions), std::string::npos) << r.err;
  }
}

// 17 images at batch 8 leave a last batch of 1, on which batch norm cannot train (resnet18's
// last stage is 1x1 at 32x32): it is left out with a note, not an unrelated error.
TEST_F(TrainTest, LastBatchOfOneIsLeftOut) {
  scalpel::data::save_image((root_ / "data" / scalpel::demo::kSyntheticClasses[0] / "8.png").string(),
                            scalpel::demo::synthetic_lesion(0, 32, 1, 8));
  auto args = base_args("run");
  const std::string log = (root_ / "steps.jsonl").string();
  for (const char* a : {"--epochs", "1", "--no-shuffle", "--no-augment", "--log-json"}) args.push_back(a);
  args.push_back(log);
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_jsonl(log).size(), 2u);
  EXPECT_NE(r.out.find("a batch of 1 image left out"), std::string::npos) << r.out;
}

// An unreadable image (its header is fine, its data truncated) shrinks its batch of 2 to one
// image: that batch is left out too, and the warning naming the file comes when the loader
// meets it, before the epoch's line.
TEST_F(TrainTest, UnreadableImageWarnsWhenMetAndLeavesNoBatchOfOne) {
  const fs::path dir = root_ / "data" / scalpel::demo::kSyntheticClasses[0];
  const std::string png = slurp((dir / "0.png").string());
  std::ofstream(dir / "0a.png", std::ios::binary) << png.substr(0, png.size() / 2);  // second in order
  auto args = base_args("run");
  const std::string log = (root_ / "steps.jsonl").string();
  for (const char* a : {"--epochs", "1", "--batch", "2", "--no-shuffle", "--no-augment", "--log-json"}) {
    args.push_back(a);
  }
  args.push_back(log);
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_jsonl(log).size(), 7u);  // 17 files, batches of 2: the first and the last hold one image
  const size_t warning = r.out.find("0a.png"), epoch = r.out.find("epoch 1/1");
  ASSERT_NE(warning, std::string::npos) << r.out;
  EXPECT_LT(warning, epoch) << r.out;
}

TEST_F(TrainTest, DropLastDropsTheIncompleteBatch) {
  auto args = base_args("run");
  const std::string log = (root_ / "steps.jsonl").string();
  for (const char* a : {"--epochs", "1", "--batch", "6", "--drop-last", "--log-json"}) args.push_back(a);
  args.push_back(log);
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_jsonl(log).size(), 2u);  // 16 images: 6 + 6, the last 4 dropped
}

// The check through the CLI: OMP_NUM_THREADS=1 and 2 train the same weights and
// running statistics, bit for bit.
TEST_F(TrainTest, SameWeightsWithOneOrTwoThreads) {
  const char* before = std::getenv("OMP_NUM_THREADS");
  const std::string saved = before ? before : "";
  for (const char* threads : {"1", "2"}) {
    setenv("OMP_NUM_THREADS", threads, 1);
    auto args = base_args(std::string("run") + threads);
    for (const char* a : {"--epochs", "1", "--optimizer", "adam"}) args.push_back(a);
    const auto r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  if (before) setenv("OMP_NUM_THREADS", saved.c_str(), 1);
  else unsetenv("OMP_NUM_THREADS");
  const auto a = scalpel::models::read_checkpoint((root_ / "run1/last.safetensors").string());
  const auto b = scalpel::models::read_checkpoint((root_ / "run2/last.safetensors").string());
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->model.size(), b->model.size());
  for (size_t i = 0; i < a->model.size(); ++i) {
    EXPECT_EQ(a->model[i].second.to_vector(), b->model[i].second.to_vector()) << a->model[i].first;
  }
}

TEST(TrainMetrics, MacroF1MatchesHandComputed) {
  // class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 1 fp 0 fn 1 -> 2/3; class 2: tp 0 fp 1 fn 0 -> 0
  const double f1 = scalpel::train::macro_f1({0, 0, 1, 1}, {0, 2, 1, 0}, 3);
  EXPECT_NEAR(f1, (0.5 + 2.0 / 3.0 + 0) / 3, 1e-12);
}

// Parity with torchvision: scripts/make_train_fixtures.py trains resnet18 from a weights
// file it writes; scalpel starts from the same file with the same flags.
TEST(TrainParity, Resnet18SgdLossesMatchTorchvision) {
  if (std::system("/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch/torchvision";
  }
  const fs::path dir = fs::temp_directory_path() / fmt::format("scalpel-train-parity-{}", getpid());
  fs::remove_all(dir);
  const std::string script = fs::path(SCALPEL_FIXTURES).parent_path().parent_path() / "scripts/make_train_fixtures.py";
  ASSERT_EQ(std::system(fmt::format("/usr/bin/python3 '{}' '{}'", script, dir.string()).c_str()), 0);
  const auto r = run_cli({"train", "--model", "resnet18", "--classes", "3", "--weights", (dir / "resnet18.pt").string(),
                          "--data", (dir / "data").string(), "--out", (dir / "out").string(), "--epochs", "2",
                          "--batch", "8", "--optimizer", "sgd", "--lr", "0.001", "--momentum", "0.9", "--no-shuffle",
                          "--no-augment", "--size", "64", "64", "--normalize", "imagenet", "--seed", "0",
                          "--log-json", (dir / "steps.jsonl").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ours = read_jsonl((dir / "steps.jsonl").string());
  const Json torch = Json::parse(slurp((dir / "losses.json").string()));
  const auto& expected = torch.at("losses").as_array();
  ASSERT_EQ(ours.size(), expected.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    const double e = expected[i].as_number(), got = ours[i].at("loss").as_number();
    EXPECT_NEAR(got, e, 1e-3 * std::abs(e)) << "step " << i;
  }
  fs::remove_all(dir);
}

// Adam's float32 losses drift from torch's by ~1e-2 relative within 6 steps (SGD's stay within
// 1e-3): not a formula difference but float32 rounding amplified. In float64, from torch's own
// input batches, scalpel's per-step Adam losses equal torch's to 1e-9; torch's float32 run is
// itself ~1e-2 away from that float64 trajectory, and ours (im2col convs) within 4x of that
// (measured 0.6-2.1x; docs/numerics.md has the figures and the mechanism).
TEST(TrainParity, Resnet18AdamFloat64MatchesTorchAndFloat32DriftIsTorchsToo) {
  if (std::system("/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch/torchvision";
  }
  const fs::path dir = fs::temp_directory_path() / fmt::format("scalpel-train-adam-{}", getpid());
  fs::remove_all(dir);
  const std::string script = fs::path(SCALPEL_FIXTURES).parent_path().parent_path() / "scripts/make_train_fixtures.py";
  ASSERT_EQ(std::system(fmt::format("/usr/bin/python3 '{}' '{}' --adam", script, dir.string()).c_str()), 0);
  const Json torch = Json::parse(slurp((dir / "adam.json").string()));
  auto run = [&](scalpel::DType dtype) {
    using namespace scalpel;
    auto model = models::create_model("resnet18", {.classes = 3});
    models::load_weights(*model, load_weights_file((dir / "resnet18.pt").string()), "resnet18.pt");
    model->to(dtype);
    model->train();
    nn::Adam adam(nn::trainable_groups(*model, 1e-3, 0));
    std::vector<double> losses;
    for (int step = 0; step < 6; ++step) {
      const Tensor x = load_npy((dir / fmt::format("x{}.npy", step % 3)).string()).to(dtype);
      const Tensor y = load_npy((dir / fmt::format("y{}.npy", step % 3)).string());
      const Tensor loss = nn::cross_entropy(model->forward(x), y);
      losses.push_back(loss.item());
      adam.zero_grad();
      backward(loss);
      adam.step();
    }
    return losses;
  };
  // Im2col convs: the Winograd engine (the default for these 3x3 convs) rounds more in float32
  // (docs/numerics.md); its drift is printed, not checked.
  scalpel::ops::set_cpu_conv_algorithm(scalpel::ops::CpuConvAlgorithm::Im2colGemm);
  const std::vector<double> ours64 = run(scalpel::DType::F64), ours32 = run(scalpel::DType::F32);
  scalpel::ops::set_cpu_conv_algorithm(scalpel::ops::CpuConvAlgorithm::Auto);
  const std::vector<double> winograd32 = run(scalpel::DType::F32);
  const auto& torch64 = torch.at("float64").as_array();
  const auto& torch32 = torch.at("float32").as_array();
  double torch_drift = 0;  // torch's own float32 distance from the float64 trajectory
  for (size_t i = 0; i < torch64.size(); ++i) {
    const double exact = torch64[i].as_number();
    torch_drift = std::max(torch_drift, std::abs(torch32[i].as_number() - exact) / exact);
  }
  ASSERT_EQ(ours64.size(), torch64.size());
  for (size_t i = 0; i < ours64.size(); ++i) {
    const double exact = torch64[i].as_number();
    EXPECT_NEAR(ours64[i], exact, 1e-9 * exact) << "float64, step " << i;
    EXPECT_LE(std::abs(ours32[i] - exact) / exact, 4 * torch_drift + 1e-5)
        << "float32, step " << i << " (torch's float32 drift " << torch_drift << ")";
  }
  double ours_drift = 0, winograd_drift = 0;
  for (size_t i = 0; i < ours32.size(); ++i) {
    const double exact = torch64[i].as_number();
    ours_drift = std::max(ours_drift, std::abs(ours32[i] - exact) / exact);
    winograd_drift = std::max(winograd_drift, std::abs(winograd32[i] - exact) / exact);
  }
  std::printf("Adam float32 vs float64, max relative loss difference over 6 steps: torch %.2e, scalpel %.2e "
              "(im2col convs), %.2e (default engines)\n", torch_drift, ours_drift, winograd_drift);
  fs::remove_all(dir);
}

}  // namespace
