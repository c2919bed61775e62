// Pooling: output sizes (ceil_mode and its last-window rule), hand values, tie handling,
// gradient checks (odd sizes, stride 2, ceil_mode, count_include_pad, asymmetric padding),
// PyTorch parity, errors.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "layer_ops/op_cases.h"
#include "layer_ops/op_fixture.h"
#include "layers/functional.h"
#include "layers/ops/pooling.h"
#include "support/errors.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

using testing::expect_gradcheck;
using testing::expect_parity;
using testing::random_leaf;

nn::Pool2dOptions pool(int64_t k, int64_t s, int64_t p = 0, bool ceil_mode = false, bool include_pad = true) {
  nn::Pool2dOptions o;
  o.kernel = {k, k};
  o.stride = {s, s};
  o.padding = nn::Padding2d::symmetric(p);
  o.ceil_mode = ceil_mode;
  o.count_include_pad = include_pad;
  return o;
}

// Windows for the max pool comparisons: square with strides, padding and ceil_mode's extra
// window, and a rectangular kernel with unequal strides and asymmetric padding.
std::vector<nn::Pool2dOptions> max_pool_windows() {
  nn::Pool2dOptions rect;
  rect.kernel = {3, 2};
  rect.stride = {1, 2};
  rect.padding = {1, 1, 1, 0};
  rect.ceil_mode = true;
  return {pool(2, 2), pool(3, 2, 1), pool(3, 2, 0, true), pool(2, 2, 1, true), pool(3, 1, 1), rect};
}

Shape pooled_shape(const Shape& in, const nn::Pool2dOptions& o) {
  return nn::max_pool2d(Tensor::zeros(in, DType::F64), o).shape();
}

TEST(Pooling, OutputSizes) {
  EXPECT_EQ(pooled_shape({1, 1, 7, 6}, pool(2, 2)), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(pooled_shape({1, 1, 7, 6}, pool(2, 2, 0, true)), (Shape{1, 1, 4, 3}));
  EXPECT_EQ(pooled_shape({1, 1, 112, 112}, pool(3, 2, 1)), (Shape{1, 1, 56, 56}));  // ResNet stem
  // ceil_mode with padding: a window starting in the bottom padding is dropped (H = 5 -> 3),
  // one starting inside the input is kept (W = 6 -> 4).
  EXPECT_EQ(pooled_shape({1, 1, 5, 6}, pool(2, 2, 1, true)), (Shape{1, 1, 3, 4}));
  // Stride defaults to the kernel.
  nn::Pool2dOptions o;
  o.kernel = {3, 2};
  EXPECT_EQ(pooled_shape({1, 1, 7, 7}, o), (Shape{1, 1, 2, 3}));
}

TEST(Pooling, MaxHandValues) {
  Tensor x = Tensor::arange(0, 16, 1, DType::F64).reshape({1, 1, 4, 4});
  EXPECT_EQ(nn::max_pool2d(x, pool(2, 2)).to_vector(), (std::vector<double>{5, 7, 13, 15}));
  // Padding is -inf: windows of negative values touching the padding do not return 0.
  Tensor neg = ops::mul_scalar(x, -1);
  EXPECT_EQ(nn::max_pool2d(neg, pool(3, 2, 1)).to_vector(), (std::vector<double>{0, -1, -4, -5}));
}

TEST(Pooling, MaxGradientGoesToTheFirstMaximumOnTies) {
  Tensor x = Tensor::zeros({1, 1, 3, 3}, DType::F64);
  x.set_requires_grad(true);
  // k2 s1: four overlapping windows of equal values; each sends its gradient to its top-left.
  Tensor gx = grad(sum(nn::max_pool2d(x, pool(2, 1))), {x})[0];
  EXPECT_EQ(gx.to_vector(), (std::vector<double>{1, 1, 0, 1, 1, 0, 0, 0, 0}));
}

TEST(Pooling, InferencePathGivesTheSameValuesAsTheArgmaxPath) {
  // max_pool2d without grad takes max_pool2d_values (no index tensor): same values for
  // odd sizes, strides, padding, ceil_mode's extra window and rectangular kernels, with NaN.
  for (const nn::Pool2dOptions& o : max_pool_windows()) {
    for (DType dtype : {DType::F32, DType::F64}) {
      Tensor x = random_leaf({2, 3, 9, 8}, 7).to(dtype).detach();
      std::vector<double> values = x.to_vector();
      values[5] = std::nan("");
      values[100] = std::nan("");
      x = Tensor::from_vector(values, x.shape(), dtype);
      const ops::Pool2dGeometry g = ops::pool2d_geometry(x, o, "pool");
      const Tensor reference = ops::max_pool2d_forward_reference(x, g).y;
      const Tensor fast = nn::max_pool2d(x, o);
      ASSERT_EQ(fast.shape(), reference.shape());
      const std::vector<double> a = fast.to_vector(), b = reference.to_vector();
      int nans = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(b[i])) {
          ++nans;
          EXPECT_TRUE(std::isnan(a[i])) << i;
        } else {
          EXPECT_EQ(a[i], b[i]) << i;
        }
      }
      EXPECT_GT(nans, 0);
    }
  }
}

