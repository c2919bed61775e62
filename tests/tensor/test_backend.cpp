// tensor/backend.h, the device dispatch table: a kernel registered for a device type is the one
// run for that device, and an op no backend registered is a loud error naming op and device.
// (test_tensor links no backend: the table starts empty here.)
#include <gtest/gtest.h>

#include "support/errors.h"
#include "tensor/backend.h"

namespace scalpel {
namespace {

using backend::Op;

Tensor fake_affine(const Tensor& x, double scale, double shift) {
  return Tensor::full(x.shape(), scale * 10 + shift, x.dtype());
}

TEST(DispatchTable, MissingKernelNamesTheOpAndTheDevice) {
  const Device gpu{DeviceType::CUDA, 1};
  test::expect_error([&] { backend::kernel<Op::softmax_last_backward>(gpu); },
                     {"softmax_last_backward", "cuda:1", "not implemented"});
  test::expect_error([&] { backend::run<Op::pad2d>(gpu, Tensor(), 1, 1, 1, 1, 0.0); }, {"pad2d", "cuda:1"});
}

TEST(DispatchTable, RunsTheKernelRegisteredForThatDeviceTypeOnly) {
  backend::register_kernel<Op::affine>(DeviceType::CUDAEmu, fake_affine);
  const Tensor y = backend::run<Op::affine>(Device{DeviceType::CUDAEmu, 0}, Tensor::zeros({2}), 3.0, 1.0);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{31, 31}));
  test::expect_error([] { backend::kernel<Op::affine>(Device{DeviceType::CUDA, 0}); }, {"affine", "cuda"});
}

}  // namespace
}  // namespace scalpel
