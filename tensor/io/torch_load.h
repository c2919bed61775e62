#pragma once
// Native reader for PyTorch torch.save files; no Python involved and no code executed.
//
// Formats: the zip format (PyTorch >= 1.6: "<any prefix>/data.pkl" plus one stored entry
// "<prefix>/data/<key>" per storage) and the legacy format (pickled magic number, protocol
// version 1001, sys info, the object, the list of storage keys, then each storage as an int64
// element count followed by its raw little-endian bytes).
//
// Contents: a state dict (name -> tensor), bare or held by a dict under "state_dict", "model"
// or "net" (that dict's other entries, such as "optimizer" or "epoch", are ignored; they must
// still use only the globals the restricted unpickler accepts, see tensor/io/pickle.h).
// A "module." prefix (nn.DataParallel) is stripped from every name.
//
// Tensors are views into shared storages, as in PyTorch: two entries that share a storage
// share it here too, with the file's storage offset, size and stride. Storages are converted
// on load: float16/bfloat16/float64 -> float32, int64/int32/int16/int8 -> int64,
// uint8/bool -> uint8. Every malformed, truncated or corrupt file throws Error naming the file.
#include <string>
#include <string_view>

#include "tensor/io/weights.h"

namespace scalpel {

NamedTensors load_torch(const std::string& path);
// The same from the file's bytes; `source` names it in messages.
NamedTensors parse_torch(std::string_view bytes, const std::string& source);

}  // namespace scalpel