// The argmax forward picks by columns, then across them; it must pick what the reference's
// element-by-element scan picks: the first maximum in row-major order (ties between rows and
// between columns, +0 and -0), the last NaN of several, -inf windows.
TEST(Pooling, ArgmaxForwardPicksWhatTheReferenceScanPicks) {
  std::vector<nn::Pool2dOptions> windows = max_pool_windows();
  nn::Pool2dOptions tall;
  tall.kernel = {2, 4};
  tall.stride = {3, 1};
  tall.padding = {1, 0, 0, 2};
  windows.push_back(tall);
  const double special[] = {std::nan(""), -std::numeric_limits<double>::infinity(), -0.0, 0.0};
  for (const nn::Pool2dOptions& o : windows) {
    for (DType dtype : {DType::F32, DType::F64}) {
      Generator gen(3);
      std::vector<double> values(2 * 3 * 11 * 10);
      for (double& v : values) {
        const double u = gen.uniform(0, 1);
        // Few distinct values, so windows hold ties; some NaN, -inf and signed zeros.
        v = u < 0.3 ? special[static_cast<int>(u / 0.3 * 4)] : std::floor(gen.uniform(-3, 3));
      }
      const Tensor x = Tensor::from_vector(values, {2, 3, 11, 10}, dtype);
      const ops::Pool2dGeometry g = ops::pool2d_geometry(x, o, "pool");
      const ops::MaxPoolResult fast = ops::max_pool2d_forward(x, g);
      const ops::MaxPoolResult reference = ops::max_pool2d_forward_reference(x, g);
      ASSERT_EQ(fast.y.shape(), reference.y.shape());
      EXPECT_EQ(fast.argmax.to_vector(), reference.argmax.to_vector());
      const std::vector<double> a = fast.y.to_vector(), b = reference.y.to_vector();
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_TRUE(std::isnan(a[i]) ? std::isnan(b[i]) : a[i] == b[i] && std::signbit(a[i]) == std::signbit(b[i]))
            << i << ": " << a[i] << " vs " << b[i];
      }
    }
  }
}

TEST(Pooling, AvgCountIncludePadAndCeilWindows) {
  // One row [1, 2, 3, 4], kernel 1x3, stride 2, padding 1 left/right, ceil_mode: three windows
  // [pad 1 2], [2 3 4], [4 pad | outside]. The last one is clipped to the padded input, so its
  // divisor is 2 with count_include_pad and 1 without (values checked against PyTorch).
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 1, 4}, DType::F64);
  nn::Pool2dOptions o;
  o.kernel = {1, 3};
  o.stride = {1, 2};
  o.padding = {0, 0, 1, 1};
  o.ceil_mode = true;
  EXPECT_EQ(nn::avg_pool2d(x, o).to_vector(), (std::vector<double>{1, 3, 2}));
  o.count_include_pad = false;
  EXPECT_EQ(nn::avg_pool2d(x, o).to_vector(), (std::vector<double>{1.5, 3, 4}));
}

