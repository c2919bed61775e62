// Imported networks (models/graph.h) through the CLI: a scalpel checkpoint of a GraphModel
// names no zoo model, yet predict, summary and convert take it like any checkpoint, and give
// the same logits as the library.
#include <gtest/gtest.h>

#include <filesystem>

#include "autograd/autograd.h"
#include "models/checkpoint.h"
#include "models/graph.h"
#include "support/cli_runner.h"
#include "tensor/npy.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::run_cli;

class Scratch {
 public:
  Scratch() {
    dir_ = fs::temp_directory_path() / fs::path("scalpel-graph-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  std::string operator/(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

Json ints(std::initializer_list<int64_t> v) {
  Json a = Json::array();
  for (int64_t x : v) a.as_array().push_back(Json(x));
  return a;
}

models::GraphNode node(std::string name, std::string op, std::vector<std::string> inputs, Json attrs) {
  models::GraphNode n;
  n.name = name;
  n.op = std::move(op);
  n.inputs = std::move(inputs);
  n.output = std::move(name);
  n.attrs = std::move(attrs);
  return n;
}

// A one-channel 24x24 classifier of 3 classes ending in softmax, as a Keras file would be.
std::shared_ptr<models::GraphModel> small_graph() {
  models::GraphSpec s;
  s.source = "keras";
  s.name = "tiny_cnn";
  s.input_shape = {1, 24, 24};
  Json conv = Json::object();
  conv["in_channels"] = 1;
  conv["out_channels"] = 4;
  conv["kernel"] = ints({3, 3});
  conv["stride"] = ints({2, 2});
  conv["same"] = true;
  Json bn = Json::object();
  bn["channels"] = 4;
  bn["eps"] = 1e-3;
  Json fc = Json::object();
  fc["in_features"] = 4;
  fc["out_features"] = 3;
  Json softmax = Json::object();
  softmax["axis"] = 1;
  s.nodes = {node("conv2d_1", "conv2d", {"input"}, conv), node("bn_1", "batch_norm", {"conv2d_1"}, bn),
             node("relu_1", "relu", {"bn_1"}, Json::object()),
             node("gap", "global_avg_pool", {"relu_1"}, Json::object()),
             node("dense", "linear", {"gap"}, fc), node("probs", "softmax", {"dense"}, softmax)};
  s.output = "probs";
  auto model = std::make_shared<models::GraphModel>(s);
  Generator gen(5);
  std::vector<nn::NamedTensor> state;
  for (const auto& [name, t] : model->state_dict())
    state.push_back({name, name.ends_with("running_var") ? abs(randn(t.shape(), gen)) + 0.5 : randn(t.shape(), gen)});
  model->load_state_dict(state);
  model->eval();
  return model;
}

TEST(GraphCli, CheckpointOfAnImportedNetworkRunsEverywhere) {
  Scratch scratch;
  auto model = small_graph();
  models::CheckpointInfo info;
  info.model = "ignored: a GraphModel is saved as 'graph'";
  info.options = model->options();
  info.class_names = {"angry", "happy", "sad"};
  const std::string ckpt = scratch / "tiny.safetensors", x = scratch / "x.npy";
  models::save_checkpoint(ckpt, *model, info);
  Generator gen(9);
  const Tensor input = randn({2, 1, 24, 24}, gen);
  save_npy(x, input);

  CliResult r = run_cli({"predict", "--weights", ckpt, "--input-npy", x, "--output-npy", scratch / "a.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Tensor expected;
  {
    NoGradGuard no_grad;
    expected = (*model)(input);
  }
  EXPECT_EQ(load_npy(scratch / "a.npy").to_vector(), expected.to_vector());

  r = run_cli({"convert", "--weights", ckpt, "--out", scratch / "copy.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"predict", "--weights", scratch / "copy.safetensors", "--input-npy", x, "--output-npy",
               scratch / "b.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_npy(scratch / "b.npy").to_vector(), expected.to_vector());
  const auto copy = models::read_checkpoint(scratch / "copy.safetensors");
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->info.model, "graph");
  EXPECT_EQ(copy->info.class_names, info.class_names);

  r = run_cli({"summary", "--weights", ckpt});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tiny_cnn (keras layout)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("conv2d_1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dense"), std::string::npos) << r.out;

  r = run_cli({"predict", "--model", "resnet18", "--weights", ckpt, "--input-npy", x, "--output-npy",
               scratch / "c.npy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.first_err_line().find("holds an imported network"), std::string::npos) << r.err;
  r = run_cli({"predict", "--weights", ckpt, "--classes", "5", "--input-npy", x, "--output-npy", scratch / "c.npy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.first_err_line().find("has 3 outputs"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace scalpel
