// The Module interface (layers/module.h) on small modules built from autograd functions only:
// names, state dicts, loading, modes, freezing, counting, dtype moves and forward hooks.
#include <gtest/gtest.h>

#include <algorithm>

#include "autograd/autograd.h"
#include "cuda/tensor_ops.h"
#include "layers/module.h"
#include "support/errors.h"
#include "tensor/error.h"

namespace scalpel::nn {
namespace {

// y = x W^T + b with a counted buffer (like a running statistic) and an uncounted one.
class Affine : public Module {
 public:
  Affine(int64_t in, int64_t out) : Module("Affine") {
    weight = register_parameter("weight", Tensor::full({out, in}, 0.5));
    bias = register_parameter("bias", Tensor::zeros({out}));
    stat = register_buffer("stat", Tensor::ones({out}));
    steps = register_buffer("steps", Tensor::zeros({}, DType::I64), /*counted=*/false);
  }
  Tensor forward(const Tensor& x) override { return add(matmul(x, transpose(weight, 0, 1)), bias); }
  Tensor weight, bias, stat, steps;
};

// fc1 -> block (Sequential of two Affines), built bottom-up like the real blocks.
class Tiny : public Module {
 public:
  Tiny() : Module("Tiny") {
    scale = register_parameter("scale", Tensor::ones({1}));
    fc1 = register_module("fc1", std::make_shared<Affine>(3, 4));
    auto seq = std::make_shared<Sequential>();
    seq->add(std::make_shared<Affine>(4, 4)).add(std::make_shared<Affine>(4, 2));
    block = register_module("block", seq);
  }
  Tensor forward(const Tensor& x) override { return mul((*block)((*fc1)(x)), scale); }
  Tensor scale;
  std::shared_ptr<Affine> fc1;
  std::shared_ptr<Sequential> block;
};

std::vector<std::string> names(const std::vector<NamedTensor>& list) {
  std::vector<std::string> out;
  for (const auto& nt : list) out.push_back(nt.name);
  return out;
}

using scalpel::test::error_of;

TEST(Module, StateDictNamesFollowPyTorchOrder) {
  Tiny net;
  // Own parameters, own buffers, then children in registration order.
  const std::vector<std::string> expected{"scale",         "fc1.weight",     "fc1.bias",       "fc1.stat",
                                          "fc1.steps",     "block.0.weight", "block.0.bias",   "block.0.stat",
                                          "block.0.steps", "block.1.weight", "block.1.bias",   "block.1.stat",
                                          "block.1.steps"};
  EXPECT_EQ(names(net.state_dict()), expected);
  EXPECT_EQ(names(net.named_parameters()), (std::vector<std::string>{"scale", "fc1.weight", "fc1.bias",
                                                                     "block.0.weight", "block.0.bias",
                                                                     "block.1.weight", "block.1.bias"}));
  EXPECT_EQ(names(net.named_buffers()), (std::vector<std::string>{"fc1.stat", "fc1.steps", "block.0.stat",
                                                                  "block.0.steps", "block.1.stat", "block.1.steps"}));
  EXPECT_EQ(names(net.named_parameters(/*recurse=*/false)), std::vector<std::string>{"scale"});
  EXPECT_EQ(net.parameters().size(), 7u);
}

TEST(Module, ModulesKnowTheirDottedPath) {
  Tiny net;
  std::vector<std::string> paths, types;
  for (auto& [name, m] : net.named_modules()) {
    paths.push_back(name);
    types.push_back(m->type());
    EXPECT_EQ(m->path(), name);  // assigned even though "block" was filled before registration
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"", "fc1", "block", "block.0", "block.1"}));
  EXPECT_EQ(types, (std::vector<std::string>{"Tiny", "Affine", "Sequential", "Affine", "Affine"}));
  EXPECT_EQ(net.label(), "Tiny");
  EXPECT_EQ(net.block->child("1")->label(), "block.1");
  EXPECT_EQ(net.child("nope"), nullptr);

  // Registering the whole net under a parent renames the subtree.
  Sequential outer;
  outer.add("backbone", std::shared_ptr<Tiny>(new Tiny));
  EXPECT_EQ(outer.child("backbone")->child("block")->child("0")->path(), "backbone.block.0");
}

TEST(Module, CountsParametersAndCountedBuffers) {
  Tiny net;
  const int64_t params = 1 + (12 + 4) + (16 + 4) + (8 + 2);
  EXPECT_EQ(net.count_parameters(), params);
  EXPECT_EQ(net.count_parameters(/*trainable_only=*/true), params);
  EXPECT_EQ(net.count_buffers(), 4 + 4 + 2);  // "steps" is bookkeeping, not counted
}