// Whole 2x2 windows at stride 2 skip the reference's per-window bounds; every value must be
// the reference's, bit for bit: odd sizes (the last row and column left out), signed zeros (0 +
// -0 is +0 in both), NaN, infinities, float32 and float64, count_include_pad either way.
TEST(Pooling, AvgHalvingGivesTheReferenceBits) {
  const double special[] = {std::nan(""), std::numeric_limits<double>::infinity(), -0.0, 0.0, 1e30};
  nn::Pool2dOptions o;
  o.kernel = {2, 2};
  for (const Shape& shape : {Shape{2, 3, 11, 10}, Shape{1, 2, 8, 8}, Shape{1, 1, 2, 3}})
    for (DType dtype : {DType::F32, DType::F64})
      for (bool include : {true, false}) {
        Generator gen(5);
        std::vector<double> values(shape_numel(shape));
        for (double& v : values) {
          const double u = gen.uniform(0, 1);
          v = u < 0.2 ? special[static_cast<int>(u / 0.2 * 5)] : gen.uniform(-3, 3);
        }
        const Tensor x = Tensor::from_vector(values, shape, dtype);
        const ops::Pool2dGeometry g = ops::pool2d_geometry(x, o, "pool");
        const std::vector<double> fast = ops::avg_pool2d_forward(x, g, include).to_vector();
        const std::vector<double> reference = ops::avg_pool2d_forward_reference(x, g, include).to_vector();
        ASSERT_EQ(fast.size(), reference.size());
        for (size_t i = 0; i < fast.size(); ++i)
          EXPECT_TRUE(std::isnan(fast[i]) ? std::isnan(reference[i])
                                          : fast[i] == reference[i] && std::signbit(fast[i]) == std::signbit(reference[i]))
              << shape_str(shape) << " element " << i << ": " << fast[i] << " vs " << reference[i];
      }
}

// The stems' 3x3 stride-2 max pool (pad 1, as resnet50 and densenet121 have it; pad 0 and
// ceil_mode's extra window too) on rows of 1-113 values, whose windows the inference path takes
// 16 outputs at a time on AVX-512: the reference's values, NaN and infinities included (all
// values distinct, so the order of the picks cannot matter).
TEST(Pooling, StemWindowsGiveTheReferenceValues) {
  for (int64_t width : {1, 2, 3, 8, 31, 32, 33, 34, 63, 64, 65, 112, 113})
    for (int64_t pad : {0, 1})
      for (bool ceil : {false, true}) {
        if (pad == 0 && width < 3) continue;
        nn::Pool2dOptions o;
        o.kernel = {3, 3};
        o.stride = {2, 2};
        o.padding = nn::Padding2d::symmetric(pad);
        o.ceil_mode = ceil;
        const Shape shape{1, 2, 5, width};
        std::vector<double> values(shape_numel(shape));
        for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>((i * 7919) % 1009) - 500.5;
        values[values.size() / 2] = std::nan("");
        values[values.size() / 3] = std::numeric_limits<double>::infinity();
        values[values.size() - 1] = -std::numeric_limits<double>::infinity();
        const Tensor x = Tensor::from_vector(values, shape, DType::F32);
        const ops::Pool2dGeometry g = ops::pool2d_geometry(x, o, "pool");
        const std::vector<double> fast = nn::max_pool2d(x, o).to_vector();
        const std::vector<double> reference = ops::max_pool2d_forward_reference(x, g).y.to_vector();
        ASSERT_EQ(fast.size(), reference.size());
        for (size_t i = 0; i < fast.size(); ++i)
          EXPECT_TRUE(std::isnan(fast[i]) ? std::isnan(reference[i]) : fast[i] == reference[i])
              << "width " << width << " pad " << pad << " ceil " << ceil << " element " << i << ": " << fast[i]
              << " vs " << reference[i];
      }
}

