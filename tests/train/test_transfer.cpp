// Transfer learning and sampling in the training library (apps/train/trainer.h) on a tiny
// synthetic image folder: --freeze-backbone, --unfreeze-last N, --head-lr, the two-phase
// --head-epochs schedule (what trains in each phase, exact resume on both sides of the phase
// boundary) and --sampler.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "apps/demo/synthetic.h"
#include "apps/train/trainer.h"
#include "data/loader.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "tensor/random.h"

namespace scalpel::train {
namespace {

namespace fs = std::filesystem;

using Snapshot = std::map<std::string, std::vector<double>>;

Snapshot snapshot(const models::Model& model) {
  Snapshot out;
  for (const auto& p : model.named_parameters()) out[p.name] = p.tensor.to_vector();
  return out;
}

// The layers (parameter names up to the last dot) with a parameter that differs between a and b.
std::set<std::string> changed_layers(const Snapshot& a, const Snapshot& b) {
  std::set<std::string> out;
  for (const auto& [name, values] : a)
    if (values != b.at(name)) out.insert(name.substr(0, name.rfind('.')));
  return out;
}

std::set<std::string> all_layers(const Snapshot& s) {
  std::set<std::string> out;
  for (const auto& entry : s) out.insert(entry.first.substr(0, entry.first.rfind('.')));
  return out;
}

std::set<std::string> layers_requiring_grad(const models::Model& model) {
  std::set<std::string> out;
  for (const auto& p : model.named_parameters())
    if (p.tensor.requires_grad()) out.insert(p.name.substr(0, p.name.rfind('.')));
  return out;
}

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("scalpel-transfer-{}-{}",
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                                    getpid());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // ImageFolder of synthetic lesions, counts[c] images of class c, every sample in "train".
  data::Dataset make_dataset(const std::vector<int64_t>& counts) {
    for (size_t label = 0; label < counts.size(); ++label) {
      const fs::path dir = root_ / "data" / demo::kSyntheticClasses[label];
      fs::create_directories(dir);
      for (int64_t i = 0; i < counts[label]; ++i) {
        data::save_image((dir / fmt::format("{}.png", i)).string(),
                         demo::synthetic_lesion(static_cast<int64_t>(label), 32, 1, i));
      }
    }
    data::Warnings warnings;
    data::Dataset d = data::load_dataset((root_ / "data").string(), warnings);
    for (auto& s : d.samples) s.split = "train";
    return d;
  }

  // mobilenet_v1 x0.25 with 2 classes (219k parameters: fast), initialized from seed 3.
  static std::shared_ptr<models::Model> make_model() {
    manual_seed(3);
    models::ModelOptions o;
    o.classes = 2;
    o.width = 0.25;
    return models::create_model("mobilenet_v1", o);
  }

  TrainConfig config(const std::string& out) const {
    TrainConfig c;
    c.out_dir = (root_ / out).string();
    c.epochs = 1;
    c.batch_size = 16;  // the whole 16-image set: one step per epoch
    c.optimizer = "sgd";
    c.momentum = 0;
    c.lr = 0.05;
    c.sampler = "sequential";
    c.preprocess.width = c.preprocess.height = 32;
    c.preprocess.fit = data::Fit::stretch;
    c.preprocess.norm = data::normalization_preset("imagenet");
    c.workers = 0;
    c.quiet = true;
    return c;
  }

  models::CheckpointInfo info(const models::Model& model, const data::Dataset& d) const {
    return {"mobilenet_v1", model.options(), d.classes, Json()};
  }

