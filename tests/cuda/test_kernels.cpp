// The shared launchers (fill, affine, copy_2d, reduce, GEMM, convolution: cuda/kernels.inc) on
// cuda-emu against a plain CPU loop, on small odd shapes, with outputs pre-filled with NaN,
// under the forward, reverse and shuffled thread schedules; and, through the dispatch table,
// what the op-case table (op_cases.h) does not reach: every unary op's derivative and the
// dropout mask's determinism. Every other op's kernels are checked by its op-case row, which
// runs under the same three schedules.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cuda_test_util.h"
#include "cuda/tensor_ops.h"
#include "tensor/backend.h"
#include "tensor/tensor.h"
#include "tensor/error.h"

namespace scalpel::cuda {
namespace {

using testing::DeviceArray;
using testing::expect_close;
using testing::random_values;
using Vec = std::vector<float>;

class Kernels : public testing::EmuScheduleTest {
 protected:
  void SetUp() override {
    EmuScheduleTest::SetUp();
    init();
  }
};

const Device kEmu{DeviceType::CUDAEmu, 0};
Tensor device_tensor(const Vec& v) {
  return Tensor::from_vector(std::vector<double>(v.begin(), v.end()), {static_cast<int64_t>(v.size())}).to(kEmu);
}
Vec host_values(const Tensor& t) {
  const std::vector<double> v = t.to(Device::cpu()).to_vector();
  return Vec(v.begin(), v.end());
}

// ---------------------------------------------------------------- elementwise

TEST_P(Kernels, FillAffineCopy2d) {
  DeviceArray<float> y(37);
  emu::fill(s, y.get(), 37, 2.5f);
  expect_close(y.download(), Vec(37, 2.5f));
  const Vec x = random_values(37, 1);
  DeviceArray<float> dx(x), out(37);
  emu::affine(s, dx.get(), out.get(), 37, -2.0f, 0.5f);
  Vec want(37);
  for (int i = 0; i < 37; ++i) want[i] = -2.0f * x[i] + 0.5f;
  expect_close(out.download(), want);
  // 3 x 5 block from a pitch-7 source into a pitch-6 destination; the rest keeps its sentinel.
  const Vec src = random_values(21, 2);
  DeviceArray<float> dsrc(src), dst(18);
  emu::copy_2d(s, dsrc.get(), 7, dst.get(), 6, 3, 5);
  const Vec got = dst.download();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 5; ++c) EXPECT_EQ(got[r * 6 + c], src[r * 7 + c]);
    EXPECT_TRUE(std::isnan(got[r * 6 + 5]));
  }
}

double unary_ref(UnaryOp op, double a, double x) {
  const double sg = 1.0 / (1.0 + std::exp(-x));
  switch (op) {
    case UnaryOp::Relu: return x > 0 ? x : 0;
    case UnaryOp::Relu6: return std::min(std::max(x, 0.0), 6.0);
    case UnaryOp::LeakyRelu: return x > 0 ? x : a * x;
    case UnaryOp::Sigmoid: return sg;
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Silu: return x * sg;
    case UnaryOp::HardSigmoid: return std::min(std::max(x + 3, 0.0), 6.0) / 6;
    case UnaryOp::HardSwish: return x * std::min(std::max(x + 3, 0.0), 6.0) / 6;
    case UnaryOp::Gelu: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return std::fabs(x);
  }
  return 0;
}

TEST_P(Kernels, UnaryForwardAndBackwardMatchFiniteDifferences) {
  // Values avoid the kinks (0, +-3, 6) where a finite difference straddles two pieces.
  Vec x = random_values(53, 5, -7.0f, 7.0f);
  for (float& v : x)
    for (float kink : {0.0f, 3.0f, -3.0f, 6.0f})
      if (std::fabs(v - kink) < 0.05f) v = kink + 0.1f;
  const Vec dy = random_values(53, 6);
  const float alpha = 0.1f;
  for (int o = 0; o <= static_cast<int>(UnaryOp::Abs); ++o) {
    const auto op = static_cast<UnaryOp>(o);
    const bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt;
    Vec in = x;
    if (positive)
      for (float& v : in) v = std::fabs(v) + 0.5f;
    const Tensor tx = device_tensor(in), tdy = device_tensor(dy);
    const Vec got_y = host_values(backend::run<backend::Op::unary>(kEmu, op, tx, alpha));
    const Vec got_dx = host_values(backend::run<backend::Op::unary_backward>(kEmu, op, tx, tdy, alpha));
    Vec want_y(53), want_dx(53);
    for (int i = 0; i < 53; ++i) {
      want_y[i] = static_cast<float>(unary_ref(op, alpha, in[i]));
      const double h = 1e-4;
      want_dx[i] = static_cast<float>(dy[i] * (unary_ref(op, alpha, in[i] + h) - unary_ref(op, alpha, in[i] - h)) / (2 * h));
    }
    const std::string what = "unary op " + std::to_string(o);
    expect_close(got_y, want_y, 1e-5f, what);
    expect_close(got_dx, want_dx, 1e-3f, what + " backward");
  }
}

