// DenseNet, Inception V3 and Xception:
//  - parity with torchvision (tests/fixtures/models/zoo_*, scripts/fixtures/zoo.py): weights,
//    BatchNorm statistics and input are name-hashed (hashed_weights.h), batch 2, odd sizes at
//    the networks' smallest inputs; eval-mode logits (our float32 and float64), then one
//    training step in float64 (train-mode logits, cross-entropy loss, every parameter's
//    gradient norm, some full gradients, the input gradient, BatchNorm statistics after the
//    step), against torch's float64 within 1e-4 relative;
//  - the issue's parameter counts (torchvision's, Keras' model.summary() for Xception);
//  - DenseNet's memory-efficient concatenation: every dense layer reads a view of its block's
//    one output buffer;
//  - Xception's structure (no torchvision model to compare with): Keras' layer names, shapes
//    and counts, SAME padding, separable convs without bias;
//  - Grad-CAM's default layer of each (the feature layer: forward_features' output), and
//    inference fusion (scalpel bench) keeping their logits;
//  - loading: torchvision's old DenseNet key names, and inception_v3's two heads replaced
//    together for another class count;
//  - Keras names as aliases, and "did you mean" for unknown names.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/autograd.h"
#include "layers/loss.h"
#include "layers/modules.h"
#include "models/densenet.h"
#include "models/fuse.h"
#include "models/inception.h"
#include "models/registry.h"
#include "models/weights.h"
#include "models/xception.h"
#include "hashed_weights.h"
#include "models_test_util.h"
#include "tensor/npy.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::fixtures_dir;
using test::read_json;

constexpr double kTolerance = 1e-4;

// max |a - b| / max(max |b|, floor)
double relative_error(const Tensor& ours, const Tensor& ref, double floor = 1e-12) {
  EXPECT_EQ(ours.numel(), ref.numel());
  const auto a = ours.to_vector(), b = ref.to_vector();
  double err = 0, scale = floor;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

// Runs the fixture's eval forward and training step on `module` (forward: its logits).
// float32: the eval-mode forward only. float64 (the module converted): the forward and the
// training step. In training, BatchNorm normalizes the last maps (1x1 at these smallest
// inputs) over the two samples alone, which is ill-conditioned: float32 rounding of the
// difference of two values changes the normalized output by percents (torch's own float32
// train-mode logits of densenet121 at 29x31 are 27% off its float64 ones), so the step is
// checked in float64 against torch's float64.
void expect_matches_fixture(const std::string& case_name, nn::Module& module,
                            const std::function<Tensor(const Tensor&)>& forward, DType dtype) {
  const fs::path dir = fixtures_dir() / case_name;
  const Json meta = read_json(dir / "meta.json");
  auto ref = [&](const std::string& stem) { return load_npy((dir / (stem + ".npy")).string()); };
  module.to(dtype);
  test::fill_hashed(module);
  Tensor x = test::hashed_values("input", test::to_shape(meta.at("input_shape")), dtype);
  x.set_requires_grad(true);

  module.eval();
  {
    NoGradGuard no_grad;
    EXPECT_LT(relative_error(forward(x), ref("logits_eval")), kTolerance) << case_name << " eval logits";
  }
  if (dtype == DType::F32) return;

  module.train();
  const Tensor logits = forward(x);
  std::vector<double> labels;
  for (const Json& l : meta.at("labels").as_array()) labels.push_back(l.as_number());
  const Tensor target = Tensor::from_vector(labels, {static_cast<int64_t>(labels.size())}, DType::I64);
  const Tensor loss = nn::cross_entropy(logits, target);
  backward(loss);
  EXPECT_LT(relative_error(logits, ref("logits_train")), kTolerance) << case_name << " train logits";
  EXPECT_LT(relative_error(loss, ref("loss")), kTolerance) << case_name << " loss";

  // Every parameter: the same names in the same order, and the same gradient norm.
  const auto params = module.named_parameters();
  const auto& names = meta.at("parameters").as_array();
  ASSERT_EQ(params.size(), names.size()) << case_name;
  const std::vector<double> norms = ref("grad_norms").to_vector();
  double largest = 0;
  for (double n : norms) largest = std::max(largest, n);
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_EQ(params[i].name, names[i].as_string()) << case_name;
    const Tensor g = params[i].tensor.grad();
    ASSERT_TRUE(g.defined()) << case_name << ": no gradient for " << params[i].name;
    const double ours = std::sqrt(ops::sum(ops::mul(g.to(DType::F64), g.to(DType::F64))).item());
    EXPECT_LT(std::abs(ours - norms[i]) / std::max(norms[i], 1e-3 * largest), kTolerance)
        << case_name << ": gradient norm of " << params[i].name;
  }
  for (const auto& [stem, shape] : meta.at("files").as_object()) {
    if (stem.rfind("grad.", 0) == 0) {
      const std::string name = stem.substr(5);
      for (const auto& p : params)
        if (p.name == name) EXPECT_LT(relative_error(p.tensor.grad(), ref(stem)), kTolerance) << case_name << " " << stem;
    } else if (stem.find("_after.") != std::string::npos) {
      const std::string buffer = stem.substr(stem.find(".") + 1) + "." + stem.substr(0, stem.find("_after."));
      bool found = false;
      for (const auto& b : module.named_buffers())
        if (b.name == buffer) {
          found = true;
          EXPECT_LT(relative_error(b.tensor, ref(stem)), kTolerance) << case_name << " " << buffer;
        }
      EXPECT_TRUE(found) << case_name << ": no buffer " << buffer;
    }
  }
  const Tensor gx = x.grad().contiguous().reshape({-1});
  EXPECT_LT(relative_error(gx.slice(0, 0, gx.numel(), meta.at("grad_sample_step").as_int()), ref("grad_x_sample")),
            kTolerance) << case_name << " input gradient";
  EXPECT_LT(relative_error(Tensor::scalar(std::sqrt(ops::sum(ops::mul(gx, gx)).item())), ref("grad_x_norm")),
            kTolerance) << case_name << " input gradient norm";
}

