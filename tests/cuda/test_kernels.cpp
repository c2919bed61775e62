// Every handwritten kernel on cuda-emu against a plain CPU loop, on small odd shapes, with
// outputs pre-filled with NaN, under the forward, reverse and shuffled thread schedules.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cuda_test_util.h"
#include "tensor/error.h"

namespace scalpel::cuda {
namespace {

using testing::DeviceArray;
using testing::expect_close;
using testing::random_values;
using Vec = std::vector<float>;

class Kernels : public testing::EmuScheduleTest {};

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

TEST_P(Kernels, BinaryBroadcast) {
  // a [3, 1, 5] op b [4, 1] -> [3, 4, 5]
  const Vec a = random_values(15, 3, 0.5f, 2.0f), b = random_values(4, 4, 0.5f, 2.0f);
  DeviceArray<float> da(a), db(b);
  BroadcastLayout L;
  L.ndim = 3;
  const int64_t shape[3] = {3, 4, 5}, sa[3] = {5, 0, 1}, sb[3] = {0, 1, 0};
  std::copy(shape, shape + 3, L.shape);
  std::copy(sa, sa + 3, L.a_strides);
  std::copy(sb, sb + 3, L.b_strides);
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max,
                      BinaryOp::Min, BinaryOp::Pow}) {
    DeviceArray<float> out(60);
    emu::binary(s, op, da.get(), db.get(), out.get(), L);
    Vec want(60);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k) {
          const float x = a[i * 5 + k], y = b[j];
          float r = 0;
          switch (op) {
            case BinaryOp::Add: r = x + y; break;
            case BinaryOp::Sub: r = x - y; break;
            case BinaryOp::Mul: r = x * y; break;
            case BinaryOp::Div: r = x / y; break;
            case BinaryOp::Max: r = std::max(x, y); break;
            case BinaryOp::Min: r = std::min(x, y); break;
            case BinaryOp::Pow: r = std::pow(x, y); break;
          }
          want[(i * 4 + j) * 5 + k] = r;
        }
    expect_close(out.download(), want, 1e-5f, "op " + std::to_string(static_cast<int>(op)));
  }
  // Same-shape operands take the flat path.
  BroadcastLayout F;
  F.ndim = 1;
  F.shape[0] = 4;
  F.a_strides[0] = F.b_strides[0] = 1;
  DeviceArray<float> out(4);
  emu::binary(s, BinaryOp::Mul, db.get(), db.get(), out.get(), F);
  expect_close(out.download(), {b[0] * b[0], b[1] * b[1], b[2] * b[2], b[3] * b[3]});
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
    DeviceArray<float> din(in), ddy(dy), y(53), dx(53);
    emu::unary_forward(s, op, alpha, din.get(), y.get(), 53);
    emu::unary_backward(s, op, alpha, din.get(), ddy.get(), dx.get(), 53);
    Vec want_y(53), want_dx(53);
    for (int i = 0; i < 53; ++i) {
      want_y[i] = static_cast<float>(unary_ref(op, alpha, in[i]));
      const double h = 1e-4;
      want_dx[i] = static_cast<float>(dy[i] * (unary_ref(op, alpha, in[i] + h) - unary_ref(op, alpha, in[i] - h)) / (2 * h));
    }
    const std::string what = "unary op " + std::to_string(o);
    expect_close(y.download(), want_y, 1e-5f, what);
    expect_close(dx.download(), want_dx, 1e-3f, what + " backward");
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