TEST(Pooling, AdaptiveAndGlobalHandValues) {
  Tensor x = Tensor::arange(0, 10, 1, DType::F64).reshape({1, 1, 2, 5});
  // Rows [0, 5) and [5, 10); columns of 5 into 3 bins: [0, 2), [1, 4), [3, 5).
  EXPECT_EQ(nn::adaptive_avg_pool2d(x, 1, 3).to_vector(), (std::vector<double>{(0 + 1 + 5 + 6) / 4.0,
                                                                                (1 + 2 + 3 + 6 + 7 + 8) / 6.0,
                                                                                (3 + 4 + 8 + 9) / 4.0}));
  Tensor g = nn::global_avg_pool(x);
  EXPECT_EQ(g.shape(), (Shape{1, 1}));
  EXPECT_DOUBLE_EQ(g.item(), 4.5);
  // Output larger than the input (VGG's 7x7 pool on a 1x1 map): every cell copies the pixel.
  Tensor one = Tensor::full({1, 2, 1, 1}, 3.0, DType::F64);
  EXPECT_EQ(nn::adaptive_avg_pool2d(one, 7, 7).to_vector(), std::vector<double>(98, 3.0));
}

// Whole-row windows are summed in interleaved partial sums (contiguous_sum in pooling.cpp):
// planes shorter than, equal to and past its 16 lanes, ragged tails, adaptive bins of whole
// rows, float and double, against a float64 sum of the same values.
TEST(Pooling, WholeRowWindowsMatchAFloat64Sum) {
  Generator gen(21);
  for (DType dtype : {DType::F32, DType::F64})
    for (const auto& [h, w, oh] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {3, 5, 1}, {4, 4, 1}, {7, 7, 1},
                                                                      {14, 14, 1}, {9, 11, 2}, {56, 56, 1}}) {
      const Tensor x = randn({2, 3, h, w}, gen).to(dtype);
      const Tensor y = nn::adaptive_avg_pool2d(x, oh, 1).to(DType::F64);
      const Tensor x64 = x.to(DType::F64).contiguous();
      const double* px = x64.data<double>();
      for (int64_t plane = 0; plane < 6; ++plane)
        for (int64_t o = 0; o < oh; ++o) {
          const int64_t h0 = o * h / oh, h1 = ((o + 1) * h + oh - 1) / oh;
          double sum = 0;
          for (int64_t i = h0 * w; i < h1 * w; ++i) sum += px[plane * h * w + i];
          const double expected = sum / static_cast<double>((h1 - h0) * w);
          EXPECT_NEAR(y.data<double>()[plane * oh + o], expected, dtype == DType::F32 ? 1e-6 : 1e-14)
              << h << "x" << w << " -> " << oh << "x1 " << dtype_name(dtype) << " plane " << plane;
        }
    }
}

struct PoolConfig {
  const char* what;
  Shape shape;
  nn::Pool2dOptions options;
};

std::vector<PoolConfig> gradcheck_configs() {
  nn::Pool2dOptions asym = pool(3, 2);
  asym.padding = {0, 1, 1, 0};  // TF "SAME"-style: extra pixel bottom / left
  nn::Pool2dOptions rect = pool(3, 1, 0, true);
  rect.kernel = {2, 3};
  rect.stride = {2, 1};
  rect.padding = {1, 1, 0, 1};
  return {
      {"k2 s2 odd input", {2, 2, 7, 5}, pool(2, 2)},
      {"k3 s2 p1 odd input", {1, 3, 9, 7}, pool(3, 2, 1)},
      {"k3 s2 ceil", {2, 2, 8, 7}, pool(3, 2, 0, true)},
      {"k2 s2 p1 ceil (last window dropped)", {1, 2, 5, 6}, pool(2, 2, 1, true)},
      {"k3 s2 p1 ceil exclude pad", {1, 2, 8, 7}, pool(3, 2, 1, true, false)},
      {"k3 s2 p1 exclude pad", {1, 2, 7, 9}, pool(3, 2, 1, false, false)},
      {"asymmetric padding", {1, 2, 6, 7}, asym},
      {"rectangular kernel, asymmetric padding, ceil", {1, 2, 7, 6}, rect},
  };
}