TEST(ZooParity, DenseNet121) {
  ModelOptions o;
  o.classes = 10;
  nn::SkipInitGuard hashed_next;
  auto model = create_model("densenet121", o);
  for (DType dtype : {DType::F32, DType::F64})
    expect_matches_fixture("zoo_densenet121", *model, [&](const Tensor& x) { return (*model)(x); }, dtype);
}

TEST(ZooParity, InceptionV3WithoutAuxHead) {
  ModelOptions o;
  o.classes = 10;
  o.aux_logits = false;
  o.dropout = 0.0;
  nn::SkipInitGuard hashed_next;
  auto model = create_model("inception_v3", o);
  for (DType dtype : {DType::F32, DType::F64})
    expect_matches_fixture("zoo_inception_v3_no_aux", *model, [&](const Tensor& x) { return (*model)(x); }, dtype);
}

TEST(ZooParity, InceptionAuxHead) {
  nn::SkipInitGuard hashed_next;
  InceptionAux aux(768, 10);
  for (DType dtype : {DType::F32, DType::F64})
    expect_matches_fixture("zoo_inception_aux", aux, [&](const Tensor& x) { return aux(x); }, dtype);
}

TEST(ZooCounts, MatchTheIssueTable) {
  nn::SkipInitGuard counting_only;
  EXPECT_EQ(create_model("densenet121")->count_parameters(), 7978856);
  EXPECT_EQ(create_model("densenet201")->count_parameters(), 20013928);
  EXPECT_EQ(create_model("inception_v3")->count_parameters(), 27161264);
  ModelOptions no_aux;
  no_aux.aux_logits = false;
  EXPECT_EQ(create_model("inception_v3", no_aux)->count_parameters(), 23834568);
  // Keras' Xception().summary(): total 22,910,480 = trainable 22,855,952 + non-trainable
  // 54,528 (the BatchNorms' moving mean and variance).
  auto xception = create_model("xception");
  EXPECT_EQ(xception->count_parameters(), 22855952);
  EXPECT_EQ(xception->count_buffers(), 54528);
}