TEST_P(Kernels, SoftmaxLogSoftmaxAndBackward) {
  const int rows = 5, cols = 301;
  const Vec x = random_values(rows * cols, 8, -5.0f, 5.0f), dy = random_values(rows * cols, 9);
  DeviceArray<float> dx_in(x), ddy(dy);
  for (bool log : {false, true}) {
    DeviceArray<float> y(rows * cols), dx(rows * cols);
    emu::softmax_forward(s, dx_in.get(), y.get(), rows, cols, log);
    emu::softmax_backward(s, y.get(), ddy.get(), dx.get(), rows, cols, log);
    Vec want_y(rows * cols), want_dx(rows * cols);
    for (int r = 0; r < rows; ++r) {
      double m = -INFINITY, sum = 0, dot = 0, sum_dy = 0;
      for (int c = 0; c < cols; ++c) m = std::max(m, double(x[r * cols + c]));
      for (int c = 0; c < cols; ++c) sum += std::exp(x[r * cols + c] - m);
      for (int c = 0; c < cols; ++c) {
        const double p = std::exp(x[r * cols + c] - m) / sum;
        want_y[r * cols + c] = static_cast<float>(log ? std::log(p) : p);
        dot += dy[r * cols + c] * p;
        sum_dy += dy[r * cols + c];
      }
      for (int c = 0; c < cols; ++c) {
        const double p = std::exp(x[r * cols + c] - m) / sum;
        want_dx[r * cols + c] = static_cast<float>(log ? dy[r * cols + c] - p * sum_dy : p * (dy[r * cols + c] - dot));
      }
    }
    expect_close(y.download(), want_y, 1e-5f, log ? "log_softmax" : "softmax");
    expect_close(dx.download(), want_dx, 1e-5f, log ? "log_softmax backward" : "softmax backward");
  }
}