  fs::path root_;
  std::ostringstream log_;
};

TEST_F(TransferTest, FreezeBackboneTrainsOnlyTheHead) {
  const data::Dataset d = make_dataset({8, 8});
  auto model = make_model();
  const Snapshot before = snapshot(*model);
  TrainConfig c = config("run");
  c.freeze_backbone = true;
  train_classifier(*model, d, info(*model, d), c, log_);
  EXPECT_EQ(changed_layers(before, snapshot(*model)), (std::set<std::string>{"fc"}));
  EXPECT_EQ(layers_requiring_grad(*model), (std::set<std::string>{"fc"}));
}

TEST_F(TransferTest, UnfreezeLastTrainsExactlyTheLastLayers) {
  const data::Dataset d = make_dataset({8, 8});
  auto model = make_model();
  const Snapshot before = snapshot(*model);
  TrainConfig c = config("run");
  c.unfreeze_last = 3;
  train_classifier(*model, d, info(*model, d), c, log_);
  // The last parameterized layers of mobilenet_v1 in definition order: ... stage3.1.1 (the
  // depthwise conv's BatchNorm), stage3.1.3 (pointwise conv), stage3.1.4 (its BatchNorm), then
  // the head fc.
  const std::set<std::string> expected = {"stage3.1.1", "stage3.1.3", "stage3.1.4", "fc"};
  EXPECT_EQ(changed_layers(before, snapshot(*model)), expected);
  EXPECT_EQ(layers_requiring_grad(*model), expected);
}

TEST_F(TransferTest, HeadLrScalesOnlyTheHeadsUpdate) {
  // One SGD step without momentum moves each parameter by -lr * grad, and the gradients do
  // not depend on the lr: a 4x head lr must give the head a 4x step and leave the rest alone.
  const data::Dataset d = make_dataset({8, 8});
  auto run = [&](const std::string& out, double head_lr) {
    auto model = make_model();
    const Snapshot before = snapshot(*model);
    TrainConfig c = config(out);
    c.head_lr = head_lr;
    train_classifier(*model, d, info(*model, d), c, log_);
    Snapshot delta = snapshot(*model);
    for (auto& [name, values] : delta)
      for (size_t i = 0; i < values.size(); ++i) values[i] -= before.at(name)[i];
    return delta;
  };
  const Snapshot same = run("same", 0.05), faster = run("faster", 0.2);
  int head_values = 0;
  for (const auto& [name, values] : same) {
    const std::vector<double>& other = faster.at(name);
    if (name.starts_with("fc.")) {
      for (size_t i = 0; i < values.size(); ++i, ++head_values) {
        EXPECT_NE(values[i], 0.0) << name;
        // The deltas are differences of float32 weights: a few ulps of the weight off.
        EXPECT_NEAR(other[i], 4 * values[i], 1e-3 * std::abs(4 * values[i]) + 2e-8) << name << "[" << i << "]";
      }
    } else {
      EXPECT_EQ(values, other) << name;
    }
  }
  EXPECT_EQ(head_values, 256 * 2 + 2);
}

TEST_F(TransferTest, HeadEpochsTrainTheHeadThenEveryLayerAtTheFinetuneLr) {
  const data::Dataset d = make_dataset({8, 8});
  auto model = make_model();
  std::vector<Snapshot> after_epoch = {snapshot(*model)};
  std::vector<std::set<std::string>> training;
  TrainConfig c = config("run");
  c.epochs = 3;
  c.head_epochs = 1;
  c.momentum = 0.9;
  c.on_epoch = [&](const EpochStats&) {
    after_epoch.push_back(snapshot(*model));
    training.push_back(layers_requiring_grad(*model));
  };
  const TrainResult r = train_classifier(*model, d, info(*model, d), c, log_);
  ASSERT_EQ(after_epoch.size(), 4u);
  EXPECT_EQ(changed_layers(after_epoch[0], after_epoch[1]), (std::set<std::string>{"fc"}));
  EXPECT_EQ(training[0], (std::set<std::string>{"fc"}));
  EXPECT_EQ(changed_layers(after_epoch[1], after_epoch[2]), all_layers(after_epoch[0]));
  EXPECT_EQ(training[1], all_layers(after_epoch[0]));
  ASSERT_EQ(r.history.size(), 3u);
  EXPECT_DOUBLE_EQ(r.history[0].lr, 0.05);
  EXPECT_DOUBLE_EQ(r.history[1].lr, 0.005);  // --finetune-lr defaults to lr / 10
  EXPECT_NE(log_.str().find("fine-tuning every layer"), std::string::npos) << log_.str();
}

TEST_F(TransferTest, HeadEpochsWithUnfreezeLastFineTunesOnlyThoseLayers) {
  const data::Dataset d = make_dataset({8, 8});
  auto model = make_model();
  std::vector<Snapshot> after_epoch = {snapshot(*model)};
  TrainConfig c = config("run");
  c.epochs = 2;
  c.head_epochs = 1;
  c.unfreeze_last = 2;
  c.finetune_lr = 0.01;
  c.on_epoch = [&](const EpochStats&) { after_epoch.push_back(snapshot(*model)); };
  const TrainResult r = train_classifier(*model, d, info(*model, d), c, log_);
  EXPECT_EQ(changed_layers(after_epoch[0], after_epoch[1]), (std::set<std::string>{"fc"}));
  EXPECT_EQ(changed_layers(after_epoch[1], after_epoch[2]),
            (std::set<std::string>{"stage3.1.3", "stage3.1.4", "fc"}));
  EXPECT_DOUBLE_EQ(r.history[1].lr, 0.01);
}

TEST_F(TransferTest, HeadKeepsItsOptimizerStateIntoTheSecondPhase) {
  const data::Dataset d = make_dataset({8, 8});
  auto model = make_model();
  TrainConfig c = config("run");
  c.epochs = 2;
  c.head_epochs = 1;
  c.batch_size = 8;  // two steps per epoch
  c.optimizer = "adam";
  train_classifier(*model, d, info(*model, d), c, log_);
  const auto ckpt = models::read_checkpoint((root_ / "run/last.safetensors").string());
  ASSERT_TRUE(ckpt && ckpt->training);
  // One group in definition order: the head's weight and bias are the last two parameters.
  const size_t params = model->named_parameters().size();
  std::map<size_t, double> adam_steps;  // parameter index -> Adam's per-parameter step count
  for (const auto& entry : ckpt->training->optimizer_state) {
    if (entry.name.ends_with(".step")) adam_steps[std::stoul(entry.name)] = entry.tensor.item();
  }
  ASSERT_EQ(adam_steps.size(), params);
  for (const auto& [index, steps] : adam_steps) EXPECT_EQ(steps, index + 2 >= params ? 4 : 2) << "parameter " << index;
}

// Stops a run after epoch `epoch` the way a kill would: the checkpoints are already written.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

TEST_F(TransferTest, ResumeOnEitherSideOfThePhaseBoundaryEqualsUninterrupted) {
  const data::Dataset d = make_dataset({8, 8});
  auto base = [&](const std::string& out) {
    TrainConfig c = config(out);
    c.epochs = 3;
    c.head_epochs = 1;
    c.batch_size = 8;  // two steps per epoch
    c.optimizer = "adam";
    c.lr = 0.01;
    c.schedule = "cosine";  // restarts with the second phase: resume must know where that began
    c.sampler = "shuffle";
    c.augment = "dermoscopy";
    c.log_json = (root_ / (out + ".jsonl")).string();
    return c;
  };
  auto read = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  {
    auto model = make_model();
    train_classifier(*model, d, info(*model, d), base("full"), log_);
  }
  const auto full = models::read_checkpoint((root_ / "full/last.safetensors").string());
  ASSERT_TRUE(full.has_value());
  for (int64_t stop_after : {1, 2}) {  // the end of the head phase; inside the fine-tuning phase
    const std::string out = fmt::format("part{}", stop_after);
    {
      auto model = make_model();
      TrainConfig c = base(out);
      c.on_epoch = [&](const EpochStats& e) {
        if (e.epoch == stop_after) throw Interrupted();
      };
      EXPECT_THROW(train_classifier(*model, d, info(*model, d), c, log_), Interrupted);
    }
    auto model = make_model();
    TrainConfig c = base(out);
    c.resume = true;
    train_classifier(*model, d, info(*model, d), c, log_);
    EXPECT_EQ(read(root_ / (out + ".jsonl")), read(root_ / "full.jsonl")) << "stopped after epoch " << stop_after;
    const auto resumed = models::read_checkpoint((root_ / out / "last.safetensors").string());
    ASSERT_TRUE(resumed.has_value());
    ASSERT_EQ(resumed->model.size(), full->model.size());
    for (size_t i = 0; i < full->model.size(); ++i) {
      EXPECT_EQ(resumed->model[i].second.to_vector(), full->model[i].second.to_vector())
          << full->model[i].first << ", stopped after epoch " << stop_after;
    }
  }
}

// The message of the Error that training with `c` throws, or "" when it trains.
std::string training_error(models::Model& model, const data::Dataset& d, const TrainConfig& c) {
  std::ostringstream log;
  try {
    train_classifier(model, d, {"mobilenet_v1", model.options(), d.classes, Json()}, c, log);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(TransferTest, BadTwoPhaseSettingsAndSamplersAreErrors) {
  const data::Dataset d = make_dataset({2, 2});
  auto model = make_model();
  TrainConfig c = config("run");
  c.epochs = 2;
  c.head_epochs = 2;
  EXPECT_NE(training_error(*model, d, c).find("--head-epochs 2 must be below --epochs 2"), std::string::npos);
  c.head_epochs = 1;
  c.freeze_backbone = true;
  EXPECT_NE(training_error(*model, d, c).find("--freeze-backbone"), std::string::npos);
  c.freeze_backbone = false;
  c.sampler = "balanced";
  EXPECT_NE(training_error(*model, d, c).find("--sampler: unknown sampling 'balanced'"), std::string::npos);
}

// Class shares over 40 epochs of the train loader that `sampler` gives on a 12:3 data set.
std::vector<double> class_shares(const data::Dataset& d, TrainConfig c, const std::string& sampler) {
  c.sampler = sampler;
  data::Warnings warnings;
  const data::DataLoader loader(d, train_loader_config(c), warnings);
  std::vector<double> counts(d.classes.size(), 0.0);
  double total = 0;
  for (int64_t epoch = 0; epoch < 40; ++epoch) {
    for (size_t index : loader.epoch_order(epoch)) {
      counts[static_cast<size_t>(d.samples[index].label)] += 1;
      total += 1;
    }
  }
  for (double& share : counts) share /= total;
  return counts;
}

TEST_F(TransferTest, WeightedSamplerBalancesAnImbalancedSet) {
  const data::Dataset d = make_dataset({12, 3});
  const TrainConfig c = config("run");
  EXPECT_NEAR(class_shares(d, c, "shuffle")[1], 3.0 / 15.0, 1e-12);
  // 600 draws with replacement at p = 1/2 each: the share's standard deviation is 0.02.
  EXPECT_NEAR(class_shares(d, c, "weighted")[1], 0.5, 0.08);
  EXPECT_NEAR(class_shares(d, c, "oversample")[1], 0.5, 1e-12);  // 12 + 12 per epoch
}

TEST_F(TransferTest, CliPrintsOnePlainLinePerEpochWhenStdoutIsNotATerminal) {
  make_dataset({4, 4});
  const auto r = test::run_cli({"train", "--model", "mobilenet_v1", "--width", "0.25", "--classes", "2", "--data",
                                (root_ / "data").string(),
                                "--out", (root_ / "run").string(), "--size", "32", "32", "--batch", "8", "--workers",
                                "1", "--epochs", "2", "--head-epochs", "1", "--finetune-lr", "0.0002", "--sampler",
                                "weighted"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << r.out;  // no progress bar in a file
  std::istringstream lines(r.out);
  std::vector<std::string> epochs;
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("epoch ")) epochs.push_back(line);
  ASSERT_EQ(epochs.size(), 3u) << r.out;
  EXPECT_TRUE(epochs[0].starts_with("epoch 1/2  loss ")) << epochs[0];
  EXPECT_EQ(epochs[1], "epoch 2: head phase done; fine-tuning every layer at lr 0.0002");
  EXPECT_TRUE(epochs[2].starts_with("epoch 2/2  loss ")) << epochs[2];
  EXPECT_NE(epochs[2].find("  lr 0.0002  "), std::string::npos) << epochs[2];
}

TEST(TrainCli, SamplerFlagErrors) {
  const std::vector<std::string> base = {"train", "--model", "resnet18", "--classes", "2", "--data", "/nonexistent",
                                         "--out", "/tmp/never-written"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  };
  const auto conflict = with({"--no-shuffle", "--sampler", "weighted"});
  EXPECT_EQ(conflict.exit_code, 1);
  EXPECT_EQ(conflict.first_err_line(), "error: --no-shuffle contradicts --sampler weighted") << conflict.err;
}

}  // namespace
}  // namespace scalpel::train
