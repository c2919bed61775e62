#pragma once
// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header, then the raw little-endian tensor data.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data), plus an optional "__metadata__" map of strings to strings.
//
// Reading accepts dtypes F64, F32, F16, BF16, I64, I32, I16, I8, U8 and BOOL: F32, F64, I64
// and U8 load as they are; F16/BF16 become float32, I32/I16/I8 int64, BOOL uint8. As in the
// reference implementation, the data regions must tile the data exactly: a header length or an
// offset beyond the file, overlapping or out-of-order regions, a hole, a size that disagrees
// with dtype x shape, or an unknown dtype throws Error naming the file and the tensor.
//
// Writing stores tensors in the given order (CPU copies, C order) with a header padded to a
// multiple of 8 bytes, through a temporary file, fsync and rename, so a crash never leaves a
// partial file and an existing file is replaced whole or not at all. The output loads with
// `safetensors.torch.load_file`.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/io/weights.h"

namespace scalpel {

using StringMap = std::vector<std::pair<std::string, std::string>>;  // insertion order

struct SafetensorsContents {
  NamedTensors tensors;  // in header order
  StringMap metadata;    // "__metadata__", empty when absent
};

SafetensorsContents read_safetensors(const std::string& path);
SafetensorsContents parse_safetensors(std::string_view bytes, const std::string& source);

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const StringMap& metadata = {});
std::string serialize_safetensors(const NamedTensors& tensors, const StringMap& metadata = {});

}  // namespace scalpel