TEST_P(Kernels, CrossEntropyForwardAndBackward) {
  const int rows = 7, cols = 13;
  const Vec x = random_values(rows * cols, 10, -4.0f, 4.0f);
  const std::vector<int64_t> labels = {0, 12, 5, 5, 3, 11, 1};
  DeviceArray<float> dlogits_in(x), loss(rows), grad(rows * cols);
  DeviceArray<int64_t> dlabels(labels);
  emu::cross_entropy_forward(s, dlogits_in.get(), dlabels.get(), loss.get(), rows, cols);
  emu::cross_entropy_backward(s, dlogits_in.get(), dlabels.get(), grad.get(), rows, cols, 0.25f);
  Vec want_loss(rows), want_grad(rows * cols);
  for (int r = 0; r < rows; ++r) {
    double m = -INFINITY, sum = 0;
    for (int c = 0; c < cols; ++c) m = std::max(m, double(x[r * cols + c]));
    for (int c = 0; c < cols; ++c) sum += std::exp(x[r * cols + c] - m);
    want_loss[r] = static_cast<float>(m + std::log(sum) - x[r * cols + labels[r]]);
    for (int c = 0; c < cols; ++c)
      want_grad[r * cols + c] = static_cast<float>((std::exp(x[r * cols + c] - m) / sum - (c == labels[r])) * 0.25);
  }
  expect_close(loss.download(), want_loss, 1e-5f, "loss");
  expect_close(grad.download(), want_grad, 1e-5f, "dlogits");
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

// ---------------------------------------------------------------- batch norm

TEST_P(Kernels, BatchNormTrainEvalBackward) {
  const int n = 3, c = 4, hw = 37;
  const Vec x = random_values(n * c * hw, 18, -2.0f, 3.0f), dy = random_values(n * c * hw, 19);
  const Vec gamma = random_values(c, 20, 0.5f, 1.5f), beta = random_values(c, 21);
  Vec rm(c, 0.1f), rv(c, 0.9f);
  DeviceArray<float> dx_in(x), ddy(dy), dg(gamma), dbeta(beta), drm(rm), drv(rv);
  DeviceArray<float> y(x.size()), mean(c), invstd(c), dx(x.size()), dgamma(c), dbeta_out(c), ye(x.size());
  const float momentum = 0.1f, eps = 1e-5f;
  emu::batch_norm_train_forward(s, dx_in.get(), dg.get(), dbeta.get(), y.get(), drm.get(), drv.get(),
                                mean.get(), invstd.get(), n, c, hw, momentum, eps);
  emu::batch_norm_backward(s, dx_in.get(), ddy.get(), dg.get(), mean.get(), invstd.get(), dx.get(),
                           dgamma.get(), dbeta_out.get(), n, c, hw);
  emu::batch_norm_eval_forward(s, dx_in.get(), dg.get(), dbeta.get(), drm.get(), drv.get(), ye.get(), n, c, hw, eps);
  Vec want_y(x.size()), want_dx(x.size()), want_dg(c), want_db(c), want_rm(c), want_rv(c), want_ye(x.size());
  const double M = n * hw;
  for (int ch = 0; ch < c; ++ch) {
    double mu = 0, var = 0, sdy = 0, sdyx = 0;
    auto at = [&](int b, int i) { return (b * c + ch) * hw + i; };
    for (int b = 0; b < n; ++b) for (int i = 0; i < hw; ++i) mu += x[at(b, i)];
    mu /= M;
    for (int b = 0; b < n; ++b) for (int i = 0; i < hw; ++i) var += (x[at(b, i)] - mu) * (x[at(b, i)] - mu);
    var /= M;
    const double is = 1 / std::sqrt(var + eps);
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < hw; ++i) {
        const double xh = (x[at(b, i)] - mu) * is;
        want_y[at(b, i)] = static_cast<float>(xh * gamma[ch] + beta[ch]);
        sdy += dy[at(b, i)];
        sdyx += dy[at(b, i)] * xh;
      }
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < hw; ++i) {
        const double xh = (x[at(b, i)] - mu) * is;
        want_dx[at(b, i)] = static_cast<float>(gamma[ch] * is * (dy[at(b, i)] - sdy / M - xh * sdyx / M));
      }
    want_dg[ch] = static_cast<float>(sdyx);
    want_db[ch] = static_cast<float>(sdy);
    want_rm[ch] = static_cast<float>(0.9 * 0.1 + 0.1 * mu);
    want_rv[ch] = static_cast<float>(0.9 * 0.9 + 0.1 * var * M / (M - 1));
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < hw; ++i)
        want_ye[at(b, i)] = static_cast<float>((x[at(b, i)] - want_rm[ch]) / std::sqrt(want_rv[ch] + eps) * gamma[ch] + beta[ch]);
  }
  expect_close(y.download(), want_y, 1e-4f, "train forward");
  expect_close(drm.download(), want_rm, 1e-5f, "running mean");
  expect_close(drv.download(), want_rv, 1e-5f, "running var");
  expect_close(dx.download(), want_dx, 1e-4f, "dx");
  expect_close(dgamma.download(), want_dg, 1e-4f, "dgamma");
  expect_close(dbeta_out.download(), want_db, 1e-4f, "dbeta");
  expect_close(ye.download(), want_ye, 1e-4f, "eval forward");
}

// ---------------------------------------------------------------- pooling, upsample