TEST(Pooling, GradcheckMax) {
  for (const PoolConfig& c : gradcheck_configs()) {
    SCOPED_TRACE(c.what);
    expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::max_pool2d(in[0], c.options); },
                     {random_leaf(c.shape, 21)});
  }
}

TEST(Pooling, GradcheckAvg) {
  for (const PoolConfig& c : gradcheck_configs()) {
    for (bool include : {true, false}) {
      SCOPED_TRACE(std::string(c.what) + (include ? " include pad" : " exclude pad"));
      nn::Pool2dOptions o = c.options;
      o.count_include_pad = include;
      expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::avg_pool2d(in[0], o); },
                       {random_leaf(c.shape, 22)});
    }
  }
}

TEST(Pooling, GradcheckAdaptiveAndGlobal) {
  for (auto [h, w, oh, ow] : {std::array<int64_t, 4>{7, 5, 3, 2}, {5, 7, 1, 1}, {2, 3, 7, 7}, {6, 6, 4, 4}}) {
    SCOPED_TRACE(fmt::format("{}x{} -> {}x{}", h, w, oh, ow));
    expect_gradcheck([&](const std::vector<Tensor>& in) { return nn::adaptive_avg_pool2d(in[0], oh, ow); },
                     {random_leaf({2, 2, h, w}, 23)});
  }
  expect_gradcheck([](const std::vector<Tensor>& in) { return nn::global_avg_pool(in[0]); },
                   {random_leaf({2, 3, 3, 5}, 24)});
}

TEST(Pooling, PyTorchParity) {
  for (DType dtype : {DType::F32, DType::F64}) {
    for (const char* name : {"max_pool2d_k3_s2_p1", "max_pool2d_k3_s2_ceil", "max_pool2d_k2_s2_p1_ceil", "max_pool2d_k2_s2",
                             "avg_pool2d_k3_s2_p1_include_pad", "avg_pool2d_k3_s2_p1_exclude_pad",
                             "avg_pool2d_k3_s2_p1_ceil_include_pad", "avg_pool2d_k3_s2_p1_ceil_exclude_pad",
                             "avg_pool2d_k2_s2_ceil", "avg_pool2d_k2_s2", "ops_extra/max_pool2d_ties_k2_s1"}) {
      expect_parity(name, dtype, [](const testing::OpCase& c, const auto& in, DType) {
        const Json& m = c.meta();
        nn::Pool2dOptions o;
        o.kernel = {m.at("kernel").as_array()[0].as_int(), m.at("kernel").as_array()[1].as_int()};
        o.stride = {m.at("stride").as_array()[0].as_int(), m.at("stride").as_array()[1].as_int()};
        o.padding = nn::Padding2d::symmetric(m.at("padding").as_array()[0].as_int(), m.at("padding").as_array()[1].as_int());
        o.ceil_mode = m.at("ceil_mode").as_bool();
        if (m.at("op").as_string() == "max_pool2d") return nn::max_pool2d(in.at("x"), o);
        o.count_include_pad = m.at("count_include_pad").as_bool();
        return nn::avg_pool2d(in.at("x"), o);
      });
    }
    for (const char* name : {"adaptive_avg_pool2d_1x1", "adaptive_avg_pool2d_3x2", "adaptive_avg_pool2d_1x1_to_7x7",
                             "adaptive_avg_pool2d_2x3_to_7x7", "ops_extra/adaptive_avg_pool2d_5x7_to_3x4"}) {
      expect_parity(name, dtype, [](const testing::OpCase& c, const auto& in, DType) {
        const Json::Array& size = c.meta().at("output_size").as_array();
        return nn::adaptive_avg_pool2d(in.at("x"), size[0].as_int(), size[1].as_int());
      });
    }
  }
}

