// The cuDNN paths (cuda/cudnn.h) against the CPU reference, on a real GPU. cuDNN cannot be
// emulated, so on machines without a GPU (or builds without cuDNN) these skip, saying why.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cuda_test_util.h"
#include "cuda/cudnn.h"
#include "cuda/lab/reference.h"
#include "cuda/tensor_ops.h"
#include "tensor/error.h"

namespace scalpel::cuda {
namespace {

using testing::expect_close;
using testing::random_values;

// Float32 device memory on the GPU, from host values or filled with NaN sentinels.
class GpuArray {
 public:
  GpuArray(const Stream& s, const std::vector<float>& values) : s_(s), n_(values.size()) {
    ptr_ = static_cast<float*>(gpu_allocator()->allocate(n_ * sizeof(float)));
    copy_host_to_device(s_, ptr_, values.data(), n_ * sizeof(float));
  }
  GpuArray(const Stream& s, size_t n) : GpuArray(s, std::vector<float>(n, NAN)) {}
  ~GpuArray() { gpu_allocator()->deallocate(ptr_, n_ * sizeof(float)); }
  GpuArray(const GpuArray&) = delete;
  GpuArray& operator=(const GpuArray&) = delete;
  float* get() { return ptr_; }
  std::vector<float> download() const {
    std::vector<float> out(n_);
    copy_device_to_host(s_, out.data(), ptr_, n_ * sizeof(float));
    return out;
  }

