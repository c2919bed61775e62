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

Conv2dGeometry shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t stride, int64_t pad,
                     int64_t dilation, int64_t groups) {
  Conv2dGeometry p;
  p.batch = n, p.in_channels = c, p.in_h = h, p.in_w = w, p.out_channels = k, p.kernel_h = p.kernel_w = r;
  p.stride_h = p.stride_w = stride, p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = pad;
  p.dilation_h = p.dilation_w = dilation, p.groups = groups;
  p.set_output_size();
  return p;
}

// cuDNN pads symmetrically; these run on an explicitly padded input (cuda/cudnn/cudnn.cpp).
Conv2dGeometry asymmetric(Conv2dGeometry p, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  p.pad_top = top, p.pad_bottom = bottom, p.pad_left = left, p.pad_right = right;
  p.set_output_size();
  return p;
}

TEST_F(Cudnn, ConvolutionForwardAndBackwardMatchTheCpuReference) {
  const Conv2dGeometry shapes[] = {
      shape(2, 5, 9, 7, 6, 3, 1, 1, 1, 1),                          // plain 3x3
      shape(3, 6, 11, 10, 4, 3, 2, 2, 2, 2),                        // stride, dilation, groups
      shape(2, 8, 7, 9, 8, 3, 1, 1, 1, 8),                          // depthwise
      shape(2, 7, 5, 6, 9, 1, 1, 0, 1, 1),                          // pointwise
      asymmetric(shape(2, 5, 9, 8, 6, 3, 2, 0, 1, 1), 0, 1, 1, 0),  // TF SAME, stride 2
      asymmetric(shape(2, 8, 7, 9, 8, 3, 1, 0, 1, 8), 2, 1, 0, 3),  // depthwise
  };
  for (const cudnn::AlgoSearch search : {cudnn::AlgoSearch::Heuristic, cudnn::AlgoSearch::Measure}) {
    cudnn::set_algo_search(search);
    for (const Conv2dGeometry& p : shapes) {
      const size_t nx = p.batch * p.in_channels * p.in_h * p.in_w;
      const size_t nw = p.out_channels * p.in_per_group() * p.kernel_h * p.kernel_w;
      const size_t ny = p.batch * p.out_channels * p.out_h * p.out_w;
      const std::vector<float> x = random_values(nx, 1), w = random_values(nw, 2);
      const std::vector<float> bias = random_values(p.out_channels, 3);
      const std::vector<float> dy = random_values(ny, 4);
      GpuArray X(s, x), W(s, w), B(s, bias), DY(s, dy), Y(s, ny), DX(s, nx), DW(s, nw), DB(s, p.out_channels);
      cudnn::conv2d_forward(s, p, X.get(), W.get(), B.get(), Y.get());
      cudnn::conv2d_backward_data(s, p, W.get(), DY.get(), DX.get());
      cudnn::conv2d_backward_filter(s, p, X.get(), DY.get(), DW.get(), DB.get());
      expect_close(Y.download(), lab::conv2d_forward_reference(p, x, w, bias), 1e-4f, "forward");
      expect_close(DX.download(), lab::conv2d_backward_data_reference(p, w, dy), 1e-4f, "backward data");
      expect_close(DW.download(), lab::conv2d_backward_filter_reference(p, x, dy), 1e-4f, "backward filter");
      std::vector<float> db(p.out_channels, 0.0f);
      const int64_t plane = p.out_h * p.out_w;
      for (int64_t i = 0; i < static_cast<int64_t>(ny); ++i) db[i / plane % p.out_channels] += dy[i];
      expect_close(DB.download(), db, 1e-4f, "bias gradient");
    }
  }
  cudnn::set_algo_search(cudnn::AlgoSearch::Heuristic);
}

}  // namespace
}  // namespace scalpel::cuda