using scalpel::test::expect_error;

TEST(Pooling, Errors) {
  Tensor small = Tensor::zeros({1, 2, 2, 2});
  expect_error([&] { nn::max_pool2d(small, pool(3, 1), "features.pool4"); },
               {"features.pool4", "larger than the padded input", "[1, 2, 2, 2]"});
  expect_error([&] { nn::avg_pool2d(small, pool(3, 1), "avgpool"); }, {"avgpool", "3x3", "[1, 2, 2, 2]"});
  expect_error([&] { nn::max_pool2d(small, pool(2, 2, 2), "pool"); }, {"pool", "half the kernel"});
  expect_error([&] { nn::max_pool2d(Tensor::zeros({2, 4, 4}), pool(2, 2), "pool"); }, {"pool", "[2, 4, 4]"});
  expect_error([&] { nn::max_pool2d(small, pool(0, 1), "pool"); }, {"pool", "kernel must be positive"});
  expect_error([&] { nn::adaptive_avg_pool2d(small, 0, 2); }, {"adaptive_avg_pool2d", "0x2"});
  expect_error([&] { nn::global_avg_pool(Tensor::zeros({2, 4})); }, {"global_avg_pool", "[2, 4]"});
}

}  // namespace
}  // namespace scalpel

// ---- device rows (layer_ops/op_cases.h): forward and backward against the CPU on every backend
namespace scalpel::testing_ops {
namespace {
using namespace op_cases_detail;

OpCase pool(const std::string& name, std::function<Tensor(const Tensor&)> fn) {
  return {name, [](Generator& gen) { return Inputs{randn({2, 3, 7, 6}, gen)}; }, {true},
          [fn = std::move(fn)](const Inputs& in) { return fn(in[0]); }};
}

nn::Pool2dOptions pool3x3_stride2(bool count_include_pad) {
  nn::Pool2dOptions o;
  o.kernel = {3, 3};
  o.stride = {2, 2};
  o.padding = nn::Padding2d::symmetric(1);
  o.count_include_pad = count_include_pad;
  return o;
}

SCALPEL_OP_CASES(pooling) {
  std::vector<OpCase> c;
  c.push_back(pool("max_pool2d", [](const Tensor& x) { return nn::max_pool2d(x, pool3x3_stride2(true)); }));
  // TF "SAME" (Xception's pools: the odd pixel bottom/right) and ceil_mode: an explicitly
  // -inf-padded input on the device.
  c.push_back(pool("max_pool2d_same", [](const Tensor& x) {
    nn::Pool2dOptions same = pool3x3_stride2(true);
    same.padding = nn::same_padding(7, 6, 3, 3, 2, 2);
    return nn::max_pool2d(x, same);
  }));
  c.push_back(pool("max_pool2d_ceil_mode", [](const Tensor& x) {
    nn::Pool2dOptions ceil = pool3x3_stride2(true);
    ceil.padding = {};
    ceil.ceil_mode = true;
    return nn::max_pool2d(x, ceil);
  }));
  c.push_back(pool("avg_pool2d", [](const Tensor& x) { return nn::avg_pool2d(x, pool3x3_stride2(false)); }));
  c.push_back(pool("global_avg_pool", [](const Tensor& x) { return nn::global_avg_pool(x); }));
  c.push_back(pool("adaptive_avg_pool2d_7x6_to_7x2", [](const Tensor& x) { return nn::adaptive_avg_pool2d(x, 7, 2); }));
  return c;
}

}  // namespace
}  // namespace scalpel::testing_ops
