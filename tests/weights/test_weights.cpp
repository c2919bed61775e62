// Loading state dicts into models (models/weights.h) and scalpel checkpoints
// (models/checkpoint.h), at the API level; tests/cli/ covers the same through the binary.
//  - by name: exact copy; missing, unexpected and shape-mismatched keys all listed, and the
//    model left untouched on error
//  - head replacement: a 1000-class file into a 4-class model loads everything but the head,
//    which gets PyTorch's default initialization
//  - --weights-map order: renamed tensors load by position; counts must agree
//  - the timm table: hand-checked examples, and the full key sets of efficientnet_b0/b3 and
//    mobilenet_v1 map one-to-one onto ours
//  - checkpoints: model, options, class names, preprocessing and the training state (Adam
//    moments, step, epoch, RNG) come back exactly, so resuming takes the same next step
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "layers/modules.h"
#include "layers/optim.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "models/weights.h"
#include "support/errors.h"
#include "tensor/error.h"
#include "tensor/io/safetensors.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;

using scalpel::test::error_of;

ModelOptions small_options(int64_t classes = 1000) {
  ModelOptions o;
  o.width = 0.25;
  o.padding = "torch";
  o.classes = classes;
  return o;
}

NamedTensors state_of(const Model& model) {
  NamedTensors out;
  for (const auto& nt : model.state_dict()) out.push_back({nt.name, nt.tensor.clone()});
  return out;
}

std::shared_ptr<Model> blank(const std::string& name, const ModelOptions& o) {
  nn::SkipInitGuard skip;
  auto m = create_model(name, o);
  for (auto& nt : m->state_dict())
    if (is_floating(nt.tensor.dtype())) nt.tensor.copy_(Tensor::full(nt.tensor.shape(), 7.0));
  return m;
}

bool same(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && a.to_vector() == b.to_vector(); }

TEST(LoadWeights, ByNameCopiesEveryTensor) {
  manual_seed(1);
  auto source = create_model("mobilenet_v1", small_options());
  const NamedTensors file = state_of(*source);
  auto target = blank("mobilenet_v1", small_options());
  const LoadResult r = load_weights(*target, file, "file.pt");
  EXPECT_EQ(r.naming, "torchvision");
  EXPECT_FALSE(r.head_replaced);
  const auto loaded = target->state_dict();
  ASSERT_EQ(loaded.size(), file.size());
  for (size_t i = 0; i < file.size(); ++i) {
    EXPECT_EQ(loaded[i].name, file[i].first);
    EXPECT_TRUE(same(loaded[i].tensor, file[i].second)) << file[i].first;
  }
}

TEST(LoadWeights, ListsMissingUnexpectedAndMismatchedAndWritesNothing) {
  auto source = create_model("mobilenet_v1", small_options());
  NamedTensors file = state_of(*source);
  file.erase(file.begin() + 1);  // stage1.0.1.weight
  file.push_back({"extra.weight", Tensor::zeros({3})});
  for (auto& [name, t] : file)
    if (name == "stage2.0.3.weight") t = Tensor::zeros({5, 5, 1, 1});
  auto target = blank("mobilenet_v1", small_options());
  const std::string msg = error_of([&] { load_weights(*target, file, "bad.pt"); });
  EXPECT_NE(msg.find("bad.pt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 missing key(s): stage1.0.1.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 unexpected key(s): extra.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stage2.0.3.weight: model [128, 64, 1, 1], file [5, 5, 1, 1]"), std::string::npos) << msg;
  for (const auto& nt : target->named_parameters())
    EXPECT_EQ(nt.tensor.to_vector().front(), 7.0) << nt.name << " was written despite the error";
}

TEST(LoadWeights, OtherClassCountReplacesOnlyTheHead) {
  auto source = create_model("mobilenet_v1", small_options(1000));
  const NamedTensors file = state_of(*source);
  auto target = blank("mobilenet_v1", small_options(4));
  const LoadResult r = load_weights(*target, file, "imagenet.pt");
  EXPECT_TRUE(r.head_replaced);
  EXPECT_EQ(r.file_classes, 1000);
  std::map<std::string, Tensor> loaded;
  for (const auto& nt : target->state_dict()) loaded[nt.name] = nt.tensor;
  for (const auto& [name, t] : file) {
    if (name.rfind("fc.", 0) == 0) continue;
    EXPECT_TRUE(same(loaded.at(name), t)) << name;
  }
  // nn.Linear(256, 4)'s default: U(-1/sqrt(256), 1/sqrt(256)), not the 7s of blank().
  ASSERT_EQ(loaded.at("fc.weight").shape(), (Shape{4, 256}));
  double lo = 1, hi = -1;
  for (double v : loaded.at("fc.weight").to_vector()) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, -1.0 / 16);
  EXPECT_LE(hi, 1.0 / 16);
  EXPECT_LT(lo, 0);
  EXPECT_GT(hi, 0);
}