TEST_P(Kernels, MaxAndAvgPoolForwardBackward) {
  for (auto [k, stride, pad, include] : {std::tuple<int, int, int, bool>{3, 2, 1, true}, {2, 2, 0, true},
                                          {3, 1, 1, false}, {3, 2, 1, false}}) {
    Pool2dShape p;
    p.n = 2; p.c = 3; p.h = 9; p.w = 8;
    p.kernel_h = p.kernel_w = k;
    p.stride_h = p.stride_w = stride;
    p.pad_h = p.pad_w = pad;
    p.count_include_pad = include;
    const int64_t oh = p.out_h(), ow = p.out_w(), planes = p.n * p.c;
    const Vec x = random_values(planes * p.h * p.w, 22), dy = random_values(planes * oh * ow, 23);
    Vec my(planes * oh * ow), mdx(x.size(), 0), ay(my.size()), adx(x.size(), 0);
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          const int64_t o = (pl * oh + oy) * ow + ox;
          float best = -INFINITY;
          int64_t arg = -1;
          double sum = 0;
          const int64_t y0 = oy * stride - pad, x0 = ox * stride - pad;
          const int64_t y1 = std::min<int64_t>(y0 + k, p.h + pad), x1 = std::min<int64_t>(x0 + k, p.w + pad);
          int64_t valid = 0;
          for (int64_t yy = y0; yy < y0 + k; ++yy)
            for (int64_t xx = x0; xx < x0 + k; ++xx) {
              if (yy < 0 || yy >= p.h || xx < 0 || xx >= p.w) continue;
              const int64_t i = (pl * p.h + yy) * p.w + xx;
              if (arg < 0 || x[i] > best) { best = x[i]; arg = i; }
              sum += x[i];
              ++valid;
            }
          const double div = include ? double((y1 - y0) * (x1 - x0)) : double(valid);
          my[o] = best;
          mdx[arg] += dy[o];
          ay[o] = static_cast<float>(sum / div);
          for (int64_t yy = std::max<int64_t>(y0, 0); yy < std::min<int64_t>(y0 + k, p.h); ++yy)
            for (int64_t xx = std::max<int64_t>(x0, 0); xx < std::min<int64_t>(x0 + k, p.w); ++xx)
              adx[(pl * p.h + yy) * p.w + xx] += static_cast<float>(dy[o] / div);
        }
    DeviceArray<float> dxin(x), ddy(dy), y(my.size()), dx(x.size()), y2(my.size()), dx2(x.size());
    DeviceArray<int32_t> idx(my.size(), -7);
    emu::max_pool2d_forward(s, p, dxin.get(), y.get(), idx.get());
    emu::max_pool2d_backward(s, p, ddy.get(), idx.get(), dx.get());
    emu::avg_pool2d_forward(s, p, dxin.get(), y2.get());
    emu::avg_pool2d_backward(s, p, ddy.get(), dx2.get());
    const std::string what = "pool k" + std::to_string(k) + " s" + std::to_string(stride) + " p" + std::to_string(pad);
    expect_close(y.download(), my, 1e-6f, what + " max");
    expect_close(dx.download(), mdx, 1e-5f, what + " max backward");
    expect_close(y2.download(), ay, 1e-5f, what + " avg");
    expect_close(dx2.download(), adx, 1e-5f, what + " avg backward");
  }
}

TEST_P(Kernels, UpsampleNearestAndBilinear) {
  const int nc = 3, h = 5, w = 4;
  const Vec x = random_values(nc * h * w, 24);
  for (auto [oh, ow] : {std::pair<int, int>{10, 8}, {7, 9}, {3, 2}}) {
    const Vec dy = random_values(nc * oh * ow, 25);
    for (UpsampleMode mode : {UpsampleMode::Nearest, UpsampleMode::Bilinear}) {
      // Reference taps in double (PyTorch's formulas).
      auto taps = [&](int o, int in, int out, int64_t& i0, int64_t& i1, double& l1) {
        const double scale = double(in) / out;
        if (mode == UpsampleMode::Nearest) {
          i0 = i1 = std::min<int64_t>(static_cast<int64_t>(std::floor(o * scale)), in - 1);
          l1 = 0;
          return;
        }
        const double src = std::max(0.0, (o + 0.5) * scale - 0.5);
        i0 = static_cast<int64_t>(src);
        i1 = std::min<int64_t>(i0 + 1, in - 1);
        l1 = src - i0;
      };
      Vec want_y(nc * oh * ow), want_dx(x.size(), 0);
      for (int pl = 0; pl < nc; ++pl)
        for (int oy = 0; oy < oh; ++oy)
          for (int ox = 0; ox < ow; ++ox) {
            int64_t y0, y1, x0, x1;
            double ly, lx;
            taps(oy, h, oh, y0, y1, ly);
            taps(ox, w, ow, x0, x1, lx);
            const float* xp = x.data() + pl * h * w;
            const int64_t o = (pl * oh + oy) * ow + ox;
            want_y[o] = static_cast<float>((1 - ly) * ((1 - lx) * xp[y0 * w + x0] + lx * xp[y0 * w + x1]) +
                                           ly * ((1 - lx) * xp[y1 * w + x0] + lx * xp[y1 * w + x1]));
            float* dp = want_dx.data() + pl * h * w;
            dp[y0 * w + x0] += static_cast<float>(dy[o] * (1 - ly) * (1 - lx));
            dp[y0 * w + x1] += static_cast<float>(dy[o] * (1 - ly) * lx);
            dp[y1 * w + x0] += static_cast<float>(dy[o] * ly * (1 - lx));
            dp[y1 * w + x1] += static_cast<float>(dy[o] * ly * lx);
          }
      DeviceArray<float> dxin(x), ddy(dy), y(want_y.size()), dx(x.size());
      emu::upsample2d_forward(s, mode, dxin.get(), y.get(), nc, h, w, oh, ow);
      emu::upsample2d_backward(s, mode, ddy.get(), dx.get(), nc, h, w, oh, ow);
      const std::string what = std::string(mode == UpsampleMode::Nearest ? "nearest " : "bilinear ") +
                               std::to_string(oh) + "x" + std::to_string(ow);
      expect_close(y.download(), want_y, 1e-5f, what);
      expect_close(dx.download(), want_dx, 1e-5f, what + " backward");
    }
  }
}

