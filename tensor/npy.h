#pragma once
// NumPy .npy files: versions 1.0, 2.0 and 3.0 read, 1.0 written (2.0 when the header needs it).
// dtypes float32, float64, int64, uint8; little-endian; C order (Fortran order is rejected).
// Malformed or truncated files throw Error naming the file and what is wrong.
#include <map>
#include <string>

#include "tensor/tensor.h"

namespace scalpel {

Tensor load_npy(const std::string& path);
// Writes through a temporary file and a rename, so a failed write leaves no partial file.
void save_npy(const std::string& path, const Tensor& tensor);
// In-memory variants (used by the readers and the fuzz harnesses).
Tensor parse_npy(const std::string& bytes, const std::string& name = "<memory>");
std::string serialize_npy(const Tensor& tensor);

// NumPy .npz archives (np.savez, stored, or np.savez_compressed, deflated): every "<key>.npy"
// entry as key -> array. Entries that are not .npy files are ignored. Error naming the file and
// entry for a corrupt archive or array.
std::map<std::string, Tensor> load_npz(const std::string& path);
std::map<std::string, Tensor> parse_npz(const std::string& bytes, const std::string& name = "<memory>");

}  // namespace scalpel