TEST(LoadWeights, HeadMismatchPlusAnotherProblemIsAnError) {
  auto source = create_model("mobilenet_v1", small_options(1000));
  NamedTensors file = state_of(*source);
  file.erase(file.begin());
  auto target = blank("mobilenet_v1", small_options(4));
  const std::string msg = error_of([&] { load_weights(*target, file, "f.pt"); });
  EXPECT_NE(msg.find("missing key(s): stage1.0.0.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fc.weight: model [4, 256], file [1000, 256]"), std::string::npos) << msg;
}

TEST(LoadWeights, NegativeRunningVarianceIsRefusedNamingTheTensor) {
  auto source = create_model("mobilenet_v1", small_options());
  NamedTensors file = state_of(*source);
  for (auto& [name, t] : file)
    if (name == "stage2.1.4.running_var") t.data<float>()[3] = -0.5f;
  auto target = blank("mobilenet_v1", small_options());
  const std::string msg = error_of([&] { load_weights(*target, file, "bad_var.pt"); });
  EXPECT_NE(msg.find("bad_var.pt: stage2.1.4.running_var holds a negative variance (-0.5 at index 3)"),
            std::string::npos) << msg;
  for (const auto& nt : target->named_parameters())
    EXPECT_EQ(nt.tensor.to_vector().front(), 7.0) << nt.name << " was written despite the error";
}

TEST(LoadWeights, WrongWidthSaysWhichWidthFitsInOneLine) {
  ModelOptions half = small_options();
  half.width = 0.5;
  auto source = create_model("mobilenet_v1", half);
  const NamedTensors file = state_of(*source);
  auto target = blank("mobilenet_v1", small_options());  // --width 0.25
  std::string msg = error_of([&] { load_weights(*target, file, "legacy.pth"); });
  EXPECT_EQ(msg, "legacy.pth does not fit mobilenet_v1 --width 0.25: the shapes of all 28 layers differ; it fits "
                 "--width 0.5");
  // Another class count as well: the width is still found (the head is a separate question).
  auto four = blank("mobilenet_v1", small_options(4));
  msg = error_of([&] { load_weights(*four, file, "legacy.pth"); });
  EXPECT_NE(msg.find("it fits --width 0.5"), std::string::npos) << msg;
  // No published width fits: one line with one example, not the whole list.
  NamedTensors odd = file;
  for (auto& [name, t] : odd)
    if (name == "stage1.0.0.weight") t = Tensor::zeros({5, 3, 3, 3});
  msg = error_of([&] { load_weights(*target, odd, "odd.pth"); });
  EXPECT_NE(msg.find("the shapes of all 28 layers differ (e.g. stage1.0.0.weight: model [8, 3, 3, 3], file "
                     "[5, 3, 3, 3]); no published --width fits either"),
            std::string::npos) << msg;
}

TEST(LoadWeights, OrderLoadsByPositionWhateverTheNames) {
  auto source = create_model("mobilenet_v1", small_options());
  NamedTensors file;
  int i = 0;
  for (const auto& [name, t] : state_of(*source)) {
    if (name.find("num_batches_tracked") != std::string::npos) {
      file.push_back({fmt::format("counter_{}", i++), t});  // integer scalars are skipped
    } else {
      file.push_back({fmt::format("layer_{}/kernel:0", i++), t});
    }
  }
  auto target = blank("mobilenet_v1", small_options());
  EXPECT_NE(error_of([&] { load_weights(*target, file, "keras.h5"); }).find("no name matches"), std::string::npos);
  const LoadResult r = load_weights(*target, file, "keras.h5", WeightsMap::order);
  EXPECT_EQ(r.naming, "order");
  ASSERT_FALSE(r.mapping.empty());
  EXPECT_EQ(r.mapping.front(), (std::pair<std::string, std::string>{"layer_0/kernel:0", "stage1.0.0.weight"}));
  const auto loaded = target->named_parameters();
  const auto expected = source->named_parameters();
  for (size_t k = 0; k < loaded.size(); ++k) EXPECT_TRUE(same(loaded[k].tensor, expected[k].tensor)) << loaded[k].name;

  file.pop_back();
  file.pop_back();  // fc.bias and fc.weight
  EXPECT_NE(error_of([&] { load_weights(*target, file, "keras.h5", WeightsMap::order); }).find("the networks differ"),
            std::string::npos);
}

