#pragma once
// Helpers for the CUDA backend tests: device arrays on cuda-emu (through the backend's own
// allocator and counted copies), deterministic inputs, and a fixture that runs each test
// under the three thread schedules of the emulation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/backend.h"
#include "cuda/device.h"
#include "cuda/emu/emu.h"

namespace scalpel::cuda::testing {

inline Stream emu_stream() { return Stream{Device{DeviceType::CUDAEmu, 0}, nullptr}; }

// An array in cuda-emu device memory. Created from host values, or filled with a sentinel
// (NaN by default) so that an element a kernel forgets to write fails the comparison.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& values) : n_(values.size()) {
    ptr_ = static_cast<T*>(emu_allocator()->allocate(bytes()));
    copy_host_to_device(emu_stream(), ptr_, values.data(), bytes());
  }
  explicit DeviceArray(size_t n, T sentinel = static_cast<T>(NAN))
      : DeviceArray(std::vector<T>(n, sentinel)) {}
  ~DeviceArray() { emu_allocator()->deallocate(ptr_, bytes()); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() { return ptr_; }
  const T* get() const { return ptr_; }
  std::vector<T> download() const {
    std::vector<T> out(n_);
    copy_device_to_host(emu_stream(), out.data(), ptr_, bytes());
    return out;
  }

 private:
  size_t bytes() const { return n_ * sizeof(T); }
  size_t n_;
  T* ptr_;
};

// Deterministic values in [lo, hi) (an LCG: tests must not depend on a platform's RNG).
inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  uint32_t x = seed * 2654435761u + 12345u;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;
    f = lo + (hi - lo) * static_cast<float>(x >> 8) / 16777216.0f;
  }
  return v;
}

// Asserts elementwise closeness with a relative tolerance and a floor; names the first bad index.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                         float tol = 1e-4f, const std::string& what = "") {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const float scale = std::max(1.0f, std::fabs(want[i]));
    ASSERT_TRUE(std::fabs(got[i] - want[i]) <= tol * scale)
        << what << " at index " << i << ": got " << got[i] << ", want " << want[i];
  }
}

// Runs each test under the forward, reverse and shuffled schedules.
class EmuScheduleTest : public ::testing::TestWithParam<emu::Schedule> {
 protected:
  void SetUp() override {
    register_allocators();
    emu::set_schedule(GetParam(), 7);
  }
  void TearDown() override { emu::set_schedule(emu::Schedule::Forward); }
  Stream s = emu_stream();
};

inline std::string schedule_param_name(const ::testing::TestParamInfo<emu::Schedule>& info) {
  return emu::schedule_name(info.param);
}

}  // namespace scalpel::cuda::testing

#define SCALPEL_ALL_SCHEDULES(Suite)                                                        \
  INSTANTIATE_TEST_SUITE_P(Schedules, Suite,                                                \
                           ::testing::Values(::scalpel::cuda::emu::Schedule::Forward,       \
                                             ::scalpel::cuda::emu::Schedule::Reverse,       \
                                             ::scalpel::cuda::emu::Schedule::Shuffled),     \
                           ::scalpel::cuda::testing::schedule_param_name)