// ---------------------------------------------------------------- reductions, softmax

TEST_P(Kernels, ReduceRowsAndColumns) {
  for (auto [outer, len, inner] : {std::tuple<int, int, int>{3, 517, 1}, {4, 7, 9}, {1, 1, 5}, {2, 33, 1}}) {
    const Vec x = random_values(outer * len * inner, 7);
    DeviceArray<float> dx(x);
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max}) {
      DeviceArray<float> out(outer * inner);
      emu::reduce(s, op, dx.get(), out.get(), outer, len, inner);
      Vec want(outer * inner);
      for (int o = 0; o < outer; ++o)
        for (int j = 0; j < inner; ++j) {
          double acc = op == ReduceOp::Max ? -INFINITY : 0;
          for (int l = 0; l < len; ++l) {
            const double v = x[(o * len + l) * inner + j];
            acc = op == ReduceOp::Max ? std::max(acc, v) : acc + v;
          }
          want[o * inner + j] = static_cast<float>(op == ReduceOp::Mean ? acc / len : acc);
        }
      expect_close(out.download(), want, 1e-5f, "reduce " + std::to_string(outer) + "x" + std::to_string(len) + "x" + std::to_string(inner));
    }
  }
}

// ---------------------------------------------------------------- GEMM

TEST_P(Kernels, GemmEveryVariantTileAndTransposeOnOddShapes) {
  struct Case { GemmVariant v; int tile; };
  const Case cases[] = {{GemmVariant::Naive, 8},  {GemmVariant::Naive, 16},  {GemmVariant::SharedTiled, 8},
                        {GemmVariant::SharedTiled, 16}, {GemmVariant::SharedTiled, 32},
                        {GemmVariant::RegisterBlocked, 32}, {GemmVariant::RegisterBlocked, 64},
                        {GemmVariant::RegisterBlocked, 128}, {GemmVariant::Vectorized, 32},
                        {GemmVariant::Vectorized, 64}, {GemmVariant::Auto, 0}};
  struct Shape { int M, N, K; };
  for (Shape sh : {Shape{37, 29, 23}, Shape{8, 12, 20}, Shape{1, 70, 3}}) {
    const int M = sh.M, N = sh.N, K = sh.K, batch = 2;
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const int lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 3, ldc = N + 2;
        const int64_t sa = (ta ? K : M) * lda, sb = (tb ? N : K) * ldb, sc = M * ldc;
        const Vec A = random_values(batch * sa, 11), B = random_values(batch * sb, 12);
        const Vec C0 = random_values(batch * sc, 13);
        DeviceArray<float> dA(A), dB(B);
        for (const Case& c : cases) {
          for (float beta : {0.0f, 0.5f}) {
            // beta == 0 must ignore C's old contents, NaN included.
            DeviceArray<float> dC(beta == 0.0f ? Vec(batch * sc, NAN) : C0);
            emu::gemm(s, {c.v, c.tile}, ta, tb, M, N, K, 1.5f, dA.get(), lda, dB.get(), ldb, beta,
                      dC.get(), ldc, batch, sa, sb, sc);
            const Vec got = dC.download();
            for (int z = 0; z < batch; ++z)
              for (int i = 0; i < M; ++i)
                for (int j = 0; j < N; ++j) {
                  double acc = 0;
                  for (int k = 0; k < K; ++k)
                    acc += double(A[z * sa + (ta ? k * lda + i : i * lda + k)]) *
                           B[z * sb + (tb ? j * ldb + k : k * ldb + j)];
                  const double want = 1.5 * acc + (beta == 0 ? 0 : beta * C0[z * sc + i * ldc + j]);
                  ASSERT_NEAR(got[z * sc + i * ldc + j], want, 1e-4 * std::max(1.0, std::fabs(want)))
                      << gemm_variant_name(c.v) << " tile " << c.tile << " ta " << ta << " tb " << tb
                      << " M" << M << " N" << N << " K" << K << " at " << z << "," << i << "," << j;
                }
          }
        }
      }
  }
}