TEST(LoadWeights, ParsesWeightsMap) {
  EXPECT_EQ(parse_weights_map("order"), WeightsMap::order);
  EXPECT_EQ(parse_weights_map("names"), WeightsMap::names);
  EXPECT_NE(error_of([] { parse_weights_map("shape"); }).find("--weights-map"), std::string::npos);
}

// ---------------------------------------------------------------- timm

std::string timm_one(const std::string& model, const std::string& name) {
  return rename_timm(model, {{name, Tensor::zeros({1})}}, "timm.safetensors").front().first;
}

TEST(TimmNames, TableExamples) {
  EXPECT_EQ(timm_one("efficientnet_b0", "conv_stem.weight"), "features.0.0.weight");
  EXPECT_EQ(timm_one("efficientnet_b0", "bn1.running_var"), "features.0.1.running_var");
  EXPECT_EQ(timm_one("efficientnet_b0", "blocks.0.0.conv_dw.weight"), "features.1.0.block.0.0.weight");
  EXPECT_EQ(timm_one("efficientnet_b0", "blocks.0.0.se.conv_reduce.bias"), "features.1.0.block.1.fc1.bias");
  EXPECT_EQ(timm_one("efficientnet_b0", "blocks.0.0.bn2.bias"), "features.1.0.block.2.1.bias");
  EXPECT_EQ(timm_one("efficientnet_b0", "blocks.1.0.conv_pw.weight"), "features.2.0.block.0.0.weight");
  EXPECT_EQ(timm_one("efficientnet_b0", "blocks.5.3.se.conv_expand.weight"), "features.6.3.block.2.fc2.weight");
  EXPECT_EQ(timm_one("efficientnet_b0", "blocks.6.0.conv_pwl.weight"), "features.7.0.block.3.0.weight");
  EXPECT_EQ(timm_one("efficientnet_b0", "blocks.6.0.bn3.num_batches_tracked"),
            "features.7.0.block.3.1.num_batches_tracked");
  EXPECT_EQ(timm_one("efficientnet_b0", "conv_head.weight"), "features.8.0.weight");
  EXPECT_EQ(timm_one("efficientnet_b0", "bn2.running_mean"), "features.8.1.running_mean");
  EXPECT_EQ(timm_one("efficientnet_b0", "classifier.weight"), "classifier.1.weight");
  EXPECT_EQ(timm_one("mobilenet_v1", "conv_stem.weight"), "stage1.0.0.weight");
  EXPECT_EQ(timm_one("mobilenet_v1", "blocks.0.0.conv_dw.weight"), "stage1.1.0.weight");
  EXPECT_EQ(timm_one("mobilenet_v1", "blocks.2.1.conv_pw.weight"), "stage1.5.3.weight");
  EXPECT_EQ(timm_one("mobilenet_v1", "blocks.3.0.bn1.weight"), "stage2.0.1.weight");
  EXPECT_EQ(timm_one("mobilenet_v1", "blocks.4.1.bn2.bias"), "stage3.1.4.bias");
  EXPECT_EQ(timm_one("mobilenet_v1", "classifier.bias"), "fc.bias");
  EXPECT_NE(error_of([] { timm_one("efficientnet_b0", "blocks.1.0.conv_xx.weight"); }).find("blocks.1.0.conv_xx.weight"),
            std::string::npos);
  EXPECT_NE(error_of([] { timm_one("resnet50", "conv_stem.weight"); }).find("only for efficientnet_b0..b7"),
            std::string::npos);
}

