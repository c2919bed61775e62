// Upsampling (nearest, bilinear with align_corners true/false) and constant padding: hand
// values, PyTorch's index rules, gradient checks, PyTorch parity, errors.
#include <gtest/gtest.h>

#include "layer_ops/op_cases.h"
#include "layer_ops/op_fixture.h"
#include "layers/functional.h"

namespace scalpel {
namespace {

using testing::expect_gradcheck;
using testing::expect_parity;
using testing::random_leaf;

Tensor row(const std::vector<double>& v, DType dtype = DType::F64) {
  return Tensor::from_vector(v, {1, 1, 1, static_cast<int64_t>(v.size())}, dtype);
}

void expect_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-12) {
  const std::vector<double> got = t.to_vector();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], tol) << "element " << i;
}

TEST(Upsample, NearestFloorRule) {
  // 3 -> 7 columns: src = floor(dst * 3 / 7) (values checked against torch 'nearest').
  expect_values(nn::upsample(row({0, 1, 2}), 1, 7, "nearest"), {0, 0, 0, 1, 1, 2, 2});
  // 2x: each pixel repeated; downsampling picks floor(dst * in / out).
  expect_values(nn::upsample(row({5, 6}), 1, 4, "nearest"), {5, 5, 6, 6});
  expect_values(nn::upsample(row({0, 1, 2, 3, 4, 5}), 1, 4, "nearest"), {0, 1, 3, 4});
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::F64);
  expect_values(nn::upsample(x, 4, 4, "nearest"), {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
}

TEST(Upsample, BilinearAlignCorners) {
  // align_corners=false: src = max((dst + 0.5) / 2 - 0.5, 0), so the first output clamps to 0.
  expect_values(nn::upsample(row({0, 1}), 1, 4, "bilinear", false), {0, 0.25, 0.75, 1});
  // align_corners=true: src = dst * (in - 1) / (out - 1), the corners coincide.
  expect_values(nn::upsample(row({0, 1}), 1, 5, "bilinear", true), {0, 0.25, 0.5, 0.75, 1});
  // A single output column samples column 0 with align_corners (scale 0).
  expect_values(nn::upsample(row({3, 7, 9}), 1, 1, "bilinear", true), {3});
  // 2-D: the mean of four pixels at the center of a 2x2 -> 3x3 align_corners grid.
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::F64);
  expect_values(nn::upsample(x, 3, 3, "bilinear", true), {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4});
}

TEST(Upsample, Gradcheck) {
  struct Size { int64_t h, w, oh, ow; };
  for (Size s : {Size{3, 4, 7, 5}, Size{4, 5, 8, 10}, Size{5, 7, 3, 4}, Size{3, 3, 1, 1}}) {
    for (const char* mode : {"nearest", "bilinear"}) {
      for (bool align : {false, true}) {
        if (std::string(mode) == "nearest" && align) continue;
        SCOPED_TRACE(fmt::format("{} align={} {}x{} -> {}x{}", mode, align, s.h, s.w, s.oh, s.ow));
        expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::upsample(in[0], s.oh, s.ow, mode, align); },
                         {random_leaf({2, 2, s.h, s.w}, 31)});
      }
    }
  }
}

TEST(Upsample, PyTorchParity) {
  const char* cases[] = {"upsample_nearest_x2", "upsample_nearest_size", "upsample_bilinear_x2_align_false",
                         "upsample_bilinear_x2_align_true", "upsample_bilinear_size_align_false",
                         "upsample_bilinear_size_align_true", "ops_extra/upsample_nearest_float32_index",
                         "ops_extra/upsample_bilinear_down_align_false", "ops_extra/upsample_bilinear_down_align_true"};
  for (DType dtype : {DType::F32, DType::F64})
    for (const char* name : cases) {
      // A reference computed by torch in float32 has float32-rounded gradient sums.
      std::optional<testing::ParityTolerance> tol;
      if (dtype == DType::F64 && testing::OpCase(name).meta().contains("computed_in"))
        tol = testing::ParityTolerance{1e-9, 1e-6};
      expect_parity(
          name, dtype,
          [](const testing::OpCase& c, const auto& in, DType) {
            const Json& m = c.meta();
            const Json::Array& size = m.at("size").as_array();
            const bool align = m.at("align_corners").is_bool() && m.at("align_corners").as_bool();
            return nn::upsample(in.at("x"), size[0].as_int(), size[1].as_int(), m.at("mode").as_string(), align);
          },
          tol);
    }
}

TEST(Upsample, Errors) {
  Tensor x = Tensor::zeros({1, 2, 3, 3});
  EXPECT_THROW(nn::upsample(x, 6, 6, "bicubic"), Error);
  EXPECT_THROW(nn::upsample(x, 0, 6, "nearest"), Error);
  EXPECT_THROW(nn::upsample(Tensor::zeros({2, 3, 3}), 6, 6, "nearest"), Error);
  try {
    nn::upsample(x, 6, -1, "bilinear");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("6x-1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[1, 2, 3, 3]"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- padding

TEST(Pad2d, HandValues) {
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::F64);
  Tensor y = nn::pad2d(x, {1, 0, 0, 2}, 9);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 4}));
  expect_values(y, {9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9, 9});
  // Any rank >= 2 and int64 data.
  Tensor labels = Tensor::from_vector({1, 2}, {1, 2}, DType::I64);
  EXPECT_EQ(nn::pad2d(labels, {0, 0, 1, 1}, -1).to_vector(), (std::vector<double>{-1, 1, 2, -1}));
}

TEST(Pad2d, Gradcheck) {
  expect_gradcheck([](const std::vector<Tensor>& in) { return nn::pad2d(in[0], {2, 1, 0, 3}, 0.5); },
                   {random_leaf({2, 3, 3, 5}, 41)});
}

TEST(Pad2d, PyTorchParity) {
  for (DType dtype : {DType::F32, DType::F64})
    for (const char* name : {"pad_constant", "pad_zero"}) {
      expect_parity(name, dtype, [](const testing::OpCase& c, const auto& in, DType) {
        const Json::Array& p = c.meta().at("pad").as_array();  // [top, bottom, left, right]
        return nn::pad2d(in.at("x"), {p[0].as_int(), p[1].as_int(), p[2].as_int(), p[3].as_int()},
                         c.meta().at("value").as_number());
      });
    }
}

TEST(Pad2d, NegativePaddingIsAnError) {
  try {
    nn::pad2d(Tensor::zeros({1, 1, 4, 4}), {0, -1, 0, 0});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bottom -1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace scalpel

// ---- device rows (layer_ops/op_cases.h): forward and backward against the CPU on every backend
namespace scalpel::testing_ops {
namespace {
using namespace op_cases_detail;

SCALPEL_OP_CASES(upsample) {
  std::vector<OpCase> c;
  c.push_back({"upsample_nearest", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {true},
               [](const Inputs& in) { return nn::upsample(in[0], 10, 9, "nearest"); }});
  c.push_back({"upsample_bilinear", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {true},
               [](const Inputs& in) { return nn::upsample(in[0], 11, 8, "bilinear"); }});
  return c;
}

SCALPEL_OP_CASES(pad2d) {
  std::vector<OpCase> c;
  c.push_back({"pad2d", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {true},
               [](const Inputs& in) { return nn::pad2d(in[0], nn::Padding2d{1, 0, 2, 3}, -0.5); }});
  return c;
}

}  // namespace
}  // namespace scalpel::testing_ops
