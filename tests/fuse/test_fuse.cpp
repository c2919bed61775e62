// Inference fusion (models/fuse.h): BatchNorm folding and conv + activation fusion give the
// same logits as the unfused model in eval mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "layers/functional.h"
#include "layers/loss.h"
#include "layers/modules.h"
#include "layers/optim.h"
#include "models/fuse.h"
#include "models/registry.h"
#include "tensor/constants.h"
#include "tensor/cpu_isa.h"
#include "tensor/error.h"
#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

// Random running statistics and affine parameters, so folding has something to fold.
void randomize_batchnorms(nn::Module& model, Generator& gen) {
  for (auto& [name, m] : model.named_modules()) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(m);
    if (!bn) continue;
    uniform_(bn->running_mean, -0.5, 0.5, gen);
    uniform_(bn->running_var, 0.5, 2.0, gen);
    if (bn->weight.defined()) uniform_(bn->weight, 0.5, 1.5, gen);
    if (bn->bias.defined()) uniform_(bn->bias, -0.5, 0.5, gen);
  }
}

int64_t count_batchnorms(nn::Module& model) {
  int64_t n = 0;
  for (auto& [name, m] : model.named_modules()) n += dynamic_cast<nn::BatchNorm2d*>(m) != nullptr;
  return n;
}

// max |a - b| / max |a|
double relative_diff(const Tensor& a, const Tensor& b) {
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  const float* pa = ac.data<float>();
  const float* pb = bc.data<float>();
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < ac.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(pa[i]) - pb[i]));
    scale = std::max(scale, std::abs(static_cast<double>(pa[i])));
  }
  return diff / scale;
}

class FuseModel : public ::testing::TestWithParam<const char*> {};

