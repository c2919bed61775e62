#pragma once
// Where a tensor's storage lives. CPU is always available; CUDA is a real GPU; CUDAEmu is the
// CUDA backend's own kernels run on the CPU through cuda/emu (host memory, counted copies).
#include <cstdint>
#include <string>
#include <string_view>

namespace scalpel {

enum class DeviceType : uint8_t { CPU, CUDA, CUDAEmu };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

// Parses "cpu", "cuda", "cuda:1", "cuda-emu"; throws Error naming the text otherwise.
Device parse_device(std::string_view text);

}  // namespace scalpel
