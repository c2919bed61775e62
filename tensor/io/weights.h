#pragma once
// Weight files: one entry point for every format scalpel reads.
//
// load_weights_file(path) sniffs the format from the first bytes, not the extension:
//   - PyTorch zip checkpoint (torch.save since 1.6): "PK\x03\x04"      -> load_torch
//   - PyTorch legacy checkpoint (pickle protocol >= 2): "\x80"         -> load_torch
//   - safetensors (also scalpel's own checkpoints): u64 length, '{'   -> read_safetensors
// and returns the tensors in file order, every floating tensor as float32 (float16, bfloat16
// and float64 are converted), integers as int64, uint8/bool as uint8. A tensor holding NaN or
// an infinity is refused (Error naming the file and the tensor): such weights are unusable.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace scalpel {

// (name, tensor) pairs in file order; names are unique.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

enum class WeightsFormat { TorchZip, TorchLegacy, Safetensors };

// The format of a file starting with `head` (at least its first 9 bytes when the file is that
// long); Error naming `source` when no format matches.
WeightsFormat sniff_weights_format(std::string_view head, const std::string& source);

NamedTensors load_weights_file(const std::string& path);

}  // namespace scalpel
