// tensor/io/hdf5.h: HDF5 files written here through libhdf5's C API, laid out as h5py and Keras
// write them.
#include "tensor/io/hdf5.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "io/io_test_util.h"
#include "support/hdf5_writer.h"

namespace scalpel {
namespace {

using io_test::error_of;
namespace fs = std::filesystem;

#if SCALPEL_HAVE_HDF5

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / fmt::format("scalpel-hdf5-{}-{}", getpid(), name);
}

// A file with every kind of string attribute Keras and h5py write, groups and float datasets.
std::string write_sample(const std::string& name) {
  const std::string path = temp_path(name).string();
  test::Hdf5Writer h5(path);
  h5.fixed_strings("/", "keras_version", {"2.0.8"}, /*scalar=*/true);
  h5.variable_strings("/", "model_config", {R"({"class_name": "Sequential"})"}, /*scalar=*/true);
  h5.group("/model_weights/conv2d_1/conv2d_1_1");
  h5.group("/model_weights/flatten_1");
  h5.fixed_strings("/model_weights", "layer_names", {"conv2d_1", "flatten_1", "dense_1"});
  h5.fixed_strings("/model_weights/conv2d_1", "weight_names", {"conv2d_1_1/kernel:0", "conv2d_1_1/bias:0"});
  h5.empty_float_array("/model_weights/flatten_1", "weight_names");
  h5.int_attribute("/", "epochs", 102);
  h5.variable_strings("/model_weights", "tags", {"a", "", "ccc"});
  h5.dataset("/model_weights/conv2d_1/conv2d_1_1/kernel:0",
             Tensor::from_vector({0.5, -1.25, 3, 1e-3, 65504, -2}, {1, 2, 3}));
  h5.dataset("/model_weights/conv2d_1/conv2d_1_1/bias:0", Tensor::from_vector({0.1, 1e-30}, {2}),
             H5T_IEEE_F64LE);
  h5.dataset("/half", Tensor::from_vector({0.5, -1.25, 3, 1e-3, 65504, -2}, {6}), test::Hdf5Writer::half_type());
  h5.dataset("/scalar", Tensor::scalar(7));
  return path;
}

TEST(Hdf5, ReadsStringAttributesOfEveryKind) {
  const std::string path = write_sample("strings.h5");
  const Hdf5File file(path);
  EXPECT_EQ(file.string_attribute("/", "keras_version"), "2.0.8");               // fixed, scalar
  EXPECT_EQ(file.string_attribute("/", "model_config"), R"({"class_name": "Sequential"})");  // variable
  EXPECT_EQ(file.string_list_attribute("/model_weights", "layer_names"),
            (std::vector<std::string>{"conv2d_1", "flatten_1", "dense_1"}));     // fixed, array
  EXPECT_EQ(file.string_list_attribute("/model_weights/conv2d_1", "weight_names"),
            (std::vector<std::string>{"conv2d_1_1/kernel:0", "conv2d_1_1/bias:0"}));
  EXPECT_TRUE(file.string_list_attribute("/model_weights/flatten_1", "weight_names").empty());
  EXPECT_EQ(file.string_list_attribute("/model_weights", "tags"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(file.string_list_attribute("/", "keras_version"), std::vector<std::string>{"2.0.8"});
  EXPECT_TRUE(file.has_attribute("/model_weights", "layer_names"));
  EXPECT_FALSE(file.has_attribute("/model_weights", "absent"));
  EXPECT_FALSE(file.has_attribute("/no/such/group", "layer_names"));
  EXPECT_EQ(error_of([&] { file.string_attribute("/model_weights", "layer_names"); }),
            path + ": /model_weights: attribute 'layer_names' holds 3 strings, expected one");
  EXPECT_EQ(error_of([&] { file.string_attribute("/", "epochs"); }), path + ": /: attribute 'epochs': not a string");
  EXPECT_EQ(error_of([&] { file.string_attribute("/model_weights", "absent"); }),
            path + ": /model_weights has no attribute 'absent'");
  fs::remove(path);
}

TEST(Hdf5, ListsGroupsAndDatasets) {
  const std::string path = write_sample("groups.h5");
  const Hdf5File file(path);
  EXPECT_EQ(file.members("/"), (std::vector<std::string>{"half", "model_weights", "scalar"}));
  EXPECT_EQ(file.members("/model_weights"), (std::vector<std::string>{"conv2d_1", "flatten_1"}));
  EXPECT_TRUE(file.members("/model_weights/flatten_1").empty());
  EXPECT_TRUE(file.is_group("/model_weights/conv2d_1"));
  EXPECT_FALSE(file.is_group("/half"));
  EXPECT_TRUE(file.is_dataset("/model_weights/conv2d_1/conv2d_1_1/kernel:0"));
  EXPECT_FALSE(file.is_dataset("/model_weights/conv2d_1/absent/kernel:0"));
  EXPECT_FALSE(file.is_group("/absent"));
  EXPECT_EQ(error_of([&] { file.members("/half"); }), path + ": no group /half");
  EXPECT_EQ(error_of([&] { file.read_tensor("/absent"); }), path + ": no dataset /absent");
  fs::remove(path);
}

TEST(Hdf5, ReadsFloatDatasetsConvertingHalfAndDouble) {
  const std::string path = write_sample("floats.h5");
  const Hdf5File file(path);
  const Tensor kernel = file.read_tensor("/model_weights/conv2d_1/conv2d_1_1/kernel:0");
  EXPECT_EQ(kernel.shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(kernel.values<float>(), (std::vector<float>{0.5f, -1.25f, 3, 1e-3f, 65504, -2}));
  const Tensor bias = file.read_tensor("/model_weights/conv2d_1/conv2d_1_1/bias:0");  // float64
  EXPECT_EQ(bias.values<float>(), (std::vector<float>{0.1f, 1e-30f}));
  const Tensor half = file.read_tensor("/half");
  // 1e-3 is not a half: its nearest binary16 is 0.0010004043579101562.
  EXPECT_EQ(half.values<float>(), (std::vector<float>{0.5f, -1.25f, 3, 0.0010004043579101562f, 65504, -2}));
  EXPECT_EQ(file.dataset_shape("/scalar"), std::vector<int64_t>{});
  EXPECT_EQ(file.read_tensor("/scalar").values<float>(), std::vector<float>{7});
  fs::remove(path);
}

TEST(Hdf5, RefusesNonFloatDatasetsAndAbsurdSizes) {
  const std::string path = temp_path("absurd.h5").string();
  {
    test::Hdf5Writer h5(path);
    h5.unwritten_dataset("/ints", {4}, H5T_STD_I32LE);
    // Declared, never written: no storage, so the file stays small.
    h5.unwritten_dataset("/huge", {1 << 16, 1 << 16}, H5T_IEEE_F32LE);
    h5.unwritten_dataset("/big", {1 << 12, 1 << 12}, H5T_IEEE_F32LE);
  }
  const Hdf5File file(path);
  EXPECT_EQ(error_of([&] { file.read_tensor("/ints"); }), path + ": /ints: not a floating-point dataset");
  EXPECT_EQ(error_of([&] { file.read_tensor("/huge"); }), path + ": /huge: absurd dataset size 65536x65536");
  EXPECT_NE(error_of([&] { file.read_tensor("/big"); })
                .find(": /big: dataset of 4096x4096 (67108864 bytes) is larger than the file ("),
            std::string::npos);
  fs::remove(path);
}

TEST(Hdf5, RefusesFilesThatAreNotHdf5) {
  const std::string path = temp_path("not.h5").string();
  write_file_atomic(path, "{\"this is\": \"json\"}");
  EXPECT_EQ(error_of([&] { Hdf5File{path}; }), path + ": not an HDF5 file (no HDF5 signature)");
  EXPECT_EQ(error_of([&] { Hdf5File::from_bytes("PK\x03\x04", "m.keras:model.weights.h5"); }),
            "m.keras:model.weights.h5: not an HDF5 file (no HDF5 signature)");
  fs::remove(path);
  EXPECT_EQ(error_of([&] { Hdf5File{path}; }).rfind("cannot read " + path + ": ", 0), 0u);
}

// Opens the bytes and reads every attribute and dataset of the sample.
void read_sample(const std::string& bytes) {
  const Hdf5File file = Hdf5File::from_bytes(bytes, "sample.h5");
  file.string_attribute("/", "model_config");
  file.string_list_attribute("/model_weights", "layer_names");
  file.read_tensor("/model_weights/conv2d_1/conv2d_1_1/kernel:0");
  file.read_tensor("/half");
}

TEST(Hdf5, TruncatedFilesAreRefused) {
  const std::string path = write_sample("truncated.h5");
  const std::string bytes = read_file(path);
  ASSERT_NO_THROW(read_sample(bytes));
  io_test::expect_truncations_fail(bytes, read_sample, 7);
  // On disk, as a user meets it: one message naming the file.
  write_file_atomic(path, bytes.substr(0, bytes.size() - 100));
  const std::string message = error_of([&] { Hdf5File{path}; });
  EXPECT_EQ(message.rfind(path + ": unreadable HDF5 file (truncated file: eof = ", 0), 0u) << message;
  fs::remove(path);
}

#else

TEST(Hdf5, BuiltWithoutHdf5SaysSo) {
  EXPECT_FALSE(hdf5_supported());
  EXPECT_NE(error_of([] { Hdf5File("model.h5"); }).find("model.h5: this scalpel was built without HDF5"),
            std::string::npos);
}

#endif

}  // namespace
}  // namespace scalpel
