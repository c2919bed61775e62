#pragma once
// Writing small HDF5 files in tests through libhdf5's C API, laid out as h5py writes them
// (fixed-length NUL-padded byte strings for numpy "S" arrays, variable-length UTF-8 for str),
// so the readers are tested without h5py. Only built with HDF5 (SCALPEL_HAVE_HDF5).
//
//   test::Hdf5Writer h5(path);
//   h5.group("/model_weights");
//   h5.fixed_strings("/model_weights", "layer_names", {"conv2d_1", "dense_1"});
//   h5.dataset("/model_weights/conv2d_1/conv2d_1/kernel:0", kernel);
//   h5.close();
#if SCALPEL_HAVE_HDF5
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace scalpel::test {

class Hdf5Writer {
 public:
  explicit Hdf5Writer(const std::string& path) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    // Intermediate groups are created as needed, like h5py's f["a/b/c"] = ...
    links_ = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(links_, 1);
    file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(file_, 0) << "cannot create " << path;
  }
  Hdf5Writer(const Hdf5Writer&) = delete;
  Hdf5Writer& operator=(const Hdf5Writer&) = delete;
  ~Hdf5Writer() { close(); }

  void close() {
    if (file_ >= 0) H5Fclose(file_);
    if (links_ >= 0) H5Pclose(links_);
    file_ = links_ = -1;
  }

  void group(const std::string& path) {
    const hid_t g = H5Gcreate2(file_, path.c_str(), links_, H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(g, 0) << "cannot create group " << path;
    H5Gclose(g);
  }

  // numpy's np.array([b"a", b"bcd"]): fixed length (the longest), NUL padded. scalar: a single
  // numpy bytes object instead of an array.
  void fixed_strings(const std::string& object, const std::string& name,
                     const std::vector<std::string>& values, bool scalar = false) {
    size_t size = 1;
    for (const std::string& v : values) size = std::max(size, v.size());
    std::string buffer(values.size() * size, '\0');
    for (size_t i = 0; i < values.size(); ++i) buffer.replace(i * size, values[i].size(), values[i]);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, size);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    write_attribute(object, name, type, space_of(values.size(), scalar), buffer.data());
    H5Tclose(type);
  }

  // h5py's attrs[name] = "text" (scalar) or a list of str (array): variable-length UTF-8.
  void variable_strings(const std::string& object, const std::string& name,
                        const std::vector<std::string>& values, bool scalar = false) {
    std::vector<const char*> pointers;
    for (const std::string& v : values) pointers.push_back(v.c_str());
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    write_attribute(object, name, type, space_of(values.size(), scalar), pointers.data());
    H5Tclose(type);
  }

  void int_attribute(const std::string& object, const std::string& name, int value) {
    write_attribute(object, name, H5T_STD_I32LE, H5Screate(H5S_SCALAR), &value, H5T_NATIVE_INT);
  }

  // numpy's np.asarray([]) as an attribute: float64, zero elements (Keras' empty weight_names).
  void empty_float_array(const std::string& object, const std::string& name) {
    const double unused = 0;  // libhdf5 wants a buffer even for no elements
    write_attribute(object, name, H5T_IEEE_F64LE, space_of(0, false), &unused, H5T_NATIVE_DOUBLE);
  }

  // A float32 tensor stored as `file_type` (H5T_IEEE_F32LE, H5T_IEEE_F64LE or half_type()).
  void dataset(const std::string& path, const Tensor& values, hid_t file_type = H5T_IEEE_F32LE) {
    const Tensor c = values.contiguous();
    std::vector<hsize_t> dims(c.shape().begin(), c.shape().end());
    const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR)
                                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t d = H5Dcreate2(file_, path.c_str(), file_type, space, links_, H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(d, 0) << "cannot create dataset " << path;
    EXPECT_GE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.data<float>()), 0) << path;
    H5Dclose(d);
    H5Sclose(space);
  }

  // A dataset of `dims` that is declared but never written (no storage allocated), as a
  // corrupt or hostile header would declare one.
  void unwritten_dataset(const std::string& path, const std::vector<hsize_t>& dims, hid_t file_type) {
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t d = H5Dcreate2(file_, path.c_str(), file_type, space, links_, H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(d, 0) << "cannot create dataset " << path;
    H5Dclose(d);
    H5Sclose(space);
  }

  // IEEE binary16, as h5py stores numpy float16 (HDF5 1.10 has no predefined half type).
  static hid_t half_type() {
    static const hid_t type = [] {
      const hid_t t = H5Tcopy(H5T_IEEE_F32LE);
      H5Tset_fields(t, 15, 10, 5, 0, 10);
      H5Tset_size(t, 2);
      H5Tset_ebias(t, 15);
      return t;
    }();
    return type;
  }

 private:
  static hid_t space_of(size_t n, bool scalar) {
    const hsize_t dims[1] = {n};
    return scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, nullptr);
  }
  void write_attribute(const std::string& object, const std::string& name, hid_t type, hid_t space,
                       const void* data, hid_t memory_type = -1) {
    // The object's group is created when absent, as h5py's f.require_group(object).attrs[...]
    const hid_t object_id = H5Oopen(file_, object.c_str(), H5P_DEFAULT);
    if (object_id >= 0) {
      H5Oclose(object_id);
    } else {
      H5Eclear2(H5E_DEFAULT);
      group(object);
    }
    const hid_t a = H5Acreate_by_name(file_, object.c_str(), name.c_str(), type, space, H5P_DEFAULT,
                                      H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(a, 0) << "cannot create attribute " << object << " " << name;
    EXPECT_GE(H5Awrite(a, memory_type >= 0 ? memory_type : type, data), 0) << name;
    H5Aclose(a);
    H5Sclose(space);
  }

  hid_t file_ = -1;
  hid_t links_ = -1;
};

}  // namespace scalpel::test
#endif