// ---------------------------------------------------------------- concat, dropout

TEST_P(Kernels, ConcatAndSplit) {
  // [2, {3, 1, 4}, 5] along axis 1
  const int64_t sizes[3] = {3, 1, 4};
  const int outer = 2, inner = 5;
  std::vector<Vec> parts;
  Vec want(outer * 8 * inner);
  for (int i = 0, off = 0; i < 3; off += sizes[i], ++i) {
    parts.push_back(random_values(outer * sizes[i] * inner, 26 + i));
    for (int o = 0; o < outer; ++o)
      for (int j = 0; j < sizes[i] * inner; ++j) want[(o * 8 + off) * inner + j] = parts[i][o * sizes[i] * inner + j];
  }
  DeviceArray<float> p0(parts[0]), p1(parts[1]), p2(parts[2]), out(want.size());
  const float* ins[3] = {p0.get(), p1.get(), p2.get()};
  emu::concat_forward(s, ins, sizes, 3, outer, inner, out.get());
  expect_close(out.download(), want, 0.0f, "concat");
  DeviceArray<float> g0(parts[0].size()), g1(parts[1].size()), g2(parts[2].size());
  float* outs[3] = {g0.get(), g1.get(), g2.get()};
  emu::concat_backward(s, out.get(), sizes, 3, outer, inner, outs);
  expect_close(g0.download(), parts[0], 0.0f, "split 0");
  expect_close(g1.download(), parts[1], 0.0f, "split 1");
  expect_close(g2.download(), parts[2], 0.0f, "split 2");
}

TEST_P(Kernels, DropoutMaskScaleAndBackward) {
  const int n = 4001;
  const float p = 0.3f;
  const Vec x = random_values(n, 29), dy = random_values(n, 30);
  DeviceArray<float> dxin(x), ddy(dy), y(n), dx(n);
  DeviceArray<uint8_t> mask(n, 7);
  emu::dropout_forward(s, dxin.get(), y.get(), mask.get(), n, p, 1234);
  emu::dropout_backward(s, ddy.get(), mask.get(), dx.get(), n, p);
  const std::vector<uint8_t> m = mask.download();
  const Vec got_y = y.download(), got_dx = dx.download();
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(m[i] == 0 || m[i] == 1) << i;
    kept += m[i];
    EXPECT_FLOAT_EQ(got_y[i], m[i] ? x[i] / (1 - p) : 0.0f);
    EXPECT_FLOAT_EQ(got_dx[i], m[i] ? dy[i] / (1 - p) : 0.0f);
  }
  EXPECT_NEAR(kept / double(n), 1 - p, 0.03);
  // The same seed gives the same mask, another seed another.
  DeviceArray<uint8_t> again(n, 7), other(n, 7);
  emu::dropout_forward(s, dxin.get(), y.get(), again.get(), n, p, 1234);
  emu::dropout_forward(s, dxin.get(), y.get(), other.get(), n, p, 99);
  EXPECT_EQ(again.download(), m);
  EXPECT_NE(other.download(), m);
}