TEST(DenseNet, LayersReadViewsOfTheBlockBufferInsteadOfCopies) {
  ModelOptions o;
  o.classes = 3;
  nn::SkipInitGuard hashed_next;
  auto model = create_model("densenet121", o);
  test::fill_hashed(*model);
  std::map<std::string, Tensor> inputs, outputs;
  std::map<const nn::Module*, std::string> names;
  for (const auto& [n, m] : model->named_modules())
    if (dynamic_cast<DenseLayer*>(m) || dynamic_cast<DenseBlock*>(m)) names[m] = n;
  nn::ForwardHookGuard hook([&](nn::Module& m, const Tensor& in, const Tensor& out) {
    auto it = names.find(&m);
    if (it == names.end()) return;
    inputs[it->second] = in;
    outputs[it->second] = out;
  });
  (*model)(test::hashed_values("input", {2, 3, 29, 29}));
  ASSERT_EQ(inputs.size(), 58u + 4u);
  for (const auto& [name, in] : inputs) {
    if (name.find(".denselayer") == std::string::npos) continue;  // the blocks themselves
    const std::string block = name.substr(0, name.find(".denselayer"));
    EXPECT_TRUE(in.shares_storage(outputs.at(block))) << name << " got a copy of its block's features";
  }
}

TEST(Inception, AuxHeadRunsInTrainingOnlyAndIsAHead) {
  nn::SkipInitGuard shapes_only;
  auto model = std::dynamic_pointer_cast<InceptionV3>(create_model("inception_v3"));
  ASSERT_TRUE(model);
  EXPECT_EQ(model->head_names(), (std::vector<std::string>{"fc", "AuxLogits.fc"}));
  EXPECT_EQ(model->head_parameter_names(),
            (std::vector<std::string>{"fc.weight", "fc.bias", "AuxLogits.fc.weight", "AuxLogits.fc.bias"}));
  EXPECT_EQ(model->feature_layer(), "Mixed_7c");
  model->eval();
  {
    NoGradGuard no_grad;
    EXPECT_EQ((*model)(Tensor::zeros({1, 3, 75, 75})).shape(), (Shape{1, 1000}));
    EXPECT_FALSE(model->aux_logits().defined());
  }
  model->train();
  const std::string msg = error_of([&] { (*model)(Tensor::zeros({2, 3, 75, 75})); });
  EXPECT_NE(msg.find("AuxLogits"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--aux-logits false"), std::string::npos) << msg;
  ModelOptions headless;
  headless.headless = true;
  EXPECT_EQ(create_model("inception_v3", headless)->child("AuxLogits"), nullptr);
}

TEST(Xception, KerasNamesShapesAndSeparableConvs) {
  nn::SkipInitGuard hashed_next;
  auto model = create_model("xception");
  test::fill_hashed(*model);
  EXPECT_EQ(model_info("xception").layout, "keras");
  EXPECT_EQ(model_info("xception").input_size, 299);
  EXPECT_EQ(model->feature_layer(), "block14_sepconv2_act");
  EXPECT_EQ(model->head_parameter_names(), (std::vector<std::string>{"predictions.weight", "predictions.bias"}));
  const auto params = model->named_parameters();
  const std::vector<std::string> first = {"block1_conv1.weight", "block1_conv1_bn.weight", "block1_conv1_bn.bias",
                                          "block1_conv2.weight", "block1_conv2_bn.weight", "block1_conv2_bn.bias",
                                          "block2.sepconv1.depthwise.weight", "block2.sepconv1.pointwise.weight"};
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(params[i].name, first[i]);
  int separable = 0;
  for (const auto& [name, m] : model->named_modules()) {
    if (auto* s = dynamic_cast<nn::SeparableConv2d*>(m)) {
      ++separable;
      EXPECT_FALSE(s->depthwise->bias.defined() || s->pointwise->bias.defined()) << name;
      EXPECT_EQ(s->depthwise->options.groups, s->in_channels) << name;
      EXPECT_TRUE(s->depthwise->options.same) << name;
    }
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m)) {
      EXPECT_EQ(bn->eps, 1e-3) << name;
      EXPECT_EQ(bn->momentum, 0.01) << name;
    }
  }
  EXPECT_EQ(separable, 2 + 2 + 2 + 8 * 3 + 2 + 2);
  // Keras' output sizes at its smallest input (71) and an odd non-square one: valid 3x3/2 and
  // 3x3 convs, then four SAME 3x3/2 max pools (ceil(n / 2)).
  model->eval();
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{71, 71}, {75, 80}}) {
    auto seen = test::record_shapes(*model, [&] {
      NoGradGuard no_grad;
      EXPECT_EQ((*model)(test::hashed_values("input", {2, 3, h, w})).shape(), (Shape{2, 1000}));
    }, 0);
    auto size = [](int64_t n, int k) {
      n = (n - 3) / 2 + 1 - 2;  // block1_conv1, block1_conv2
      for (int i = 0; i < k; ++i) n = (n + 1) / 2;
      return n;
    };
    EXPECT_EQ(seen["block1_conv2_act"], (Shape{2, 64, size(h, 0), size(w, 0)}));
    EXPECT_EQ(seen["block2"], (Shape{2, 128, size(h, 1), size(w, 1)}));
    EXPECT_EQ(seen["block4"], (Shape{2, 728, size(h, 3), size(w, 3)}));
    EXPECT_EQ(seen["block12"], (Shape{2, 728, size(h, 3), size(w, 3)}));
    EXPECT_EQ(seen["block14_sepconv2_act"], (Shape{2, 2048, size(h, 4), size(w, 4)}));
  }
  EXPECT_NE(error_of([&] { (*model)(Tensor::zeros({1, 3, 70, 71})); }).find("at least 71x71"), std::string::npos);
}

