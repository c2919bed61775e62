// GradientBuckets (apps/train/distributed.h) on each kind of buffer, against a communicator
// standing in for 2 ranks whose peer holds 3x this rank's gradients (so every sum is 4x):
// CPU gradients over host buffers (MPI), device gradients over host buffers (MPI with
// --device cuda-emu: copied there and back), device gradients over device buffers (NCCL's way,
// here on cuda-emu memory: no copy at all).
#include <gtest/gtest.h>

#include <cmath>

#include "apps/train/distributed.h"
#include "cuda/device.h"
#include "cuda/tensor_ops.h"

namespace scalpel::train {
namespace {

class PeerTimesThree : public nn::Communicator {
 public:
  explicit PeerTimesThree(Device buffers) : buffers_(buffers) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string backend() const override { return "test"; }
  void allreduce_sum(float* data, int64_t n) override { times_four(data, n); }
  void allreduce_sum(double* data, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) data[i] *= 4;
  }
  void broadcast(double*, int64_t, int) override {}
  Device buffer_device() const override { return buffers_; }
  // cuda-emu memory is host memory: the stand-in reads it as NCCL would read a GPU's.
  void start_allreduce_sum(float* data, int64_t n) override {
    times_four(data, n);
    ++started;
    if (in_group) ++started_in_group;
  }
  void group_start() override { in_group = true; }
  void group_end() override { in_group = false; }
  void wait_all() override { ++waits; }

  int started = 0, started_in_group = 0, waits = 0;
  bool in_group = false;

 private:
  static void times_four(float* data, int64_t n) {
    for (int64_t i = 0; i < n; ++i) data[i] *= 4;
  }
  Device buffers_;
};

// Three parameters of 6, 4 and 10 floats with gradients 0.5 * (index + 1) + parameter number.
std::vector<Tensor> parameters(Device device) {
  std::vector<Tensor> params;
  const std::vector<Shape> shapes = {{2, 3}, {4}, {2, 5}};
  for (size_t p = 0; p < shapes.size(); ++p) {
    Tensor t = Tensor::zeros(shapes[p]).to(device);
    t.set_requires_grad(true);
    std::vector<double> g;
    for (int64_t i = 0; i < t.numel(); ++i) g.push_back(0.5 * static_cast<double>(i + 1) + static_cast<double>(p));
    t.set_grad(Tensor::from_vector(g, shapes[p]).to(device));
    params.push_back(t);
  }
  return params;
}

void expect_summed(const std::vector<Tensor>& params, Device device) {
  for (size_t p = 0; p < params.size(); ++p) {
    const Tensor g = params[p].grad();
    ASSERT_TRUE(g.defined());
    EXPECT_EQ(g.device(), device) << p;
    EXPECT_EQ(g.shape(), params[p].shape()) << p;
    const std::vector<double> v = g.to(Device::cpu()).to_vector();
    for (size_t i = 0; i < v.size(); ++i)
      EXPECT_EQ(v[i], 4 * (0.5 * static_cast<double>(i + 1) + static_cast<double>(p)))
          << "param " << p << " [" << i << "]";
  }
}

class GradientBucketsTest : public ::testing::Test {
 protected:
  void SetUp() override { cuda::init(); }
};

TEST_F(GradientBucketsTest, CpuGradientsOverHostBuffers) {
  const Device cpu = Device::cpu();
  PeerTimesThree comm(cpu);
  const auto params = parameters(cpu);
  GradientBuckets buckets(params, comm, 1 << 20);  // one bucket
  buckets.finish();
  EXPECT_EQ(comm.started, 1);
  EXPECT_EQ(comm.started_in_group, 1);  // started by finish(), as one group
  EXPECT_EQ(comm.waits, 1);
  expect_summed(params, cpu);
}

// As backward reports them (last parameters first), each bucket starts once it is complete.
TEST_F(GradientBucketsTest, BucketsStartAsTheirGradientsAreReady) {
  const Device cpu = Device::cpu();
  PeerTimesThree comm(cpu);
  const auto params = parameters(cpu);
  GradientBuckets buckets(params, comm, 40);  // 10 floats: {param 2}, {params 1, 0}
  buckets.ready(params[2]);
  EXPECT_EQ(comm.started, 1);
  buckets.ready(params[1]);
  EXPECT_EQ(comm.started, 1);
  buckets.ready(params[0]);
  EXPECT_EQ(comm.started, 2);
  buckets.finish();
  EXPECT_EQ(comm.started, 2);
  EXPECT_EQ(comm.started_in_group, 0);
  expect_summed(params, cpu);
}

TEST_F(GradientBucketsTest, DeviceGradientsOverHostBuffersAreCopiedBothWays) {
  const Device emu = parse_device("cuda-emu");
  PeerTimesThree comm(Device::cpu());
  const auto params = parameters(emu);
  cuda::reset_transfer_stats();
  GradientBuckets buckets(params, comm, 1 << 20);
  buckets.finish();
  const cuda::TransferStats moved = cuda::transfer_stats();
  EXPECT_EQ(moved.d2h_copies, 3u);  // each gradient to the host bucket
  EXPECT_EQ(moved.h2d_copies, 3u);  // each sum back
  expect_summed(params, emu);
}

TEST_F(GradientBucketsTest, DeviceGradientsOverDeviceBuffersStayOnTheDevice) {
  const Device emu = parse_device("cuda-emu");
  PeerTimesThree comm(emu);
  const auto params = parameters(emu);
  cuda::reset_transfer_stats();
  GradientBuckets buckets(params, comm, 1 << 20);
  buckets.finish();
  const cuda::TransferStats moved = cuda::transfer_stats();
  EXPECT_EQ(moved.d2h_copies, 0u);
  EXPECT_EQ(moved.h2d_copies, 0u);
  expect_summed(params, emu);
}

}  // namespace
}  // namespace scalpel::train