TEST_P(Kernels, GemmResolvesVectorizedOnlyWhenAligned) {
  alignas(16) float buf[8];
  EXPECT_EQ(gemm_resolve(GemmVariant::Auto, false, false, 8, 4, buf, 4, buf, 8), GemmVariant::Vectorized);
  EXPECT_EQ(gemm_resolve(GemmVariant::Auto, true, false, 8, 4, buf, 4, buf, 8), GemmVariant::RegisterBlocked);
  EXPECT_EQ(gemm_resolve(GemmVariant::Vectorized, false, false, 7, 4, buf, 4, buf, 7), GemmVariant::RegisterBlocked);
  EXPECT_EQ(gemm_resolve(GemmVariant::Auto, false, false, 8, 4, buf + 1, 4, buf, 8), GemmVariant::RegisterBlocked);
  EXPECT_THROW(emu::gemm(s, {GemmVariant::Naive, 12}, false, false, 1, 1, 1, 1.0f, buf, 1, buf, 1, 0.0f, buf, 1), Error);
}

// ---------------------------------------------------------------- convolution

struct ConvRef {
  Conv2dGeometry p;
  Vec y, dx, dw, db;
};

ConvRef conv_reference(const Conv2dGeometry& p, const Vec& x, const Vec& w, const Vec& bias, const Vec& dy) {
  const int64_t oh = p.out_h, ow = p.out_w, cg = p.in_channels / p.groups, kg = p.out_channels / p.groups;
  ConvRef r{p, Vec(p.batch * p.out_channels * oh * ow, 0), Vec(x.size(), 0), Vec(w.size(), 0), Vec(p.out_channels, 0)};
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t k = 0; k < p.out_channels; ++k)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          const int64_t o = ((b * p.out_channels + k) * oh + oy) * ow + ox;
          double acc = bias[k];
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t kr = 0; kr < p.kernel_h; ++kr)
              for (int64_t ks = 0; ks < p.kernel_w; ++ks) {
                const int64_t yy = oy * p.stride_h - p.pad_top + kr * p.dilation_h;
                const int64_t xx = ox * p.stride_w - p.pad_left + ks * p.dilation_w;
                if (yy < 0 || yy >= p.in_h || xx < 0 || xx >= p.in_w) continue;
                const int64_t xi = ((b * p.in_channels + k / kg * cg + ci) * p.in_h + yy) * p.in_w + xx;
                const int64_t wi = ((k * cg + ci) * p.kernel_h + kr) * p.kernel_w + ks;
                acc += double(x[xi]) * w[wi];
                r.dx[xi] += dy[o] * w[wi];
                r.dw[wi] += dy[o] * x[xi];
              }
          r.y[o] = static_cast<float>(acc);
          r.db[k] += dy[o];
        }
  return r;
}

void check_conv(const Stream& s, const Conv2dGeometry& p, ConvConfig config, const std::string& what) {
  const int64_t oh = p.out_h, ow = p.out_w;
  const Vec x = random_values(p.batch * p.in_channels * p.in_h * p.in_w, 14),
            w = random_values(p.out_channels * p.in_channels / p.groups * p.kernel_h * p.kernel_w, 15);
  const Vec bias = random_values(p.out_channels, 16), dy = random_values(p.batch * p.out_channels * oh * ow, 17);
  const ConvRef ref = conv_reference(p, x, w, bias, dy);
  DeviceArray<float> dx_in(x), dw_in(w), dbias(bias), ddy(dy), y(ref.y.size()), ws(conv2d_workspace_floats(p));
  emu::conv2d_forward(s, p, dx_in.get(), dw_in.get(), dbias.get(), y.get(), ws.get(), config);
  expect_close(y.download(), ref.y, 1e-4f, what + " forward");
  DeviceArray<float> dx(x.size()), dw(w.size()), db(p.out_channels);
  emu::conv2d_backward_data(s, p, dw_in.get(), ddy.get(), dx.get(), ws.get());
  emu::conv2d_backward_filter(s, p, dx_in.get(), ddy.get(), dw.get(), db.get(), ws.get());
  expect_close(dx.download(), ref.dx, 1e-4f, what + " backward data");
  expect_close(dw.download(), ref.dw, 1e-4f, what + " backward filter");
  expect_close(db.download(), ref.db, 1e-4f, what + " bias grad");
}

// Any padding: top, bottom, left, right (negative bottom/right as conv_transpose2d's
// output_padding makes them: the last input rows are never read).
Conv2dGeometry padded(Conv2dGeometry p, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  p.pad_top = top, p.pad_bottom = bottom, p.pad_left = left, p.pad_right = right;
  p.set_output_size();
  return p;
}

Conv2dGeometry conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t s, int64_t stride,
                    int64_t pad, int64_t dilation, int64_t groups) {
  Conv2dGeometry p;
  p.batch = n, p.in_channels = c, p.in_h = h, p.in_w = w, p.out_channels = k, p.kernel_h = r, p.kernel_w = s;
  p.stride_h = p.stride_w = stride;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return padded(p, pad, pad, pad, pad);
}

