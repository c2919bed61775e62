// Data-parallel training (apps/train/distributed.h) under `mpirun -np 2`: 2 ranks x batch 4 with
// --sync-bn take the same steps as 1 process x batch 8 (per-step losses and final weights), and
// a failing rank ends the run with an `error:` naming it and no half-written checkpoint.
// Skipped with a message when mpirun is absent or scalpel was built without MPI.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "apps/demo/synthetic.h"
#include "data/image.h"
#include "models/checkpoint.h"
#include "support/cli_runner.h"
#include "support/synthetic_folders.h"
#include "tensor/json.h"

namespace fs = std::filesystem;
using scalpel::Json;
using scalpel::test::CliResult;
using scalpel::test::run_cli;

namespace {

std::string find_mpirun() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir) / "mpirun";
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

std::vector<double> step_losses(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> losses;
  for (std::string line; std::getline(in, line);) losses.push_back(Json::parse(line, path).at("loss").as_number());
  return losses;
}

bool close(double a, double b, double tolerance = 1e-5) {
  return std::abs(a - b) <= tolerance * std::max(1.0, std::abs(b));
}

class DistributedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mpirun_ = find_mpirun();
    if (mpirun_.empty()) GTEST_SKIP() << "mpirun not found (install openmpi-bin: make deps)";
    root_ = fs::temp_directory_path() /
            fmt::format("scalpel-dist-{}-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name(), getpid());
    fs::remove_all(root_);
    // ImageFolder of synthetic lesions: 2 classes x 8 images, 32x32 (2 global batches of 8).
    scalpel::test::write_synthetic_folder(root_ / "data", 8);
    setenv("OMP_NUM_THREADS", "1", 1);  // one core per rank on a small machine
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }

  std::vector<std::string> train_args(const std::string& out, const std::vector<std::string>& extra, int batch,
                                      int epochs) const {
    std::vector<std::string> a = {"train", "--classes", "2", "--data", (root_ / "data").string(), "--out",
                                  (root_ / out).string(), "--size", "32", "32", "--batch", std::to_string(batch),
                                  "--seed", "3", "--workers", "1", "--no-augment", "--epochs", std::to_string(epochs), "--log-json",
                                  (root_ / (out + ".jsonl")).string()};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  CliResult run_mpi(int ranks, const std::vector<std::string>& scalpel_args) const {
    std::vector<std::string> a = {"--oversubscribe", "--allow-run-as-root", "-np", std::to_string(ranks),
                                  SCALPEL_BINARY};
    a.insert(a.end(), scalpel_args.begin(), scalpel_args.end());
    return run_cli(a, mpirun_);
  }
  // 1 process x batch 8 against 2 ranks x batch 4 with --sync-bn.
  void expect_same_training(const std::vector<std::string>& extra, int epochs = 2) {
    const CliResult one = run_cli(train_args("one", extra, 8, epochs));
    ASSERT_EQ(one.exit_code, 0) << one.err;
    std::vector<std::string> dist_extra = extra;
    dist_extra.push_back("--sync-bn");
    const CliResult two = run_mpi(2, train_args("two", dist_extra, 4, epochs));
    if (two.err.find("built without MPI") != std::string::npos) GTEST_SKIP() << "scalpel was built without MPI";
    ASSERT_EQ(two.exit_code, 0) << two.err;
    // Rank 0 alone prints: one "samples:" line.
    EXPECT_EQ(two.out.find("samples:"), two.out.rfind("samples:")) << two.out;

    const auto a = step_losses((root_ / "one.jsonl").string()), b = step_losses((root_ / "two.jsonl").string());
    ASSERT_EQ(a.size(), static_cast<size_t>(2 * epochs));  // 16 images / global batch 8 per epoch
    ASSERT_EQ(b.size(), a.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(close(b[i], a[i])) << "step " << i << ": " << b[i] << " vs " << a[i];

    const auto wa = scalpel::models::read_checkpoint((root_ / "one/last.safetensors").string());
    const auto wb = scalpel::models::read_checkpoint((root_ / "two/last.safetensors").string());
    ASSERT_TRUE(wa && wb);
    ASSERT_EQ(wa->model.size(), wb->model.size());
    for (size_t t = 0; t < wa->model.size(); ++t) {
      const auto va = wa->model[t].second.to_vector(), vb = wb->model[t].second.to_vector();
      ASSERT_EQ(va.size(), vb.size()) << wa->model[t].first;
      size_t bad = 0, worst = 0;
      for (size_t i = 0; i < va.size(); ++i) {
        if (close(vb[i], va[i])) continue;
        ++bad;
        if (std::abs(vb[i] - va[i]) > std::abs(vb[worst] - va[worst])) worst = i;
      }
      EXPECT_EQ(bad, 0u) << wa->model[t].first << ": " << bad << " of " << va.size() << " values differ, e.g. "
                         << vb[worst] << " vs " << va[worst];
    }
    EXPECT_EQ(wb->training->step, 2 * epochs);
  }

  std::string mpirun_;
  fs::path root_;
};

// At the default learning rate (1e-3), as a normal training run. The sums over the batch (weight
// gradients, batch-norm statistics) add the samples as a tree whose halves are the ranks' shards
// (layers/ops/batch_tree.h), so the ranks take one process's steps up to the rounding of the
// loss's logged mean; ill-conditioned steps (Adam on gradients near zero, mobilenet_v2's last
// batch norms with 8 values per channel) would amplify any difference in summation order.
TEST_F(DistributedTest, TwoRanksEqualOneProcessResNet18Sgd) {
  expect_same_training({"--model", "resnet18", "--optimizer", "sgd"});
}

TEST_F(DistributedTest, TwoRanksEqualOneProcessResNet18Adam) {
  expect_same_training({"--model", "resnet18", "--optimizer", "adam"});
}

TEST_F(DistributedTest, TwoRanksEqualOneProcessMobileNetV2Sgd) {
  expect_same_training({"--model", "mobilenet_v2", "--dropout", "0", "--optimizer", "sgd"});
}

TEST_F(DistributedTest, TwoRanksEqualOneProcessMobileNetV2Adam) {
  expect_same_training({"--model", "mobilenet_v2", "--dropout", "0", "--optimizer", "adam"});
}

// The run's checkpoint of a distributed first epoch continues in one process with the same
// global batch as if it had run there throughout.
TEST_F(DistributedTest, ResumeWithAnotherRankCount) {
  const std::vector<std::string> model = {"--model", "resnet18", "--optimizer", "sgd"};
  const CliResult one = run_cli(train_args("one", model, 8, 2));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto first_args = train_args("part", model, 4, 1);
  first_args.push_back("--sync-bn");
  const CliResult first = run_mpi(2, first_args);
  if (first.err.find("built without MPI") != std::string::npos) GTEST_SKIP() << "scalpel was built without MPI";
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto resumed_args = train_args("part", model, 8, 2);
  resumed_args.push_back("--resume");
  const CliResult resumed = run_cli(resumed_args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto a = step_losses((root_ / "one.jsonl").string()), b = step_losses((root_ / "part.jsonl").string());
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(close(b[i], a[i])) << "step " << i << ": " << b[i] << " vs " << a[i];
}

// Rank 0 cannot write its checkpoint (last.safetensors is a folder) while rank 1 goes on to the
// next epoch's allreduce: the run ends with rank 0's error, and no temporary file is left.
TEST_F(DistributedTest, FailingRankStopsEveryRank) {
  fs::create_directories(root_ / "two" / "last.safetensors" / "in-the-way");
  const CliResult r = run_mpi(2, train_args("two", {"--model", "mobilenet_v2", "--dropout", "0"}, 4, 3));
  if (r.err.find("built without MPI") != std::string::npos) GTEST_SKIP() << "scalpel was built without MPI";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("error: rank 0 of 2: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("last.safetensors"), std::string::npos) << r.err;
  for (const auto& entry : fs::directory_iterator(root_ / "two")) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "last.safetensors" || name == "best.safetensors") << "left behind: " << name;
  }
  EXPECT_TRUE(scalpel::models::read_checkpoint((root_ / "two/best.safetensors").string()));
}

// Rank 1 stops responding (SIGSTOP once rank 0 has logged the first step: alive, not dead, so
// mpirun sees nothing): rank 0 waits in a collective, and after --dist-timeout 2 s the run ends
// with rank 0's error naming rank 1, well before the 3 epochs would have.
TEST_F(DistributedTest, HungRankStopsTheRunWithinTheTimeout) {
  const fs::path log = root_ / "two.jsonl";
  std::string command;
  for (const std::string& a : train_args("two", {"--model", "mobilenet_v2", "--dropout", "0", "--dist-timeout", "2"}, 4, 3))
    command += " '" + a + "'";
  const std::string stop_when_logging = fmt::format(
      "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then (while [ ! -s '{}' ]; do sleep 0.1; done; kill -STOP $$) & fi; "
      "exec '{}'{}",
      log.string(), SCALPEL_BINARY, command);
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = run_cli({"--oversubscribe", "--allow-run-as-root", "-np", "2", "sh", "-c", stop_when_logging}, mpirun_);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.err.find("built without MPI") != std::string::npos) GTEST_SKIP() << "scalpel was built without MPI";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("error: rank 0 of 2: rank 1 did not reach collective"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--dist-timeout 2 s"), std::string::npos) << r.err;
  EXPECT_LT(seconds, 60) << r.err;
}

// An unreadable image stops a distributed run with an error naming it (in one process it would
// be left out of its batch; a rank left without samples would skip a step the others take).
TEST_F(DistributedTest, UnreadableImageStopsTheRun) {
  const fs::path bad = root_ / "data" / scalpel::demo::kSyntheticClasses[0] / "3.png";
  fs::resize_file(bad, fs::file_size(bad) / 2);  // a valid header (the dataset keeps it), truncated pixels
  const CliResult r = run_mpi(2, train_args("two", {"--model", "mobilenet_v2", "--dropout", "0"}, 4, 1));
  if (r.err.find("built without MPI") != std::string::npos) GTEST_SKIP() << "scalpel was built without MPI";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("error: rank "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3.png"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(root_ / "two" / "last.safetensors"));
}

// The backend each device gets, said by rank 0 at the start: cuda-emu runs the CUDA backend's
// kernels, and its gradients go through host memory and MPI (NCCL needs a GPU). The first
// step's loss (before any update) is the CPU run's up to the kernels' rounding; later ones
// drift by the kernels' rounding amplified by the steps (0.3% at step 2 here), so the exact
// sums are checked in test_gradient_buckets.cpp instead.
TEST_F(DistributedTest, CudaEmuTrainsOverMpi) {
  const std::vector<std::string> model = {"--model", "mobilenet_v2", "--dropout", "0", "--optimizer", "sgd"};
  const CliResult cpu = run_mpi(2, train_args("cpu", model, 4, 1));
  if (cpu.err.find("built without MPI") != std::string::npos) GTEST_SKIP() << "scalpel was built without MPI";
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  EXPECT_NE(cpu.out.find("distributed: 2 ranks, backend mpi, device cpu\n"), std::string::npos) << cpu.out;
  auto emu_args = train_args("emu", model, 4, 1);
  emu_args.insert(emu_args.end(), {"--device", "cuda-emu"});
  const CliResult emu = run_mpi(2, emu_args);
  ASSERT_EQ(emu.exit_code, 0) << emu.err;
  EXPECT_NE(emu.out.find("distributed: 2 ranks, backend mpi, device cuda-emu\n"), std::string::npos) << emu.out;
  const auto a = step_losses((root_ / "cpu.jsonl").string()), b = step_losses((root_ / "emu.jsonl").string());
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), a.size());
  EXPECT_TRUE(close(b[0], a[0], 1e-4)) << b[0] << " vs " << a[0];
  EXPECT_TRUE(close(b[1], a[1], 1e-2)) << b[1] << " vs " << a[1];
  EXPECT_TRUE(scalpel::models::read_checkpoint((root_ / "emu/last.safetensors").string()));
}