 private:
  Stream s_;
  size_t n_;
  float* ptr_;
};

class Cudnn : public ::testing::Test {
 protected:
  void SetUp() override {
    init();
    try {
      cudnn::require(Device{DeviceType::CUDA, 0});
    } catch (const Error& e) {
      GTEST_SKIP() << "cuDNN needs a GPU (it cannot be emulated): " << e.what();
    }
    s = default_stream(Device{DeviceType::CUDA, 0});
  }
  Stream s;
};

Conv2dShape shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t stride,
                  int64_t pad, int64_t dilation, int64_t groups) {
  Conv2dShape p;
  p.n = n, p.c = c, p.h = h, p.w = w, p.k = k, p.r = p.s = r;
  p.stride_h = p.stride_w = stride, p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation, p.groups = groups;
  return p;
}

TEST_F(Cudnn, ConvolutionForwardAndBackwardMatchTheCpuReference) {
  const Conv2dShape shapes[] = {
      shape(2, 5, 9, 7, 6, 3, 1, 1, 1, 1),    // plain 3x3
      shape(3, 6, 11, 10, 4, 3, 2, 2, 2, 2),  // stride, dilation, groups
      shape(2, 8, 7, 9, 8, 3, 1, 1, 1, 8),    // depthwise
      shape(2, 7, 5, 6, 9, 1, 1, 0, 1, 1),    // pointwise
  };
  for (const cudnn::AlgoSearch search : {cudnn::AlgoSearch::Heuristic, cudnn::AlgoSearch::Measure}) {
    cudnn::set_algo_search(search);
    for (const Conv2dShape& p : shapes) {
      const size_t nx = p.n * p.c * p.h * p.w, nw = p.k * (p.c / p.groups) * p.r * p.s;
      const size_t ny = p.n * p.k * p.out_h() * p.out_w();
      const std::vector<float> x = random_values(nx, 1), w = random_values(nw, 2), bias = random_values(p.k, 3);
      const std::vector<float> dy = random_values(ny, 4);
      GpuArray X(s, x), W(s, w), B(s, bias), DY(s, dy), Y(s, ny), DX(s, nx), DW(s, nw), DB(s, p.k);
      cudnn::conv2d_forward(s, p, X.get(), W.get(), B.get(), Y.get());
      cudnn::conv2d_backward_data(s, p, W.get(), DY.get(), DX.get());
      cudnn::conv2d_backward_filter(s, p, X.get(), DY.get(), DW.get(), DB.get());
      expect_close(Y.download(), lab::conv2d_forward_reference(p, x, w, bias), 1e-4f, "forward");
      expect_close(DX.download(), lab::conv2d_backward_data_reference(p, w, dy), 1e-4f, "backward data");
      expect_close(DW.download(), lab::conv2d_backward_filter_reference(p, x, dy), 1e-4f, "backward filter");
      std::vector<float> db(p.k, 0.0f);
      const int64_t plane = p.out_h() * p.out_w();
      for (int64_t i = 0; i < static_cast<int64_t>(ny); ++i) db[i / plane % p.k] += dy[i];
      expect_close(DB.download(), db, 1e-4f, "bias gradient");
    }
  }
  cudnn::set_algo_search(cudnn::AlgoSearch::Heuristic);
}

TEST_F(Cudnn, BatchNormMatchesItsDefinition) {
  const int64_t n = 3, c = 4, hw = 10, count = n * hw;
  const float momentum = 0.1f, eps = 1e-5f;
  const std::vector<float> x = random_values(n * c * hw, 5), dy = random_values(n * c * hw, 6);
  const std::vector<float> gamma = random_values(c, 7, 0.5f, 1.5f), beta = random_values(c, 8);
  const std::vector<float> mean0(c, 0.2f), var0(c, 1.5f);
  // The definition, per channel (PyTorch: biased variance to normalize, unbiased in the running one).
  std::vector<float> y(x.size()), dx(x.size()), mean1(c), var1(c), dgamma(c), dbeta(c), y_eval(x.size());
  for (int64_t ch = 0; ch < c; ++ch) {
    auto at = [&](int64_t i) { return (i / hw) * c * hw + ch * hw + i % hw; };
    double m = 0, v = 0;
    for (int64_t i = 0; i < count; ++i) m += x[at(i)];
    m /= count;
    for (int64_t i = 0; i < count; ++i) v += (x[at(i)] - m) * (x[at(i)] - m);
    v /= count;
    const double invstd = 1.0 / std::sqrt(v + eps);
    mean1[ch] = static_cast<float>((1 - momentum) * mean0[ch] + momentum * m);
    var1[ch] = static_cast<float>((1 - momentum) * var0[ch] + momentum * v * count / (count - 1));
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < count; ++i) {
      const double xhat = (x[at(i)] - m) * invstd;
      y[at(i)] = static_cast<float>(xhat * gamma[ch] + beta[ch]);
      y_eval[at(i)] = static_cast<float>((x[at(i)] - mean0[ch]) / std::sqrt(var0[ch] + eps) * gamma[ch] + beta[ch]);
      sum_dy += dy[at(i)];
      sum_dy_xhat += dy[at(i)] * xhat;
    }
    dgamma[ch] = static_cast<float>(sum_dy_xhat);
    dbeta[ch] = static_cast<float>(sum_dy);
    for (int64_t i = 0; i < count; ++i) {
      const double xhat = (x[at(i)] - m) * invstd;
      dx[at(i)] = static_cast<float>(gamma[ch] * invstd * (dy[at(i)] - sum_dy / count - xhat * sum_dy_xhat / count));
    }
  }
  GpuArray X(s, x), DY(s, dy), G(s, gamma), B(s, beta), RM(s, mean0), RV(s, var0);
  GpuArray Y(s, x.size()), SM(s, c), SI(s, c), DX(s, x.size()), DG(s, c), DB(s, c), YE(s, x.size());
  cudnn::batch_norm_eval_forward(s, X.get(), G.get(), B.get(), RM.get(), RV.get(), YE.get(), n, c, hw, eps);
  cudnn::batch_norm_train_forward(s, X.get(), G.get(), B.get(), Y.get(), RM.get(), RV.get(), SM.get(), SI.get(),
                                  n, c, hw, momentum, eps);
  cudnn::batch_norm_backward(s, X.get(), DY.get(), G.get(), SM.get(), SI.get(), DX.get(), DG.get(), DB.get(), n,
                             c, hw, eps);
  expect_close(YE.download(), y_eval, 1e-4f, "eval forward");
  expect_close(Y.download(), y, 1e-4f, "train forward");
  expect_close(RM.download(), mean1, 1e-4f, "running mean");
  expect_close(RV.download(), var1, 1e-4f, "running var");
  expect_close(DX.download(), dx, 1e-4f, "dx");
  expect_close(DG.download(), dgamma, 1e-4f, "dgamma");
  expect_close(DB.download(), dbeta, 1e-4f, "dbeta");
}

}  // namespace
}  // namespace scalpel::cuda