// ---------------------------------------------------------------- optimizers

TEST_P(Kernels, FusedOptimizersMatchTorchFormulasOverSteps) {
  const int n = 67;
  const Vec p0 = random_values(n, 31), g1 = random_values(n, 32), g2 = random_values(n, 33);
  const Vec grads[2] = {g1, g2};
  // SGD with momentum, dampening, weight decay, nesterov.
  {
    DeviceArray<float> p(p0), buf(n);
    Vec rp = p0, rb(n);
    for (int step = 1; step <= 2; ++step) {
      DeviceArray<float> g(grads[step - 1]);
      emu::sgd_step(s, p.get(), g.get(), buf.get(), n, 0.1f, 0.9f, 0.1f, 0.01f, true, step);
      for (int i = 0; i < n; ++i) {
        float gr = grads[step - 1][i] + 0.01f * rp[i];
        rb[i] = step == 1 ? gr : 0.9f * rb[i] + 0.9f * gr;
        gr = gr + 0.9f * rb[i];
        rp[i] -= 0.1f * gr;
      }
    }
    expect_close(p.download(), rp, 1e-5f, "sgd");
  }
  // Adam and AdamW.
  for (bool decoupled : {false, true}) {
    DeviceArray<float> p(p0), m(Vec(n, 0.0f)), v(Vec(n, 0.0f));
    Vec rp = p0, rm(n, 0), rv(n, 0);
    for (int step = 1; step <= 2; ++step) {
      DeviceArray<float> g(grads[step - 1]);
      emu::adam_step(s, p.get(), g.get(), m.get(), v.get(), n, 0.01f, 0.9f, 0.999f, 1e-8f, 0.05f, decoupled, step);
      for (int i = 0; i < n; ++i) {
        double gr = grads[step - 1][i], pr = rp[i];
        if (decoupled) pr *= 1 - 0.01 * 0.05; else gr += 0.05 * pr;
        rm[i] = static_cast<float>(0.9 * rm[i] + 0.1 * gr);
        rv[i] = static_cast<float>(0.999 * rv[i] + 0.001 * gr * gr);
        const double bc1 = 1 - std::pow(0.9, step), bc2 = 1 - std::pow(0.999, step);
        rp[i] = static_cast<float>(pr - 0.01 / bc1 * rm[i] / (std::sqrt(rv[i]) / std::sqrt(bc2) + 1e-8));
      }
    }
    expect_close(p.download(), rp, 1e-5f, decoupled ? "adamw" : "adam");
  }
  // RMSprop with momentum.
  {
    DeviceArray<float> p(p0), sq(Vec(n, 0.0f)), buf(Vec(n, 0.0f));
    Vec rp = p0, rs(n, 0), rb(n, 0);
    for (int step = 1; step <= 2; ++step) {
      DeviceArray<float> g(grads[step - 1]);
      emu::rmsprop_step(s, p.get(), g.get(), sq.get(), buf.get(), n, 0.01f, 0.99f, 1e-8f, 0.01f, 0.5f);
      for (int i = 0; i < n; ++i) {
        const double gr = grads[step - 1][i] + 0.01 * rp[i];
        rs[i] = static_cast<float>(0.99 * rs[i] + 0.01 * gr * gr);
        rb[i] = static_cast<float>(0.5 * rb[i] + gr / (std::sqrt(rs[i]) + 1e-8));
        rp[i] = static_cast<float>(rp[i] - 0.01 * rb[i]);
      }
    }
    expect_close(p.download(), rp, 1e-4f, "rmsprop");
  }
}

SCALPEL_ALL_SCHEDULES(Kernels);

}  // namespace
}  // namespace scalpel::cuda