TEST_P(FuseModel, FoldsEveryBatchNormAndKeepsTheLogits) {
  Generator gen(7);
  auto model = create_model(GetParam());
  randomize_batchnorms(*model, gen);
  model->eval();
  const Shape shape{2, 3, 96, 96};
  const Tensor x = randn(shape, gen);
  NoGradGuard no_grad;
  const Tensor expected = (*model)(x);

  const FuseReport report = fuse_batchnorm(*model, shape);
  EXPECT_EQ(report.batchnorms, count_batchnorms(*model));
  EXPECT_EQ(report.folded, report.batchnorms);  // every BN of these nets follows a conv
  const Tensor fused = (*model)(x);
  ASSERT_EQ(fused.shape(), expected.shape());
  EXPECT_LE(relative_diff(expected, fused), 1e-4);

  EXPECT_EQ(fuse_batchnorm(*model, shape).folded, 0);  // already folded
  EXPECT_LE(relative_diff(expected, (*model)(x)), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Zoo, FuseModel, ::testing::Values("resnet18", "mobilenet_v2", "efficientnet_b0"));

int64_t count_activation_layers(nn::Module& model) {
  int64_t n = 0;
  for (auto& [name, m] : model.named_modules()) n += dynamic_cast<nn::ActivationLayer*>(m) != nullptr;
  return n;
}

struct FuseCase {
  const char* model;
  bool every_activation_layer;  // every ActivationLayer follows a conv (+ BN) or a BN in a chain
  int64_t residual_blocks;  // ResNet blocks, MobileNet V2's residual InvertedResiduals
  int64_t batchnorms_left = 0;  // neither folded nor running an activation (DenseNet's norm5)
  int64_t input_transforms = 0;  // BN (+ activation) applied by the 1x1 conv that reads it
  int64_t squeeze_excite_blocks = 0;  // MBConvs whose projection applies the SE scales
};
void PrintTo(const FuseCase& c, std::ostream* os) { *os << c.model; }

class FuseForInference : public ::testing::TestWithParam<FuseCase> {};

// Conv + folded BN + activation (and ResNet's add + ReLU) run in the conv's store; the logits
// stay those of the unfused model, and with gradients on every layer runs unfused again.
TEST_P(FuseForInference, FusesAndKeepsTheLogits) {
  const FuseCase c = GetParam();
  Generator gen(8);
  auto model = create_model(c.model);
  randomize_batchnorms(*model, gen);
  model->eval();
  const Shape shape{2, 3, 64, 64};
  const Tensor x = randn(shape, gen);
  Tensor expected;
  {
    NoGradGuard no_grad;
    expected = (*model)(x);
  }
  const InferenceFuseReport report = fuse_for_inference(*model, shape);
  EXPECT_EQ(report.batchnorm.folded + report.batchnorm_activations + c.batchnorms_left, count_batchnorms(*model));
  if (c.every_activation_layer)
    EXPECT_EQ(report.activations + report.batchnorm_activations, count_activation_layers(*model));
  EXPECT_EQ(report.blocks, c.residual_blocks);
  EXPECT_EQ(report.input_transforms, c.input_transforms);
  EXPECT_EQ(report.squeeze_excite_blocks, c.squeeze_excite_blocks);
  {
    NoGradGuard no_grad;
    EXPECT_LE(relative_diff(expected, (*model)(x)), 1e-4);
    const InferenceFuseReport again = fuse_for_inference(*model, shape);
    EXPECT_EQ(again.activations + again.batchnorm_activations + again.blocks + again.input_transforms +
                  again.squeeze_excite_blocks,
              0);
  }
  EXPECT_LE(relative_diff(expected, (*model)(x).detach()), 1e-4);  // grad mode: the plain ops
}

INSTANTIATE_TEST_SUITE_P(Zoo, FuseForInference,
                         ::testing::Values(FuseCase{"mobilenet_v2", true, 10},
                                           FuseCase{"efficientnet_b0", true, 0, 0, 0, 16},
                                           // ResNet's stem: conv1 + folded bn1 + relu
                                           FuseCase{"resnet18", true, 8}, FuseCase{"resnet50", true, 16},
                                           // norm1 + relu1 (and the transitions') applied as conv1
                                           // reads them (58 layers + 3 transitions), conv1 + folded
                                           // norm2 + relu2 in the conv's store
                                           FuseCase{"densenet121", true, 0, 1, 61}),
                         [](const ::testing::TestParamInfo<FuseCase>& info) { return std::string(info.param.model); });

// fuse_for_inference's probes (a forward at its input shape) run before it declares the
// weights constant: nothing is derived from them for a shape the caller may never run (the
// float GEMM's transposed panels of resnet18's 2x2 layer4, here), only on a real call.
TEST(Fuse, DerivesNothingFromTheWeightsWhileFusing) {
  forget_prepacked_constants();
  auto model = create_model("resnet18");
  model->eval();
  const InferenceFuseReport report = fuse_for_inference(*model, {1, 3, 64, 64});
  EXPECT_GT(report.activations, 0);  // the stem's chain was probed
  EXPECT_GT(prepacked_constant_count(), 0);
  EXPECT_EQ(derived_value_count(), 0);
  NoGradGuard no_grad;
  (*model)(Tensor::zeros({1, 3, 64, 64}));
  if (cpu_supports(Isa::avx512)) EXPECT_GT(derived_value_count(), 0);  // layer4's transposed panels
  forget_prepacked_constants();
}

// fuse_for_inference declares every non-depthwise conv weight constant to the GEMM, whose bf16
// path then converts it once: the logits keep their bits (the same pairs feed the same
// products in the same order), and the declarations lapse with the model.
TEST(Fuse, DeclaresConvWeightsConstantToTheGemm) {
  forget_prepacked_constants();
  Generator gen(3);
  Tensor x = randn({2, 3, 64, 64}, gen);
  Tensor prepacked, per_call;
  {
    ModelOptions o;
    o.width = 0.5;
    auto model = create_model("mobilenet_v2", o);
    model->eval();
    int64_t gemm_convs = 0;
    for (auto& [name, m] : model->named_modules())
      if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) gemm_convs += conv->options.groups == 1;
    const InferenceFuseReport report = fuse_for_inference(*model, {1, 3, 64, 64});
    EXPECT_EQ(report.prepacked, gemm_convs);
    EXPECT_EQ(prepacked_constant_count(), gemm_convs);
    NoGradGuard no_grad;
    const bool bf16 = bf16_gemm_supported();  // else fp32, which reads A as before
    if (bf16) set_float32_matmul_precision(MatmulPrecision::bf16);
    prepacked = (*model)(x).contiguous();
    forget_prepacked_constants();
    per_call = (*model)(x).contiguous();
    set_float32_matmul_precision(MatmulPrecision::fp32);
    fuse_for_inference(*model, {1, 3, 64, 64});  // declares them again
    EXPECT_EQ(prepacked_constant_count(), gemm_convs);
  }
  EXPECT_EQ(prepacked_constant_count(), 0);
  EXPECT_EQ(prepacked.to_vector(), per_call.to_vector());
}

