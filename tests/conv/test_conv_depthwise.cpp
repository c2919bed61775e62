// The depthwise engine against the reference loops on a sweep that reaches every path of its
// fast kernels (layers/ops/conv2d_depthwise.cpp), at every SIMD level this CPU has: kernels
// 3/5/7 with stride 1/2 (the vector row kernels) and other shapes (the generic loops), widths
// 1..40 so that a plane is narrower than a vector, one vector plus a tail, or several; small
// planes with rows as long as the input's (the flat kernel) at every split of the padding;
// padding 0..K/2+1, multiplier 1 and 2, dilation 2, batch 2; forward, input and weight
// gradients, and the forward with each fused activation and a residual. Outputs start as NaN
// sentinels, so an element a kernel leaves unwritten fails.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "layers/ops/conv2d.h"
#include "layers/ops/conv2d_depthwise.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

using ops::CpuConvAlgorithm;

template <typename T>
std::vector<T> random_values(int64_t n, Generator& gen) {
  std::vector<T> v(n);
  for (T& e : v) e = static_cast<T>(gen.uniform(-1, 1));
  return v;
}

template <typename T>
std::vector<T> sentinel(int64_t n) {
  return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
}

// max |a - ref| <= tol * max(1, max |ref|); false on NaN.
template <typename T>
bool close(const std::vector<T>& a, const std::vector<T>& ref, double tol) {
  double scale = 1, worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) scale = std::max(scale, std::abs(double(ref[i])));
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(double(a[i]) - double(ref[i]));
    if (!(d <= worst)) worst = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
  }
  return worst <= tol * scale;
}

// Equal bit for bit, or both NaN: a NaN's sign is not kept (SiLU's x * sigmoid(x) of a NaN
// takes the sign of whichever operand the compiler put first).
template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0 && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
  return a.size() == b.size();
}

std::string describe(const Conv2dGeometry& g) {
  return fmt::format("x [{}, {}, {}, {}] -> C_out {} [{}, {}], k {}x{}, s {}x{}, pad {} {}, d {}x{}", g.batch,
                     g.in_channels, g.in_h, g.in_w, g.out_channels, g.out_h, g.out_w, g.kernel_h, g.kernel_w,
                     g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.dilation_h, g.dilation_w);
}

// Square kernel, same stride and padding on both axes, bottom/right padding `pad_after`.
Conv2dGeometry depthwise_geometry(int64_t batch, int64_t channels, int64_t mult, int64_t h, int64_t w, int64_t k,
                                  int64_t stride, int64_t pad, int64_t pad_after, int64_t dilation) {
  Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = g.groups = channels;
  g.out_channels = channels * mult;
  g.in_h = h;
  g.in_w = w;
  g.kernel_h = g.kernel_w = k;
  g.stride_h = g.stride_w = stride;
  g.pad_top = g.pad_left = pad;
  g.pad_bottom = g.pad_right = pad_after;
  g.dilation_h = g.dilation_w = dilation;
  g.set_output_size();
  return g;
}

// The sweep: every width 1..40 once per (kernel, stride), heights, paddings and multipliers
// cycling with it; dilation 2 and a 4x4 kernel for the generic loops.
std::vector<Conv2dGeometry> sweep() {
  std::vector<Conv2dGeometry> out;
  for (int64_t k : {3, 5, 7})
    for (int64_t stride : {1, 2})
      for (int64_t w = 1; w <= 40; ++w) {
        const int64_t pad = w % (k / 2 + 2), pad_after = (w / 3) % (k / 2 + 1);
        const int64_t h = 1 + (w * 7) % 11;
        const int64_t mult = w % 5 == 0 ? 2 : 1;
        const Conv2dGeometry g = depthwise_geometry(2, 3, mult, h, w, k, stride, pad, pad_after, 1);
        if (g.out_h > 0 && g.out_w > 0) out.push_back(g);
      }
  // Small planes at stride 1 with rows as long as the input's (the flat kernel): up to 64
  // pixels, rows under 16, padding split evenly or not.
  for (int64_t k : {3, 5, 7})
    for (const auto& [h, w] : {std::pair{7, 7}, {8, 8}, {1, 1}, {3, 5}, {5, 12}, {2, 15}, {9, 7}, {4, 16}})
      for (int64_t pad : {k / 2, int64_t{0}, k - 1})
        out.push_back(depthwise_geometry(2, 3, h % 2 ? 1 : 2, h, w, k, 1, pad, k - 1 - pad, 1));
  for (int64_t w : {5, 17, 33}) {
    out.push_back(depthwise_geometry(2, 3, 1, 9, w, 3, 1, 2, 2, 2));
    out.push_back(depthwise_geometry(1, 2, 2, 8, w, 3, 2, 2, 1, 2));
    out.push_back(depthwise_geometry(1, 2, 1, 7, w, 4, 1, 1, 2, 1));
  }
  return out;
}