TEST(Xception, TrainingReachesEveryParameter) {
  ModelOptions o;
  o.classes = 3;
  nn::SkipInitGuard hashed_next;
  auto model = create_model("xception", o);
  test::fill_hashed(*model);
  model->train();
  backward(sum(mul((*model)(test::hashed_values("input", {2, 3, 71, 73})), 1.0)));
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    if (p.tensor.dim() >= 2) EXPECT_GT(ops::sum(ops::abs(p.tensor.grad())).item(), 0.0) << p.name;
  }
}

// Grad-CAM's default layer is the feature map forward_features() returns; then `scalpel
// bench`'s inference fusion (BatchNorms folded into convs, activations into conv stores) on
// the new networks' data flow (views of DenseNet's buffer, Inception's branches, Xception's
// separable convs and shortcuts) keeps the logits. Folded: DenseNet conv0's and every conv1's
// BatchNorm (the norm1s read the concatenation, the transitions' norms and norm5 a block's
// output); Inception all but the auxiliary head's two (not run in eval mode); Xception all.
TEST(NewModels, GradCamDefaultLayerAndInferenceFusion) {
  struct Case {
    std::string name, layer;
    int64_t channels, folded, batchnorms;
  };
  const Case cases[] = {{"densenet121", "features", 1024, 1 + 58, 121},
                        {"inception_v3", "Mixed_7c", 2048, 94, 94},
                        {"xception", "block14_sepconv2_act", 2048, 40, 40}};
  for (const Case& c : cases) {
    std::shared_ptr<Model> model;
    {
      nn::SkipInitGuard hashed_next;
      model = create_model(c.name);
    }
    test::fill_hashed(*model);
    EXPECT_EQ(model->feature_layer(), c.layer);
    EXPECT_EQ(model->feature_dim(), c.channels);
    model->eval();
    const Tensor x = test::hashed_values("input", {1, 3, 75, 79});
    nn::Module* module = nullptr;
    for (const auto& [n, m] : model->named_modules())
      if (n == c.layer) module = m;
    ASSERT_NE(module, nullptr) << c.name;
    Tensor hooked, features, logits;
    {
      NoGradGuard no_grad;
      nn::ForwardHookGuard guard([&](nn::Module& m, const Tensor&, const Tensor& out) {
        if (&m == module) hooked = out;
      });
      features = model->forward_features(x);
      logits = model->forward_head(features);
    }
    ASSERT_TRUE(hooked.defined()) << c.name;
    EXPECT_EQ(ops::max_abs_diff(hooked, features), 0.0) << c.name;
    EXPECT_EQ(features.size(1), c.channels) << c.name;

    NoGradGuard no_grad;
    const InferenceFuseReport r = fuse_for_inference(*model, x.shape());
    EXPECT_EQ(r.batchnorm.folded, c.folded) << c.name;
    EXPECT_EQ(r.batchnorm.batchnorms, c.batchnorms) << c.name;
    EXPECT_LT(relative_error((*model)(x), logits), kTolerance) << c.name;
  }
}