// An activation whose input is not a lone conv output stays where it is.
TEST(Fuse, LeavesActivationWithoutConvProducer) {
  nn::Sequential net;
  net.add(std::make_shared<nn::Conv2d>(3, 4, 3));
  net.add(std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions{.kernel = {2, 2}}));
  net.add(std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
  net.add(std::make_shared<nn::Conv2d>(4, 4, 1));
  net.add(std::make_shared<nn::ActivationLayer>(nn::Activation{"sigmoid"}));  // no epilogue for it
  net.eval();
  EXPECT_EQ(fuse_for_inference(net, {1, 3, 8, 8}).activations, 0);
}

// An unfolded BN, with or without the ReLU it then applies, whose only reader is a 1x1 conv of
// one group is applied by that conv as it reads its input; before a 3x3 conv (whose zero
// padding the transform would change) it keeps its own pass. Logits kept, eval and grad mode.
TEST(Fuse, AppliesBatchNormInThePointwiseConvThatReadsIt) {
  nn::Sequential net;
  net.add(std::make_shared<nn::BatchNorm2d>(3));
  net.add(std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
  net.add(std::make_shared<nn::Conv2d>(3, 6, 1));  // BN + ReLU in its input reads
  net.add(std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions{.kernel = {2, 2}}));
  net.add(std::make_shared<nn::BatchNorm2d>(6));
  net.add(std::make_shared<nn::Conv2d>(6, 5, 1));  // BN alone in its input reads
  net.add(std::make_shared<nn::BatchNorm2d>(5));  // folded into that conv
  net.add(std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
  net.add(std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions{.kernel = {2, 2}}));
  net.add(std::make_shared<nn::BatchNorm2d>(5));
  net.add(std::make_shared<nn::ActivationLayer>(nn::Activation{"relu"}));
  net.add(std::make_shared<nn::Conv2d>(5, 4, 3, nn::Conv2dOptions{.padding = nn::Padding2d::symmetric(1)}));
  Generator gen(4);
  randomize_batchnorms(net, gen);
  net.eval();
  const Tensor x = randn({2, 3, 16, 16}, gen);
  Tensor expected;
  {
    NoGradGuard no_grad;
    expected = net(x);
  }
  const InferenceFuseReport report = fuse_for_inference(net, {2, 3, 16, 16});
  EXPECT_EQ(report.input_transforms, 2);
  EXPECT_EQ(report.batchnorm_activations, 2);  // the first BN's and the last's
  {
    NoGradGuard no_grad;
    EXPECT_LE(relative_diff(expected, net(x)), 1e-5);
  }
  EXPECT_LE(relative_diff(expected, net(x).detach()), 1e-5);  // grad mode: the plain ops
}

TEST(Fuse, RefusesTrainingMode) {
  auto model = create_model("resnet18");
  EXPECT_THROW(fuse_batchnorm(*model, {1, 3, 64, 64}), Error);
}

// A BN that reads something other than a lone conv output stays as it is.
TEST(Fuse, LeavesBatchNormWithoutConvProducer) {
  nn::Sequential net;
  net.register_module("bn0", std::make_shared<nn::BatchNorm2d>(3));
  net.register_module("conv", std::make_shared<nn::Conv2d>(3, 4, 3));
  net.register_module("pool", std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions{.kernel = {2, 2}}));
  net.register_module("bn1", std::make_shared<nn::BatchNorm2d>(4));
  Generator gen(3);
  randomize_batchnorms(net, gen);
  net.eval();
  const Tensor x = randn({1, 3, 8, 8}, gen);
  NoGradGuard no_grad;
  const Tensor expected = net(x);
  const FuseReport report = fuse_batchnorm(net, {1, 3, 8, 8});
  EXPECT_EQ(report.batchnorms, 2);
  EXPECT_EQ(report.folded, 0);
  EXPECT_EQ(relative_diff(expected, net(x)), 0.0);
}

// ---------------------------------------------------------------- training fusion