template <typename T>
void compare_with_reference(const Conv2dGeometry& g, uint64_t seed, double tol) {
  Generator gen(seed);
  const int64_t nx = g.batch * g.in_channels * g.in_h * g.in_w;
  const int64_t nw = g.out_channels * g.kernel_h * g.kernel_w;
  const int64_t ny = g.batch * g.out_channels * g.out_h * g.out_w;
  const auto x = random_values<T>(nx, gen), w = random_values<T>(nw, gen), gy = random_values<T>(ny, gen);
  const auto b = random_values<T>(g.out_channels, gen), residual = random_values<T>(ny, gen);
  const T* bias = seed % 2 ? b.data() : nullptr;

  auto ref_y = sentinel<T>(ny), ref_gx = sentinel<T>(nx), ref_gw = sentinel<T>(nw);
  ops::conv2d_forward_reference(g, x.data(), w.data(), bias, ref_y.data());
  ops::conv2d_backward_input_reference(g, gy.data(), w.data(), ref_gx.data());
  ops::conv2d_backward_weight_reference(g, x.data(), gy.data(), ref_gw.data());
  auto y = sentinel<T>(ny), gx = sentinel<T>(nx), gw = sentinel<T>(nw);
  ops::conv2d_forward(CpuConvAlgorithm::Depthwise, g, x.data(), w.data(), bias, y.data());
  ops::conv2d_backward_input(CpuConvAlgorithm::Depthwise, g, gy.data(), w.data(), gx.data());
  ops::conv2d_backward_weight(CpuConvAlgorithm::Depthwise, g, x.data(), gy.data(), gw.data());
  EXPECT_TRUE(close(y, ref_y, tol)) << "forward";
  EXPECT_TRUE(close(gx, ref_gx, tol)) << "grad_x";
  EXPECT_TRUE(close(gw, ref_gw, tol)) << "grad_weight";

  // The fused epilogue: each activation, with and without the residual, against
  // apply_epilogue on the reference output (tensor/gemm.h, the epilogue's own reference).
  const int64_t plane = g.out_h * g.out_w;
  // And bit for bit against this engine's own output followed by apply_epilogue (the AVX-512
  // rows apply the residual, ReLU and ReLU6 in registers), with a NaN in the input: ReLU
  // makes it 0, ReLU6 keeps it.
  auto x_nan = x;
  x_nan[nx / 2] = std::numeric_limits<T>::quiet_NaN();
  auto plain_nan = sentinel<T>(ny);
  ops::conv2d_forward(CpuConvAlgorithm::Depthwise, g, x_nan.data(), w.data(), bias, plain_nan.data());
  for (EpilogueActivation act : {EpilogueActivation::none, EpilogueActivation::relu, EpilogueActivation::relu6,
                                 EpilogueActivation::silu, EpilogueActivation::hardswish})
    for (bool with_residual : {false, true}) {
      if (act == EpilogueActivation::none && !with_residual) continue;
      const GemmEpilogue<T> reference_epilogue{nullptr, act, with_residual ? residual.data() : nullptr, plane};
      auto epilogue_applied = [&](std::vector<T> y) {  // apply_epilogue plane by plane
        for (int64_t p = 0; p < g.batch * g.out_channels; ++p)
          apply_epilogue(reference_epilogue, p, 0, plane, y.data() + p * plane);
        return y;
      };
      auto fused_forward = [&](const std::vector<T>& input) {
        auto y = sentinel<T>(ny);
        ops::conv2d_forward(CpuConvAlgorithm::Depthwise, g, input.data(), w.data(), bias, y.data(),
                            ops::ConvEpilogue<T>{act, with_residual ? residual.data() : nullptr});
        return y;
      };
      EXPECT_TRUE(close(fused_forward(x), epilogue_applied(ref_y), tol))
          << "epilogue " << static_cast<int>(act) << " residual " << with_residual;
      EXPECT_TRUE(same_bits(fused_forward(x_nan), epilogue_applied(plain_nan)))
          << "epilogue bits " << static_cast<int>(act) << " residual " << with_residual;
    }
}

TEST(ConvDepthwise, SweepEverySimdLevelMatchesReference) {
  const std::vector<Conv2dGeometry> shapes = sweep();
  for (Isa level : {Isa::baseline, Isa::avx2,
                                   Isa::avx512}) {
    if (!cpu_supports(level)) continue;
    ops::set_depthwise_isa(level);
    uint64_t seed = 0;
    for (const Conv2dGeometry& g : shapes) {
      SCOPED_TRACE(fmt::format("{}: {}", isa_name(level), describe(g)));
      compare_with_reference<float>(g, ++seed, 1e-5);
      compare_with_reference<double>(g, ++seed, 1e-12);
    }
  }
  ops::reset_depthwise_isa();
}

}  // namespace
}  // namespace scalpel
