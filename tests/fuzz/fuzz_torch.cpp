// libFuzzer harness for the whole torch.save reader (tensor/io/torch_load.h): format sniffing,
// zip or legacy container, unpickling and tensor building. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tensor/error.h"
#include "tensor/io/torch_load.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const scalpel::NamedTensors tensors =
        scalpel::parse_torch(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    // Reading every element through the file's offsets and strides must stay in bounds.
    for (const auto& [name, tensor] : tensors) {
      if (tensor.numel() <= (1 << 20)) tensor.clone();
    }
  } catch (const scalpel::Error&) {
  }
  return 0;
}