// relu(batch_norm(x)) as one op: the same output, running statistics and gradients, bit for
// bit, in training and eval mode, on a contiguous input and on a channel slice of a wider one
// (DenseNet's feature buffer); float64 passes the gradient checker through it elsewhere
// (tests/autograd), so here the bits.
TEST(FuseForTraining, BatchNormReluIsReluOfBatchNormBitForBit) {
  Generator gen(3);
  const Tensor wide = randn({4, 10, 7, 6}, gen);
  for (const Tensor& x_in : {randn({4, 6, 7, 6}, gen), wide.slice(1, 2, 8)}) {
    for (bool training : {true, false}) {
      SCOPED_TRACE(fmt::format("training {}, contiguous {}", training, x_in.is_contiguous()));
      const Tensor w0 = randn({6}, gen), b0 = randn({6}, gen), gy = randn({4, 6, 7, 6}, gen);
      const Tensor mean0 = randn({6}, gen), var0 = ops::add_scalar(ops::mul(randn({6}, gen), randn({6}, gen)), 2.0);
      struct Result {
        Tensor y, gx, gw, gb, mean, var;
      };
      auto run = [&](bool fused) {
        Tensor x = x_in.detach(), w = w0.clone(), b = b0.clone();
        for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
        Result r{Tensor(), Tensor(), Tensor(), Tensor(), mean0.clone(), var0.clone()};
        r.y = fused ? nn::batch_norm_relu(x, r.mean, r.var, w, b, training, 0.1, 1e-5)
                    : nn::relu(nn::batch_norm(x, r.mean, r.var, w, b, training, 0.1, 1e-5));
        const std::vector<Tensor> g = grad(r.y, {x, w, b}, gy);
        r.gx = g[0], r.gw = g[1], r.gb = g[2];
        return r;
      };
      const Result fused = run(true), plain = run(false);
      EXPECT_EQ(fused.y.to_vector(), plain.y.to_vector());
      EXPECT_EQ(fused.gx.to_vector(), plain.gx.to_vector());
      EXPECT_EQ(fused.gw.to_vector(), plain.gw.to_vector());
      EXPECT_EQ(fused.gb.to_vector(), plain.gb.to_vector());
      EXPECT_EQ(fused.mean.to_vector(), plain.mean.to_vector());
      EXPECT_EQ(fused.var.to_vector(), plain.var.to_vector());
      const std::vector<double> y = fused.y.to_vector();
      EXPECT_GT(std::count(y.begin(), y.end(), 0.0), 0);  // the mask bites
    }
  }
}

// The pass marks the BN + ReLU pairs of DenseNet's chains and of ResNet's blocks; training
// steps of the marked model then give the unmarked model's bits (weights, running statistics).
TEST(FuseForTraining, MarksBatchNormReluPairsAndTrainsToTheSameBits) {
  struct Case {
    const char* model;
    int64_t pairs;  // DenseNet-121: stem, 58 layers x 2, 3 transitions; ResNet-18: stem, 8 blocks' bn1
  };
  for (const Case& c : {Case{"densenet121", 1 + 58 * 2 + 3}, Case{"resnet18", 1 + 8}}) {
    SCOPED_TRACE(c.model);
    Generator gen(5);
    auto plain = create_model(c.model), fused = create_model(c.model);
    fused->load_state_dict(plain->state_dict());
    plain->train();
    fused->train();
    const Shape shape{2, 3, 32, 32};
    EXPECT_EQ(fuse_for_training(*fused, shape), c.pairs);
    EXPECT_EQ(fuse_for_training(*fused, shape), 0) << "idempotent";
    const Tensor x = randn(shape, gen);
    const Tensor labels = Tensor::from_vector({1, 7}, {2}, DType::I64);
    for (nn::Module* m : {plain.get(), fused.get()}) {
      nn::SGD sgd({nn::ParamGroup{m->parameters(), 0.1}}, nn::SGDOptions{.momentum = 0.9});
      for (int step = 0; step < 2; ++step) {
        sgd.zero_grad();
        backward(nn::cross_entropy((*m)(x), labels));
        sgd.step();
      }
    }
    const std::vector<nn::NamedTensor> a = plain->state_dict(), b = fused->state_dict();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].tensor.dtype() != DType::F32) continue;
      ASSERT_EQ(a[i].tensor.to_vector(), b[i].tensor.to_vector()) << a[i].name;
    }
  }
}

}  // namespace
}  // namespace scalpel::models