// The device batch-norm kernels have no synchronized path: --sync-bn on a device is refused
// rather than silently trained with per-rank statistics.
TEST_F(DistributedTest, SyncBnOnADeviceIsRefused) {
  auto args = train_args("emu", {"--model", "mobilenet_v2", "--dropout", "0", "--sync-bn"}, 4, 1);
  args.insert(args.end(), {"--device", "cuda-emu"});
  const CliResult r = run_mpi(2, args);
  if (r.err.find("built without MPI") != std::string::npos) GTEST_SKIP() << "scalpel was built without MPI";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--sync-bn runs on the CPU only for now, got --device cuda-emu"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(root_ / "emu" / "last.safetensors"));
}

CliResult train_with_backend(const std::string& backend, const std::string& device) {
  return run_cli({"train", "--model", "resnet18", "--data", "no-such-folder", "--out",
                  (fs::temp_directory_path() / "scalpel-dist-nccl").string(), "--distributed", "--distributed-backend",
                  backend, "--device", device});
}

// NCCL reduces GPU memory: asked for with another device, the run stops before starting MPI.
TEST(Distributed, NcclNeedsACudaDevice) {
  for (const char* device : {"cpu", "cuda-emu"}) {
    const CliResult r = train_with_backend("nccl", device);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.first_err_line(), fmt::format("error: --distributed-backend nccl needs --device cuda (NCCL reduces GPU "
                                              "memory), got --device {}; use --distributed-backend mpi (or auto)",
                                              device))
        << r.err;
  }
}

