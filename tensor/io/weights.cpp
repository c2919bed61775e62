#include "tensor/io/weights.h"

#include <cmath>

#include "tensor/error.h"
#include "tensor/io/mapped_file.h"
#include "tensor/io/safetensors.h"
#include "tensor/io/torch_load.h"

namespace scalpel {

WeightsFormat sniff_weights_format(std::string_view head, const std::string& source) {
  if (head.starts_with("PK\x03\x04")) return WeightsFormat::TorchZip;
  // Legacy torch.save files start with a pickle (PROTO opcode, protocol >= 2).
  if (head.size() >= 2 && head[0] == '\x80' && head[1] >= 2 && head[1] <= 5) {
    return WeightsFormat::TorchLegacy;
  }
  // safetensors: an 8-byte header length, then the JSON header.
  if (head.size() >= 9 && head[8] == '{') return WeightsFormat::Safetensors;
  fail("{}: unknown weights format (expected a PyTorch .pt/.pth file, zip or legacy, or a "
       ".safetensors file)",
       source);
}

NamedTensors load_weights_file(const std::string& path) {
  const MappedFile file(path);
  const WeightsFormat format = sniff_weights_format(file.bytes().substr(0, 16), path);
  NamedTensors tensors = format == WeightsFormat::Safetensors
                             ? parse_safetensors(file.bytes(), path).tensors
                             : parse_torch(file.bytes(), path);
  for (auto& [name, tensor] : tensors) {
    if (tensor.dtype() == DType::F64) tensor = tensor.to(DType::F32);
    if (tensor.dtype() != DType::F32) continue;
    const std::vector<float> values = tensor.values<float>();
    for (size_t i = 0; i < values.size(); ++i) {
      SCALPEL_CHECK(std::isfinite(values[i]), "{}: tensor '{}' holds {} at element {}", path,
                    name, values[i], i);
    }
  }
  return tensors;
}

}  // namespace scalpel
