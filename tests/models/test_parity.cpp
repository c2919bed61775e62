// Forward parity with PyTorch on real weight files:
//  - torchvision resnet18, resnet50, mobilenet_v2, efficientnet_b0 and vgg11 with random
//    weights (random BatchNorm statistics too): `scripts/make_fixtures.py models` writes the
//    state dict (torch.save zip), an input [2, 3, 160, 192] and float64 logits; we load the
//    state dict with the native torch reader (tensor/io/torch_load.h) under strict key
//    checking, so the names and shapes must equal torchvision's, and compare the logits of our
//    float32 eval-mode forward within 1e-4 of max |logit|. The stage outputs are compared too,
//    to say where a mismatch starts. Needs /usr/bin/python3 with torch (skips otherwise); the
//    files are cached in $SCALPEL_MODEL_FIXTURES (default /tmp/scalpel-model-fixtures).
//  - the real MobileNet V1 x0.25 checkpoint of ../shared/samples (legacy torch.save format,
//    "module." prefixes) loads 1:1 into mobilenet_v1 with padding torch, and classifies the
//    cat photo as a cat (skips when the samples are absent).
#include <gtest/gtest.h>

#include <cstdlib>

#include "autograd/autograd.h"
#include "data/image.h"
#include "data/transforms.h"
#include "layers/modules.h"
#include "models/registry.h"
#include "models_test_util.h"
#include "tensor/io/torch_load.h"
#include "tensor/npy.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;

constexpr double kRelativeTolerance = 1e-4;

fs::path model_fixture_dir() {
  const char* env = std::getenv("SCALPEL_MODEL_FIXTURES");
  return env && *env ? fs::path(env) : fs::path("/tmp/scalpel-model-fixtures");
}

bool torch_available() {
  static const bool available =
      std::system("/usr/bin/python3 -c 'import torch, torchvision' > /dev/null 2>&1") == 0;
  return available;
}

// The fixture folder of `name`, written by the fixture script unless already there (the script
// writes each model atomically, so meta.json present = complete). Empty when torch is missing.
fs::path ensure_fixture(const std::string& name) {
  const fs::path dir = model_fixture_dir() / name;
  if (fs::exists(dir / "meta.json")) return dir;
  if (!torch_available()) return {};
  const fs::path script = fs::path(SCALPEL_FIXTURES) / ".." / ".." / "scripts" / "make_fixtures.py";
  const std::string command = "/usr/bin/python3 '" + script.string() + "' models --model-dir '" +
                              model_fixture_dir().string() + "' --models " + name + " > /dev/null";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  return dir;
}

std::vector<nn::NamedTensor> to_state(const NamedTensors& tensors) {
  std::vector<nn::NamedTensor> state;
  for (const auto& [name, t] : tensors) state.push_back({name, t});
  return state;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// max |a - b| / max |b|
double relative_error(const Tensor& ours, const Tensor& ref) {
  EXPECT_EQ(ours.shape(), ref.shape());
  const auto a = ours.to_vector(), b = ref.to_vector();
  double err = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) err = std::max(err, std::abs(a[i] - b[i]));
  return err / std::max(max_abs(b), 1e-12);
}

class TorchvisionParity : public testing::TestWithParam<std::string> {};

TEST_P(TorchvisionParity, LogitsMatch) {
  const std::string name = GetParam();
  if (!torch_available() && !fs::exists(model_fixture_dir() / name / "meta.json"))
    GTEST_SKIP() << "/usr/bin/python3 with torch and torchvision is not available to write the " << name
                 << " fixture";
  const fs::path dir = ensure_fixture(name);
  ASSERT_TRUE(fs::exists(dir / "meta.json")) << "fixture script did not write " << dir;
  const Json meta = test::read_json(dir / "meta.json");

  std::shared_ptr<Model> model;
  {
    nn::SkipInitGuard loaded_next;  // the strict load below must then overwrite every tensor
    model = create_model(name);
  }
  const auto report = model->load_state_dict(to_state(load_torch((dir / "weights.pt").string())));
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.mismatched.empty());
  model->eval();

  const Tensor x = load_npy((dir / "input.npy").string());
  std::map<std::string, Tensor> stages;
  std::map<const nn::Module*, std::string> stage_of;
  for (const auto& [n, m] : model->named_modules())
    if (meta.at("features").contains(n)) stage_of[m] = n;
  Tensor logits;
  {
    NoGradGuard no_grad;
    nn::ForwardHookGuard hook([&](nn::Module& m, const Tensor&, const Tensor& out) {
      auto it = stage_of.find(&m);
      if (it != stage_of.end()) stages[it->second] = out;
    });
    logits = (*model)(x);
  }
  // Stage by stage first, so a failure says where the outputs start to differ.
  for (const auto& [stage, shape] : meta.at("features").as_object()) {
    ASSERT_TRUE(stages.count(stage)) << name << ": stage " << stage << " was not called";
    const Tensor ref = load_npy((dir / "features" / (stage + ".npy")).string());
    EXPECT_LT(relative_error(stages[stage], ref), kRelativeTolerance) << name << " stage " << stage;
  }
  const Tensor ref = load_npy((dir / "logits.npy").string());
  const double err = relative_error(logits, ref);
  EXPECT_LT(err, kRelativeTolerance) << name << " (torch's own float32 forward is off by "
                                     << meta.at("torch_float32_max_abs_err").as_number() << " of max |logit| "
                                     << meta.at("logits_abs_max").as_number() << ")";
  RecordProperty("relative_error", fmt::format("{:.3g}", err));
}

INSTANTIATE_TEST_SUITE_P(Models, TorchvisionParity,
                         testing::Values("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "vgg11"),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(MobileNetV1Checkpoint, LoadsOneToOneAndSeesACat) {
  const fs::path samples = SCALPEL_SAMPLES;
  const fs::path weights = samples / "weights" / "pytorch" / "mobilenetV1X0.25_pretrain.tar";
  const fs::path image = samples / "images" / "chelsea.png";
  if (!fs::exists(weights) || !fs::exists(image)) GTEST_SKIP() << "shared samples absent (" << samples << ")";

  ModelOptions o;
  o.width = 0.25;
  o.padding = "torch";
  o.activation = "leaky_relu:0.1";
  auto model = create_model("mobilenet_v1", o);
  const auto report = model->load_state_dict(to_state(load_torch(weights.string())));  // strict
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty());
  model->eval();

  // The checkpoint's preprocessing: short side 256 (bilinear), centre crop 224, ImageNet.
  const ModelInfo info = model_info("mobilenet_v1", o);
  EXPECT_EQ(info.preprocess, "imagenet");
  data::Image img = data::load_image(image.string());
  img = data::center_crop(data::resize_short_side(img, static_cast<int>(info.resize_size)),
                          static_cast<int>(info.input_size), static_cast<int>(info.input_size));
  const Tensor x = data::to_tensor(img, data::normalization_preset(info.preprocess));
  NoGradGuard no_grad;
  const Tensor p = nn::softmax((*model)(x), 1);
  const auto probs = p.to_vector();
  const auto top = std::max_element(probs.begin(), probs.end()) - probs.begin();
  // 281 tabby, 282 tiger cat, 285 Egyptian cat (the README: about 0.50 Egyptian cat).
  EXPECT_TRUE(top == 281 || top == 282 || top == 285) << "top-1 " << top << " p " << probs[top];
  EXPECT_GT(probs[281] + probs[282] + probs[285], 0.6);
}

}  // namespace
}  // namespace scalpel::models