TEST(Module, TrainEvalPropagatesToEveryModule) {
  Tiny net;
  for (auto& [name, m] : net.named_modules()) EXPECT_TRUE(m->is_training()) << name;
  net.eval();
  for (auto& [name, m] : net.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  net.block->train();
  EXPECT_FALSE(net.is_training());
  EXPECT_TRUE(net.block->child("1")->is_training());
}

TEST(Module, FreezingByPrefix) {
  Tiny net;
  EXPECT_EQ(net.set_requires_grad("block", false), 4);
  EXPECT_EQ(net.set_requires_grad("block", false), 0);  // already frozen: nothing changes
  EXPECT_EQ(net.count_parameters(true), 1 + 12 + 4);
  for (const auto& nt : net.named_parameters())
    EXPECT_EQ(nt.tensor.requires_grad(), nt.name.rfind("block.", 0) != 0) << nt.name;

  // A prefix matches whole name components: "fc" is not "fc1".
  EXPECT_NE(error_of([&] { net.set_requires_grad("fc", false); }).find("no parameter name starts with 'fc'"),
            std::string::npos);
  EXPECT_EQ(net.set_requires_grad("fc1.bias", false), 1);
  EXPECT_EQ(net.set_requires_grad("block.1.", true), 2);
  EXPECT_EQ(net.set_requires_grad("", true), 3);
  EXPECT_EQ(net.count_parameters(true), net.count_parameters());

  // Frozen parameters get no gradient; the others do.
  net.set_requires_grad("block.0", false);
  Tensor loss = sum(net(Tensor::ones({2, 3})));
  backward(loss);
  EXPECT_FALSE(net.block->child("0")->named_parameters()[0].tensor.grad().defined());
  EXPECT_TRUE(net.fc1->weight.grad().defined());
  EXPECT_TRUE(net.scale.grad().defined());
  net.zero_grad();
  EXPECT_FALSE(net.fc1->weight.grad().defined());
}

std::vector<NamedTensor> filled_state(const Module& m, double base) {
  std::vector<NamedTensor> out;
  double v = base;
  for (const auto& nt : m.state_dict()) {
    Tensor t = Tensor::empty(nt.tensor.shape(), nt.tensor.dtype());
    t.fill_(v);
    v += 1;
    out.push_back({nt.name, t});
  }
  return out;
}

TEST(Module, LoadStateDictCopiesInPlace) {
  Tiny net, other;
  const auto state = filled_state(other, 10);
  Tensor held = net.fc1->weight;  // a handle kept by a layer must see the new values
  const auto report = net.load_state_dict(state);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.mismatched.empty());
  auto loaded = net.state_dict();
  for (size_t i = 0; i < state.size(); ++i) EXPECT_EQ(ops::max_abs_diff(loaded[i].tensor, state[i].tensor), 0) << state[i].name;
  EXPECT_EQ(held.at({0, 0}), 11);
  EXPECT_TRUE(held.requires_grad());
  EXPECT_FALSE(held.shares_storage(state[1].tensor));  // copied, not aliased
}

