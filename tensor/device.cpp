#include "tensor/device.h"

#include "tensor/error.h"

namespace scalpel {

std::string Device::str() const {
  switch (type) {
    case DeviceType::CPU: return "cpu";
    case DeviceType::CUDA: return index == 0 ? "cuda" : fmt::format("cuda:{}", index);
    case DeviceType::CUDAEmu: return "cuda-emu";
  }
  return "?";
}

Device parse_device(std::string_view text) {
  if (text == "cpu") return {DeviceType::CPU, 0};
  if (text == "cuda-emu") return {DeviceType::CUDAEmu, 0};
  if (text == "cuda") return {DeviceType::CUDA, 0};
  if (text.starts_with("cuda:")) {
    std::string index(text.substr(5));
    SCALPEL_CHECK(!index.empty() && index.find_first_not_of("0123456789") == std::string::npos,
                  "bad device '{}' (expected cpu, cuda, cuda:N or cuda-emu)", text);
    return {DeviceType::CUDA, std::stoi(index)};
  }
  fail("unknown device '{}' (expected cpu, cuda, cuda:N or cuda-emu)", text);
}

}  // namespace scalpel