TEST(Weights, OldTorchvisionDenseNetNamesLoad) {
  nn::SkipInitGuard values_set_below;
  auto source = create_model("densenet121");
  test::fill_hashed(*source);
  NamedTensors old_names;
  for (const auto& t : source->state_dict()) {
    std::string name = t.name;
    // Those files predate num_batches_tracked (PyTorch 0.4.1).
    if (name.find("num_batches_tracked") != std::string::npos) continue;
    // torchvision < 0.4: "denselayer1.norm1.weight" was "denselayer1.norm.1.weight".
    for (const char* child : {".norm1.", ".relu1.", ".conv1.", ".norm2.", ".relu2.", ".conv2."}) {
      const size_t at = name.find(child);
      if (at != std::string::npos && name.find("denselayer") != std::string::npos)
        name = name.substr(0, at) + "." + std::string(child + 1, 4) + "." + std::string(1, child[5]) + "." +
               name.substr(at + 7);
    }
    old_names.push_back({name, t.tensor.clone()});
  }
  ASSERT_TRUE(std::any_of(old_names.begin(), old_names.end(), [](const auto& t) {
    return t.first == "features.denseblock1.denselayer1.norm.1.weight";
  }));
  auto target = create_model("densenet121");
  const LoadResult r = load_weights(*target, old_names, "densenet121-a639ec97.pth");
  EXPECT_FALSE(r.head_replaced);
  const auto loaded = target->state_dict(), expected = source->state_dict();
  for (size_t i = 0; i < loaded.size(); ++i)
    if (is_floating(loaded[i].tensor.dtype()))
      EXPECT_EQ(ops::max_abs_diff(loaded[i].tensor, expected[i].tensor), 0.0) << loaded[i].name;
}

TEST(Weights, InceptionHeadsAreReplacedTogether) {
  std::shared_ptr<Model> source;
  {
    nn::SkipInitGuard values_set_below;
    source = create_model("inception_v3");
  }
  test::fill_hashed(*source);
  NamedTensors file;
  for (const auto& t : source->state_dict()) file.push_back({t.name, t.tensor});
  ModelOptions four;
  four.classes = 4;
  auto target = create_model("inception_v3", four);
  const LoadResult r = load_weights(*target, file, "inception_v3_google.pth");
  EXPECT_TRUE(r.head_replaced);
  EXPECT_EQ(r.file_classes, 1000);
  for (const auto& t : target->named_parameters()) {
    if (t.name == "fc.weight" || t.name == "AuxLogits.fc.weight") EXPECT_EQ(t.tensor.shape(), (Shape{4, t.name == "fc.weight" ? 2048 : 768}));
    if (t.name == "Mixed_7c.branch_pool.conv.weight" || t.name == "AuxLogits.conv1.conv.weight") {
      const Tensor ref = test::hashed_values(t.name, t.tensor.shape());
      EXPECT_EQ(ops::max_abs_diff(t.tensor, ref), 0.0) << t.name;
    }
  }
}

TEST(ModelNames, KerasAliasesAndDidYouMean) {
  nn::SkipInitGuard names_only;
  const std::pair<std::string, std::string> aliases[] = {
      {"EfficientNetB0", "efficientnet_b0"}, {"ResNet50V2", "resnet50_v2"}, {"DenseNet201", "densenet201"},
      {"InceptionV3", "inception_v3"},       {"Xception", "xception"},       {"MobileNet", "mobilenet_v1"},
      {"VGG19", "vgg19"},
  };
  for (const auto& [alias, name] : aliases) {
    EXPECT_EQ(canonical_model_name(alias), name);
    EXPECT_EQ(model_info(alias).name, name);
    if (name != "vgg19") EXPECT_EQ(create_model(alias)->name(), name);
  }
  EXPECT_EQ(canonical_model_name("densenet169"), "densenet169");
  std::string msg = error_of([] { create_model("densenet12"); });
  EXPECT_NE(msg.find("unknown model 'densenet12'; did you mean 'densenet121'?"), std::string::npos) << msg;
  msg = error_of([] { model_info("InceptionV4"); });
  EXPECT_NE(msg.find("did you mean 'InceptionV3'?"), std::string::npos) << msg;
  msg = error_of([] { create_model("Xcepton"); });
  EXPECT_NE(msg.find("did you mean 'xception'?"), std::string::npos) << msg;
}

}  // namespace
}  // namespace scalpel::models