// The key set timm's EfficientNet / MobileNet V1 state dicts have, from timm's module layout
// (stem, blocks.<stage>.<block>.<layer>, head), given the blocks per stage.
std::vector<std::string> timm_keys(const std::vector<int>& blocks_per_stage, bool efficientnet) {
  const std::vector<std::string> conv = {"weight"};
  const std::vector<std::string> bn = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
  const std::vector<std::string> se = {"weight", "bias"};
  std::vector<std::string> keys;
  auto add = [&](const std::string& prefix, const std::vector<std::string>& leaves) {
    for (const auto& l : leaves) keys.push_back(prefix + "." + l);
  };
  add("conv_stem", conv);
  add("bn1", bn);
  for (size_t s = 0; s < blocks_per_stage.size(); ++s) {
    for (int b = 0; b < blocks_per_stage[s]; ++b) {
      const std::string p = fmt::format("blocks.{}.{}.", s, b);
      if (!efficientnet || s == 0) {
        add(p + "conv_dw", conv);
        add(p + "bn1", bn);
        if (efficientnet) add(p + "se.conv_reduce", se), add(p + "se.conv_expand", se);
        add(p + "conv_pw", conv);
        add(p + "bn2", bn);
      } else {
        add(p + "conv_pw", conv);
        add(p + "bn1", bn);
        add(p + "conv_dw", conv);
        add(p + "bn2", bn);
        add(p + "se.conv_reduce", se);
        add(p + "se.conv_expand", se);
        add(p + "conv_pwl", conv);
        add(p + "bn3", bn);
      }
    }
  }
  if (efficientnet) add("conv_head", conv), add("bn2", bn);
  add("classifier", {"weight", "bias"});
  return keys;
}

void expect_one_to_one(const std::string& model_name, const ModelOptions& o, const std::vector<std::string>& keys) {
  NamedTensors file;
  for (const auto& k : keys) file.push_back({k, Tensor::zeros({1})});
  std::set<std::string> renamed;
  for (const auto& [name, t] : rename_timm(model_name, file, "timm")) renamed.insert(name);
  std::set<std::string> ours;
  {
    nn::SkipInitGuard skip;
    for (const auto& nt : create_model(model_name, o)->state_dict()) ours.insert(nt.name);
  }
  EXPECT_EQ(renamed.size(), keys.size()) << model_name << ": two timm keys map to one name";
  EXPECT_EQ(renamed, ours) << model_name;
}

TEST(TimmNames, CoverEfficientNetAndMobileNetV1OneToOne) {
  expect_one_to_one("efficientnet_b0", {}, timm_keys({1, 2, 2, 3, 3, 4, 1}, true));
  // b3: depth 1.4 -> ceil(1.4 * n) blocks per stage.
  expect_one_to_one("efficientnet_b3", {}, timm_keys({2, 3, 3, 5, 5, 6, 2}, true));
  ModelOptions o;
  o.padding = "torch";
  expect_one_to_one("mobilenet_v1", o, timm_keys({1, 2, 2, 6, 2}, false));
}

TEST(TimmNames, TimmFileLoadsThroughTheTable) {
  ModelOptions o = small_options();
  auto source = create_model("mobilenet_v1", o);
  std::map<std::string, Tensor> ours;
  for (const auto& [name, t] : state_of(*source)) ours[name] = t;
  NamedTensors file;  // timm's names, our values
  for (const auto& key : timm_keys({1, 2, 2, 6, 2}, false)) file.push_back({key, ours.at(timm_one("mobilenet_v1", key))});
  auto target = blank("mobilenet_v1", o);
  const LoadResult r = load_weights(*target, file, "mobilenetv1_100.safetensors");
  EXPECT_EQ(r.naming, "timm");
  EXPECT_EQ(r.mapping.size(), file.size());
  for (const auto& nt : target->state_dict()) EXPECT_TRUE(same(nt.tensor, ours.at(nt.name))) << nt.name;
}

// ---------------------------------------------------------------- checkpoints

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / fmt::format("scalpel-weights-{}-{}", getpid(), name);
}

void set_grads(nn::Module& m, uint64_t seed) {
  Generator g(seed);
  for (auto& p : m.parameters()) p.set_grad(randn(p.shape(), g));
}