TEST_P(Kernels, ConvolutionIm2colGemmDirectAndDepthwise) {
  check_conv(s, conv(2, 3, 9, 7, 5, 3, 3, 1, 1, 1, 1), {}, "3x3 pad 1");
  check_conv(s, conv(1, 4, 11, 10, 6, 3, 2, 2, 1, 1, 2), {}, "3x2 stride 2 groups 2");
  check_conv(s, conv(2, 3, 8, 9, 4, 3, 3, 1, 2, 2, 1), {}, "dilation 2");
  check_conv(s, conv(2, 5, 6, 7, 3, 1, 1, 1, 0, 1, 1), {}, "pointwise");
  check_conv(s, conv(2, 6, 9, 8, 6, 3, 3, 2, 1, 1, 6), {}, "depthwise stride 2");
  check_conv(s, conv(1, 5, 7, 7, 5, 5, 5, 1, 2, 1, 5), {}, "depthwise 5x5");
  check_conv(s, conv(2, 3, 9, 7, 5, 3, 3, 2, 1, 1, 1), {CudaConvAlgorithm::Direct, {}}, "direct");
  check_conv(s, conv(1, 6, 9, 8, 6, 3, 3, 1, 1, 1, 6), {CudaConvAlgorithm::Im2colGemm, {GemmVariant::SharedTiled, 16}},
             "depthwise as grouped im2col");
}

// Asymmetric padding goes straight into the kernels (only pad_top/pad_left and the output size
// enter them), forward and both backward passes.
TEST_P(Kernels, ConvolutionWithAsymmetricPadding) {
  const Conv2dGeometry strided = padded(conv(2, 3, 9, 7, 5, 3, 3, 2, 0, 1, 1), 0, 1, 2, 1);
  check_conv(s, strided, {}, "im2col, padding 0 1 2 1");
  check_conv(s, strided, {CudaConvAlgorithm::Direct, {}}, "direct, padding 0 1 2 1");
  check_conv(s, padded(conv(1, 4, 11, 10, 6, 3, 2, 2, 0, 2, 2), 2, 0, 1, 3), {}, "grouped dilated, padding 2 0 1 3");
  check_conv(s, padded(conv(2, 6, 9, 8, 6, 3, 3, 2, 0, 1, 6), 1, 0, 0, 2), {}, "depthwise, padding 1 0 0 2");
  check_conv(s, padded(conv(1, 5, 7, 7, 5, 5, 5, 1, 0, 1, 5), 1, 3, 2, 2), {}, "depthwise 5x5, padding 1 3 2 2");
  // A 1x1 conv padded at the end only is no longer a plain GEMM on the input.
  check_conv(s, padded(conv(2, 5, 6, 7, 3, 1, 1, 1, 0, 1, 1), 0, 1, 0, 1), {}, "1x1, padding 0 1 0 1");
  check_conv(s, padded(conv(2, 3, 9, 7, 4, 3, 3, 2, 0, 1, 1), 1, -1, 1, -1), {}, "negative bottom and right");
  check_conv(s, padded(conv(2, 6, 9, 8, 6, 3, 3, 1, 0, 1, 6), 1, -1, 1, 0), {}, "depthwise, negative bottom");
}

// ---------------------------------------------------------------- dropout

TEST_P(Kernels, DropoutMaskScaleAndBackward) {
  const int n = 4001;
  const float p = 0.3f;
  const Vec x = random_values(n, 29), dy = random_values(n, 30);
  const Tensor tx = device_tensor(x);
  const backend::DropoutOutput r = backend::run<backend::Op::dropout>(kEmu, tx, p, uint64_t{1234});
  const Vec got_dx = host_values(backend::run<backend::Op::dropout_backward>(kEmu, device_tensor(dy), r.mask, p));
  const std::vector<double> m = r.mask.to(Device::cpu()).to_vector();
  const Vec got_y = host_values(r.y);
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(m[i] == 0 || m[i] == 1) << i;
    kept += static_cast<int>(m[i]);
    EXPECT_FLOAT_EQ(got_y[i], m[i] ? x[i] / (1 - p) : 0.0f);
    EXPECT_FLOAT_EQ(got_dx[i], m[i] ? dy[i] / (1 - p) : 0.0f);
  }
  EXPECT_NEAR(kept / double(n), 1 - p, 0.03);
  // The same seed gives the same mask, another seed another.
  const auto mask_of = [&](uint64_t seed) {
    return backend::run<backend::Op::dropout>(kEmu, tx, p, seed).mask.to(Device::cpu()).to_vector();
  };
  EXPECT_EQ(mask_of(1234), m);
  EXPECT_NE(mask_of(99), m);
}

SCALPEL_ALL_SCHEDULES(Kernels);

}  // namespace
}  // namespace scalpel::cuda