// Where libnccl does not load (here: SCALPEL_NCCL_LIBRARY names a file that does not exist),
// nccl says so with dlopen's reason; a build without NCCL says that instead.
TEST(Distributed, NcclWithoutTheLibraryIsRefused) {
  setenv("SCALPEL_NCCL_LIBRARY", "libscalpel-no-such-nccl.so.2", 1);
  const CliResult r = train_with_backend("nccl", "cuda");
  unsetenv("SCALPEL_NCCL_LIBRARY");
  EXPECT_EQ(r.exit_code, 1);
  const std::string line = r.first_err_line();
  EXPECT_TRUE(line.starts_with("error: --distributed-backend nccl: ")) << r.err;
  EXPECT_TRUE(line.ends_with("; use --distributed-backend mpi (or auto)")) << r.err;
  EXPECT_TRUE(line.find("libnccl is not loadable (libscalpel-no-such-nccl.so.2: ") != std::string::npos ||
              line.find("built without NCCL") != std::string::npos)
      << r.err;
}

TEST(Distributed, UnknownBackendIsRefused) {
  const CliResult r = train_with_backend("gloo", "cpu");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.first_err_line(), "error: --distributed-backend: unknown backend 'gloo' (auto, mpi, nccl)") << r.err;
}

}  // namespace
