// PyTorch parity on the fixtures of tests/fixtures/ops/ (conv2d, conv_transpose2d, linear;
// written by scripts/make_fixtures.py). Each case runs in float32 (forward within 1e-5
// relative, gradients within 1e-4) and in float64 (much tighter), with every engine.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/autograd.h"
#include "layers/functional.h"
#include "layers/ops/conv2d.h"
#include "layers/ops/conv_transpose2d.h"
#include "conv/conv_cases.h"
#include "tensor/json.h"
#include "tensor/npy.h"

namespace scalpel {
namespace {

namespace fs = std::filesystem;
using ops::CpuConvAlgorithm;

const fs::path kOps = fs::path(SCALPEL_FIXTURES) / "ops";

struct Fixture {
  std::string name;
  Json meta;
  bool has(const std::string& stem) const { return meta.at("files").contains(stem); }
  Tensor get(const std::string& stem, DType dtype) const {
    return load_npy((kOps / name / (stem + ".npy")).string()).to(dtype);
  }
};

// The fixture cases of one op, from ops/index.json and each case's meta.json.
std::vector<Fixture> fixtures_of(const std::string& op) {
  std::ifstream index_file(kOps / "index.json");
  std::stringstream index_text;
  index_text << index_file.rdbuf();
  std::vector<Fixture> out;
  const Json index = Json::parse(index_text.str(), "ops/index.json");
  for (const Json& name : index.at("cases").at("ops").as_array()) {
    std::ifstream meta_file(kOps / name.as_string() / "meta.json");
    std::stringstream meta_text;
    meta_text << meta_file.rdbuf();
    Json meta = Json::parse(meta_text.str(), name.as_string() + "/meta.json");
    if (meta.at("op").as_string() == op) out.push_back({name.as_string(), std::move(meta)});
  }
  return out;
}

std::array<int64_t, 2> pair_of(const Json& j) { return {j.at(0).as_int(), j.at(1).as_int()}; }

// |a - ref| <= rtol * (|ref| + max |ref|) per element: relative, with the tensor's own scale
// as the floor for elements near zero (float32 sums of many products cancel there).
void expect_close(const Tensor& a, const Tensor& ref, double rtol, const std::string& what) {
  ASSERT_EQ(a.shape(), ref.shape()) << what;
  const std::vector<double> av = a.to_vector(), rv = ref.to_vector();
  double scale = 0;
  for (double r : rv) scale = std::max(scale, std::abs(r));
  for (size_t i = 0; i < rv.size(); ++i) {
    ASSERT_LE(std::abs(av[i] - rv[i]), rtol * (std::abs(rv[i]) + scale))
        << what << ": element " << i << " is " << av[i] << ", torch " << rv[i];
  }
}

// Runs `op` on the fixture's inputs in `dtype` and compares y and every gradient.
void check_case(const Fixture& f, DType dtype, double forward_rtol, double grad_rtol,
                const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& op,
                const std::string& label) {
  Tensor x = f.get("x", dtype).set_requires_grad(true);
  Tensor w = f.get("weight", dtype).set_requires_grad(true);
  Tensor b = f.has("bias") ? f.get("bias", dtype).set_requires_grad(true) : Tensor();
  Tensor y = op(x, w, b);
  expect_close(y, f.get("y", DType::F64), forward_rtol, label + " y");
  std::vector<Tensor> wrt{x, w};
  if (b.defined()) wrt.push_back(b);
  const std::vector<Tensor> grads = grad(y, wrt, f.get("gy", dtype));
  expect_close(grads[0], f.get("grad_x", DType::F64), grad_rtol, label + " grad_x");
  expect_close(grads[1], f.get("grad_weight", DType::F64), grad_rtol, label + " grad_weight");
  if (b.defined()) expect_close(grads[2], f.get("grad_bias", DType::F64), grad_rtol, label + " grad_bias");
}

// float32 and float64, with the automatic engine and each engine that can run `g`.
void check_all(const Fixture& f, const Conv2dGeometry& g,
               const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& op) {
  for (CpuConvAlgorithm engine : {CpuConvAlgorithm::Auto, CpuConvAlgorithm::Reference, CpuConvAlgorithm::Im2colGemm,
                                  CpuConvAlgorithm::Depthwise}) {
    if (!ops::cpu_conv_algorithm_supports(engine, g)) continue;
    testing_conv::EngineGuard guard(engine);
    const std::string label = f.name + " " + std::string(ops::cpu_conv_algorithm_name(engine));
    check_case(f, DType::F32, 1e-5, 1e-4, op, label + " float32");
    check_case(f, DType::F64, 1e-10, 1e-10, op, label + " float64");
  }
}

TEST(ConvParity, Conv2dMatchesTorch) {
  const std::vector<Fixture> cases = fixtures_of("conv2d");
  ASSERT_GE(cases.size(), 10u) << "conv2d fixtures missing under " << kOps;
  for (const Fixture& f : cases) {
    const Json& m = f.meta;
    nn::Conv2dOptions o;
    o.stride = pair_of(m.at("stride"));
    o.dilation = pair_of(m.at("dilation"));
    o.groups = m.at("groups").as_int();
    const Json& pad = m.at("pad");
    const nn::Padding2d explicit_pad{pad.at(0).as_int(), pad.at(1).as_int(), pad.at(2).as_int(),
                                     pad.at(3).as_int()};
    if (m.at("padding_mode").as_string() == "same") {
      o.same = true;  // our own SAME rule must find torch's explicit padding
      const Shape xs = f.get("x", DType::F64).shape(), ws = f.get("weight", DType::F64).shape();
      EXPECT_EQ(nn::same_padding(xs[2], xs[3], ws[2], ws[3], o.stride[0], o.stride[1], o.dilation[0],
                                 o.dilation[1]),
                explicit_pad)
          << f.name;
    } else {
      o.padding = explicit_pad;
    }
    const Conv2dGeometry g =
        ops::conv2d_geometry(f.get("x", DType::F64).shape(), f.get("weight", DType::F64).shape(), o, f.name);
    check_all(f, g, [&](const Tensor& x, const Tensor& w, const Tensor& b) {
      return nn::conv2d(x, w, b, o, f.name);
    });
  }
}

TEST(ConvParity, ConvTranspose2dMatchesTorch) {
  const std::vector<Fixture> cases = fixtures_of("conv_transpose2d");
  ASSERT_GE(cases.size(), 3u) << "conv_transpose2d fixtures missing under " << kOps;
  for (const Fixture& f : cases) {
    const Json& m = f.meta;
    nn::ConvTranspose2dOptions o;
    o.stride = pair_of(m.at("stride"));
    o.padding = pair_of(m.at("padding"));
    o.output_padding = pair_of(m.at("output_padding"));
    o.dilation = pair_of(m.at("dilation"));
    o.groups = m.at("groups").as_int();
    const Conv2dGeometry g =
        ops::conv_transpose2d_geometry(f.get("x", DType::F64).shape(), f.get("weight", DType::F64).shape(), o, f.name);
    check_all(f, g, [&](const Tensor& x, const Tensor& w, const Tensor& b) {
      return nn::conv_transpose2d(x, w, b, o, f.name);
    });
  }
}

TEST(ConvParity, LinearMatchesTorch) {
  const std::vector<Fixture> cases = fixtures_of("linear");
  ASSERT_GE(cases.size(), 2u) << "linear fixtures missing under " << kOps;
  for (const Fixture& f : cases) {
    auto op = [&](const Tensor& x, const Tensor& w, const Tensor& b) { return nn::linear(x, w, b, f.name); };
    check_case(f, DType::F32, 1e-5, 1e-4, op, f.name + " float32");
    check_case(f, DType::F64, 1e-10, 1e-10, op, f.name + " float64");
  }
}

}  // namespace
}  // namespace scalpel
