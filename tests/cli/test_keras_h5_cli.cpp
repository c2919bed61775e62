// A Keras .h5 through the CLI (the fer2013 mini-Xception of the shared samples): predict gives
// the library's logits, convert writes a checkpoint that predicts the same, and a truncated
// copy is one error line naming it. Skipped with a message when ../shared/samples is absent
// or scalpel was built without HDF5.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "autograd/autograd.h"
#include "models/import/import.h"
#include "support/cli_runner.h"
#include "tensor/atomic_file.h"
#include "tensor/io/hdf5.h"
#include "tensor/npy.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::run_cli;

const fs::path kFer = fs::path(SCALPEL_SAMPLES) / "weights/keras/fer2013_mini_XCEPTION.102-0.66.hdf5";

class Scratch {
 public:
  Scratch() {
    dir_ = fs::temp_directory_path() / fs::path("scalpel-keras-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  std::string operator/(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

#define SKIP_WITHOUT_FER()                                                               \
  if (!hdf5_supported()) GTEST_SKIP() << "scalpel built without HDF5 (libhdf5-dev)";     \
  if (!fs::exists(kFer)) GTEST_SKIP() << "shared samples absent: " << kFer

TEST(KerasH5Cli, PredictsAndConverts) {
  SKIP_WITHOUT_FER();
  Scratch scratch;
  Generator gen(4);
  const Tensor input = rand({2, 1, 64, 64}, gen);
  const std::string x = scratch / "x.npy";
  save_npy(x, input);
  Tensor expected;
  {
    NoGradGuard no_grad;
    auto model = models::build_imported_model(models::import_graph_file(kFer.string()));
    expected = model->forward(input);
  }
  CliResult r = run_cli({"predict", "--weights", kFer.string(), "--input-npy", x, "--output-npy", scratch / "a.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_npy(scratch / "a.npy").to_vector(), expected.to_vector());

  r = run_cli({"convert", "--weights", kFer.string(), "--out", scratch / "fer.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"predict", "--weights", scratch / "fer.safetensors", "--input-npy", x, "--output-npy",
               scratch / "b.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_npy(scratch / "b.npy").to_vector(), expected.to_vector());
}

TEST(KerasH5Cli, TruncatedFileIsOneErrorLine) {
  SKIP_WITHOUT_FER();
  Scratch scratch;
  const std::string bytes = read_file(kFer.string());
  const std::string truncated = scratch / "fer.h5";
  write_file_atomic(truncated, bytes.substr(0, bytes.size() * 2 / 3));
  save_npy(scratch / "x.npy", Tensor::zeros({1, 1, 64, 64}));
  const CliResult r = run_cli({"predict", "--weights", truncated, "--input-npy", scratch / "x.npy", "--output-npy",
                               scratch / "y.npy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // one line
  EXPECT_EQ(r.first_err_line().rfind("error: " + truncated + ": unreadable HDF5 file (truncated file", 0), 0u)
      << r.err;
  EXPECT_FALSE(fs::exists(scratch / "y.npy"));
}

}  // namespace
}  // namespace scalpel
