#pragma once
// A read-only HDF5 reader (Keras .h5 files and a .keras archive's model.weights.h5) over
// Debian's libhdf5 C API, which does the format's real work (B-trees, heaps, type conversion).
//
//   Hdf5File file("model.h5");
//   std::string config = file.string_attribute("/", "model_config");
//   for (const std::string& layer : file.string_list_attribute("/model_weights", "layer_names"))
//     ...file.members("/model_weights/" + layer)...
//   Tensor kernel = file.read_tensor("/model_weights/conv2d_1/conv2d_1/kernel:0");
//
// Objects are named by absolute HDF5 paths ("/" is the root group). Every failure (not an
// HDF5 file, a truncated one, an absent object or attribute, a wrong type, an absurd size)
// throws one Error naming the file and the object; libhdf5's own error-stack printing is
// switched off, its innermost message becomes part of ours. libhdf5 (serial build) is not
// thread-safe: use a file from one thread at a time, one file at a time.
//
// Built without libhdf5 (CMake did not find libhdf5-dev), hdf5_supported() is false and
// opening any file throws an Error saying so.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace scalpel {

bool hdf5_supported();

class Hdf5File {
 public:
  // Opens `path` read-only.
  explicit Hdf5File(const std::string& path);
  // An HDF5 file held in memory (copied); `source` names it in errors, e.g.
  // "model.keras:model.weights.h5".
  static Hdf5File from_bytes(std::string_view bytes, const std::string& source);

  Hdf5File(Hdf5File&&) noexcept;
  Hdf5File& operator=(Hdf5File&&) noexcept;
  ~Hdf5File();

  const std::string& source() const { return source_; }

  bool is_group(const std::string& path) const;
  bool is_dataset(const std::string& path) const;
  // The names of group `path`'s members, sorted by name (h5py's order).
  std::vector<std::string> members(const std::string& path) const;

  bool has_attribute(const std::string& path, const std::string& name) const;
  // A string attribute, fixed or variable length, scalar or a one-element array; fixed-length
  // strings lose their NUL padding.
  std::string string_attribute(const std::string& path, const std::string& name) const;
  // A string attribute as a list: an array's elements in order, a scalar as one element (Keras
  // stores layer_names and weight_names as fixed-length byte-string arrays). An empty array of
  // any type is an empty list (Keras writes a layer without weights' [] as float64).
  std::vector<std::string> string_list_attribute(const std::string& path, const std::string& name) const;

  // The dimensions of dataset `path` ([] for a scalar).
  std::vector<int64_t> dataset_shape(const std::string& path) const;
  // A floating-point dataset (float16, float32, float64 or any other HDF5 float) as a float32
  // tensor of its shape. Refused: other types, more than 2^31 elements, and an unfiltered
  // dataset larger than the file itself (a corrupt header, before anything is allocated).
  Tensor read_tensor(const std::string& path) const;

 private:
  Hdf5File(int64_t id, std::string source);
  int64_t id_ = -1;  // the HDF5 file id (hid_t)
  std::string source_;
};

}  // namespace scalpel