TEST(Module, LoadStateDictStrictListsEveryProblemAndChangesNothing) {
  Tiny net;
  auto state = filled_state(net, 10);
  state.erase(std::remove_if(state.begin(), state.end(), [](auto& nt) { return nt.name == "fc1.bias"; }),
              state.end());
  state.push_back({"fc2.weight", Tensor::zeros({2})});
  for (auto& nt : state)
    if (nt.name == "block.1.weight") nt.tensor = Tensor::zeros({3, 4});
  const std::string message = error_of([&] { net.load_state_dict(state); });
  EXPECT_NE(message.find("1 missing key(s): fc1.bias"), std::string::npos) << message;
  EXPECT_NE(message.find("1 unexpected key(s): fc2.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("block.1.weight: model [2, 4], given [3, 4]"), std::string::npos) << message;
  EXPECT_EQ(net.fc1->weight.at({0, 0}), 0.5);  // untouched

  const auto report = net.load_state_dict(state, /*strict=*/false);
  EXPECT_EQ(report.missing, std::vector<std::string>{"fc1.bias"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"fc2.weight"});
  EXPECT_EQ(report.mismatched, std::vector<std::string>{"block.1.weight"});
  EXPECT_EQ(net.fc1->weight.at({0, 0}), 11);  // the matching keys were loaded
  EXPECT_EQ(net.fc1->bias.at({0}), 0);
}

TEST(Module, UncountedBuffersAreOptionalOnLoad) {
  Tiny net;
  auto state = filled_state(net, 1);
  state.erase(std::remove_if(state.begin(), state.end(), [](auto& nt) { return nt.name.ends_with("steps"); }),
              state.end());
  EXPECT_NO_THROW(net.load_state_dict(state));
  state.erase(state.begin() + 3);  // fc1.stat: a counted buffer is required
  EXPECT_NE(error_of([&] { net.load_state_dict(state); }).find("missing key(s): fc1.stat"), std::string::npos);
}

TEST(Module, LongKeyListsAreShortened) {
  Tiny net;
  std::vector<NamedTensor> state = net.state_dict();
  for (int i = 0; i < 15; ++i) state.push_back({"extra" + std::to_string(i), Tensor::zeros({1})});
  const std::string message = error_of([&] { net.load_state_dict(state); });
  EXPECT_NE(message.find("15 unexpected key(s): extra0, "), std::string::npos) << message;
  EXPECT_NE(message.find("extra9, and 5 more"), std::string::npos) << message;
}

TEST(Module, ToDtypeConvertsInPlaceAndKeepsFlags) {
  Tiny net;
  net.set_requires_grad("fc1", false);
  Tensor held = net.block->named_parameters()[0].tensor;
  net.to(DType::F64);
  for (const auto& nt : net.state_dict())
    EXPECT_EQ(nt.tensor.dtype(), nt.name.ends_with("steps") ? DType::I64 : DType::F64) << nt.name;
  EXPECT_EQ(held.dtype(), DType::F64);
  EXPECT_FALSE(net.fc1->weight.requires_grad());
  EXPECT_TRUE(held.requires_grad());
  Tensor y = net(Tensor::ones({1, 3}, DType::F64));
  EXPECT_EQ(y.dtype(), DType::F64);
  EXPECT_NEAR(y.at({0, 0}), 0.5 * 4 * (0.5 * 4 * 1.5), 1e-12);  // 3 * 0.5 = 1.5, then x2 per layer
  EXPECT_THROW(net.to(DType::I64), Error);
}

TEST(Module, ToDeviceAndLoadingAcrossDevices) {
  const Device emu{DeviceType::CUDAEmu, 0};
  cuda::init();
  Tiny net, reference;
  const auto state = filled_state(reference, 3);
  net.to(emu);
  for (const auto& nt : net.state_dict()) EXPECT_EQ(nt.tensor.device(), emu) << nt.name;
  EXPECT_TRUE(net.fc1->weight.requires_grad());
  net.load_state_dict(state);  // CPU values into a module on the device
  net.to(Device::cpu());
  const auto loaded = net.state_dict();
  for (size_t i = 0; i < state.size(); ++i) EXPECT_EQ(ops::max_abs_diff(loaded[i].tensor, state[i].tensor), 0) << state[i].name;
}

TEST(Module, RegistrationRejectsBadNames) {
  Affine a(2, 2);
  EXPECT_NE(error_of([&] { a.register_parameter("weight", Tensor::zeros({1})); }).find("'weight' is already used"),
            std::string::npos);
  EXPECT_THROW(a.register_buffer("a.b", Tensor::zeros({1})), Error);
  EXPECT_THROW(a.register_module("stat", std::make_shared<Affine>(1, 1)), Error);
  EXPECT_THROW(a.register_parameter("", Tensor::zeros({1})), Error);
}

TEST(Module, ReplaceModuleSwapsAChild) {
  Tiny net;
  net.replace_module("fc1", std::make_shared<Affine>(3, 4));
  EXPECT_EQ(net.fc1.get() != net.child("fc1").get(), true);
  EXPECT_EQ(net.child("fc1")->path(), "fc1");
  const std::string message = error_of([&] { net.replace_module("head", std::make_shared<Affine>(1, 1)); });
  EXPECT_NE(message.find("no child named 'head'"), std::string::npos) << message;
  EXPECT_NE(message.find("fc1, block"), std::string::npos) << message;
}

TEST(Module, ForwardHookSeesEveryCallInOrder) {
  Tiny net;
  std::vector<std::string> seen;
  {
    ForwardHookGuard guard([&](Module& m, const Tensor& in, const Tensor& out) {
      seen.push_back(fmt::format("{}:{}->{}", m.label(), shape_str(in.shape()), shape_str(out.shape())));
    });
    net(Tensor::ones({5, 3}));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"fc1:[5, 3]->[5, 4]", "block.0:[5, 4]->[5, 4]",
                                            "block.1:[5, 4]->[5, 2]", "block:[5, 4]->[5, 2]", "Tiny:[5, 3]->[5, 2]"}));
  seen.clear();
  net(Tensor::ones({5, 3}));  // guard gone: no hook
  EXPECT_TRUE(seen.empty());
}

}  // namespace
}  // namespace scalpel::nn