TEST(Checkpoint, RoundTripResumesExactly) {
  manual_seed(3);
  auto model = create_model("mobilenet_v1", small_options(3));
  nn::Adam adam(nn::trainable_groups(*model, 1e-2, 1e-4));
  for (uint64_t s = 0; s < 2; ++s) {
    set_grads(*model, s);
    adam.step();
  }
  Generator rng(99);
  rng.normal();  // leaves a cached spare: its exact bits must survive
  TrainingState training;
  training.step = adam.steps_taken();
  training.epoch = 1;
  training.optimizer = adam.name();
  training.optimizer_state = adam.state_dict();
  training.scheduler = "cosine:10";
  training.rng = rng.get_state();
  training.extra["best_accuracy"] = 0.5;
  CheckpointInfo info{"mobilenet_v1", model->options(), {"normal", "pneumonia", "covid"}, Json::object()};
  info.preprocess["normalize"] = "imagenet";
  const fs::path path = temp_path("resume.safetensors");
  save_checkpoint(path.string(), *model, info, &training);

  const auto ck = read_checkpoint(path.string());
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(ck->info.model, "mobilenet_v1");
  EXPECT_EQ(ck->info.options.classes, 3);
  EXPECT_EQ(ck->info.options.width, 0.25);
  EXPECT_EQ(ck->info.options.padding, "torch");
  EXPECT_EQ(ck->info.class_names, info.class_names);
  EXPECT_EQ(ck->info.preprocess, info.preprocess);
  ASSERT_TRUE(ck->training.has_value());
  EXPECT_EQ(ck->training->step, 2);
  EXPECT_EQ(ck->training->epoch, 1);
  EXPECT_EQ(ck->training->optimizer, "adam");
  EXPECT_EQ(ck->training->scheduler, "cosine:10");
  EXPECT_EQ(ck->training->extra, training.extra);
  Generator restored;
  restored.set_state(ck->training->rng);
  EXPECT_EQ(restored.normal(), rng.normal());
  EXPECT_EQ(restored.next_u32(), rng.next_u32());

  // Resume: same model and optimizer state -> the same next step.
  auto resumed = blank("mobilenet_v1", ck->info.options);
  load_weights(*resumed, ck->model, path.string());
  nn::Adam adam2(nn::trainable_groups(*resumed, 1e-2, 1e-4));
  adam2.load_state_dict(ck->training->optimizer_state);
  set_grads(*model, 7);
  set_grads(*resumed, 7);
  adam.step();
  adam2.step();
  const auto a = model->state_dict(), b = resumed->state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same(a[i].tensor, b[i].tensor)) << a[i].name;
  fs::remove(path);
}

TEST(Checkpoint, ModelEntriesAreAPlainStateDict) {
  auto model = create_model("mobilenet_v1", small_options());
  const fs::path path = temp_path("plain.safetensors");
  save_checkpoint(path.string(), *model, {"mobilenet_v1", model->options(), {}, Json()});
  const auto contents = read_safetensors(path.string());
  const auto state = model->state_dict();
  ASSERT_EQ(contents.tensors.size(), state.size());  // nothing but the state dict
  for (size_t i = 0; i < state.size(); ++i) EXPECT_EQ(contents.tensors[i].first, state[i].name);
  EXPECT_FALSE(read_checkpoint(path.string())->training.has_value());
  fs::remove(path);
}

TEST(Checkpoint, ForeignFilesAreNotCheckpoints) {
  const fs::path path = temp_path("foreign.safetensors");
  save_safetensors(path.string(), {{"fc.weight", Tensor::zeros({2, 2})}}, {{"format", "pt"}});
  EXPECT_FALSE(read_checkpoint(path.string()).has_value());
  save_safetensors(path.string(), {{"fc.weight", Tensor::zeros({2, 2})}},
                   {{"format", "scalpel"}, {"format_version", "9"}});
  EXPECT_NE(error_of([&] { read_checkpoint(path.string()); }).find("format_version '9'"), std::string::npos);
  save_safetensors(path.string(), {{"fc.weight", Tensor::zeros({2, 2})}},
                   {{"format", "scalpel"}, {"format_version", "1"}, {"model", "resnet18"}, {"options", "{"}});
  EXPECT_NE(error_of([&] { read_checkpoint(path.string()); }).find("metadata 'options'"), std::string::npos);
  fs::remove(path);
}

TEST(Checkpoint, OptionsJsonRoundTrip) {
  ModelOptions o;
  o.classes = 7;
  o.in_channels = 1;
  o.width = 0.5;
  o.activation = "leaky_relu:0.1";
  o.base_width = 16;
  o.bilinear = true;
  o.dropout = 0.3;
  o.aux_logits = false;  // inception_v3 trained without its auxiliary head
  const ModelOptions back = options_from_json(options_to_json(o));
  EXPECT_EQ(back.classes, 7);
  EXPECT_EQ(back.in_channels, 1);
  EXPECT_EQ(back.width, 0.5);
  EXPECT_EQ(back.activation, "leaky_relu:0.1");
  EXPECT_EQ(back.base_width, 16);
  EXPECT_EQ(back.bilinear, true);
  EXPECT_EQ(back.dropout, 0.3);
  EXPECT_EQ(back.aux_logits, false);
  EXPECT_FALSE(back.padding.has_value());
  EXPECT_NE(error_of([] { options_from_json(Json::parse(R"({"depth": 3})")); }).find("'depth'"), std::string::npos);
}

}  // namespace
}  // namespace scalpel::models
