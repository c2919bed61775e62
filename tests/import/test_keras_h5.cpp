// Keras HDF5 containers (models/import/keras_h5.h):
//  - the real fer2013 mini-Xception .h5 (Keras 2.0.5, shared samples) against @tensorflow/tfjs
//    4.22 on the same float input: the h5's config and weights handed to tfjs as a layers
//    model (weights matched by name there, by position here), logits within 1e-4 relative
//  - full-model .h5 and Keras 3 .keras files written here through libhdf5 (and a stored zip):
//    weights by position within a layer, kernels transposed, one Error naming the layer for
//    every bad input, nothing returned half-built
//  - weights-only .h5 onto a model by layer order, round trip from a zoo model's own weights
#include <gtest/gtest.h>

#include <filesystem>

#include "import/tfjs_reference.h"
#include "layers/blocks.h"
#include "models/import/import.h"
#include "models/import/keras_h5.h"
#include "models/registry.h"
#include "models/weights.h"
#include "support/cli_runner.h"
#include "support/errors.h"
#include "support/hdf5_writer.h"
#include "support/zip_writer.h"
#include "tensor/atomic_file.h"
#include "tensor/io/hdf5.h"
#include "tensor/npy.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;
using namespace reference;
using test::error_of;
using test::expect_error;

const fs::path kFer = kSamples / "weights/keras/fer2013_mini_XCEPTION.102-0.66.hdf5";

#define SKIP_WITHOUT_HDF5() \
  if (!hdf5_supported()) GTEST_SKIP() << "scalpel built without HDF5 (libhdf5-dev)"

// Uniform in [lo, hi).
Tensor uniform(const Shape& shape, double lo, double hi, uint64_t seed) {
  Generator gen(seed);
  Tensor t = Tensor::empty(shape);
  uniform_(t, lo, hi, gen);
  return t;
}

#if SCALPEL_HAVE_HDF5

// The .h5 file's model as a TF.js layers model (model.json + one shard), weights named
// "<layer>/<param>" as tfjs matches them: an independent path from the file to tfjs.
void write_tfjs_copy(const std::string& h5_path, const std::string& dir) {
  const Hdf5File file(h5_path);
  Json manifest_weights = Json::array();
  std::string shard;
  for (const std::string& layer : file.string_list_attribute("/model_weights", "layer_names")) {
    const std::string group = "/model_weights/" + layer;
    for (const std::string& name : file.string_list_attribute(group, "weight_names")) {
      const Tensor t = file.read_tensor(group + "/" + name);
      std::string param = name.substr(name.rfind('/') + 1);
      param = param.substr(0, param.find(':'));
      Json shape = Json::array();
      for (int64_t d : t.shape()) shape.push_back(Json(static_cast<long long>(d)));
      Json w = Json::object();
      w["name"] = layer + "/" + param;
      w["shape"] = shape;
      w["dtype"] = "float32";
      manifest_weights.push_back(w);
      shard.append(static_cast<const char*>(t.raw_data()), t.nbytes());
    }
  }
  Json group = Json::object();
  group["paths"] = Json::array({"weights.bin"});
  group["weights"] = manifest_weights;
  Json model = Json::object();
  model["format"] = "layers-model";
  model["modelTopology"] = Json::parse(file.string_attribute("/", "model_config"));
  model["weightsManifest"] = Json::array({group});
  write_file_atomic(dir + "/model.json", model.dump());
  write_file_atomic(dir + "/weights.bin", shard);
}

TEST(TfjsReference, KerasH5Fer2013MiniXceptionMatchesTfjs) {
  SKIP_WITHOUT_HDF5();
  SKIP_WITHOUT_REFERENCE();
  if (!fs::exists(kFer)) GTEST_SKIP() << "shared samples absent: " << kFer;
  TempDir dir;
  write_tfjs_copy(kFer.string(), dir / "");
  // The model's input range: (gray / 255 - 0.5) * 2.
  const Tensor x = uniform({2, 64, 64, 1}, -1, 1, 29);
  save_npy(dir / "x.npy", x);
  ASSERT_TRUE(run_node("tfjs_predict.js", {"--model", dir / "model.json", "--input", dir / "x.npy", "--output",
                                           dir / "logits.npy", "--logits"}));
  const ImportedGraph g = import_graph_file(kFer.string());
  EXPECT_EQ(g.spec.source, "keras");
  EXPECT_EQ(g.spec.input_shape, (std::vector<int64_t>{1, 64, 64}));
  auto model = build_imported_model(g);
  EXPECT_TRUE(model->ends_in_softmax());
  const Tensor logits = model->forward(x.permute({0, 3, 1, 2}).contiguous());
  const Tensor tfjs = load_npy(dir / "logits.npy");
  expect_close(logits, tfjs, 1e-4, "fer2013 mini-Xception logits");
  const std::vector<double> ours = logits.to_vector(), theirs = tfjs.to_vector();
  double worst = 0, scale = 1;
  for (size_t i = 0; i < theirs.size() && i < ours.size(); ++i) {
    worst = std::max(worst, std::abs(ours[i] - theirs[i]));
    scale = std::max(scale, std::abs(theirs[i]));
  }
  RecordProperty("relative_difference", fmt::format("{:.3g}", worst / scale));
}

// ---- small files written here ----

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / fmt::format("scalpel-kerash5-{}-{}", getpid(), name);
}

// Conv2D 3x3 (2 -> 3, bias) -> BatchNormalization -> GlobalAveragePooling2D -> Dense 4
// softmax, on 5x5x2 images: a Keras 2 Sequential config.
std::string sequential_config(const std::string& conv_class = "Conv2D") {
  return R"({"class_name": "Sequential", "config": {"name": "tiny", "layers": [
    {"class_name": ")" + conv_class + R"(", "config": {"name": "conv2d_1", "batch_input_shape": [null, 5, 5, 2],
      "filters": 3, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
      "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": true}},
    {"class_name": "BatchNormalization", "config": {"name": "bn_1", "axis": -1, "epsilon": 0.001,
      "momentum": 0.99, "center": true, "scale": true}},
    {"class_name": "GlobalAveragePooling2D", "config": {"name": "gap_1", "data_format": "channels_last"}},
    {"class_name": "Dense", "config": {"name": "dense_1", "units": 4, "activation": "softmax", "use_bias": true}}
  ]}})";
}

struct TinyWeights {
  Tensor kernel = uniform({3, 3, 2, 3}, -1, 1, 1), bias = uniform({3}, -1, 1, 2);
  Tensor gamma = uniform({3}, 0.5, 1.5, 3), beta = uniform({3}, -1, 1, 4);
  Tensor mean = uniform({3}, -1, 1, 5), var = uniform({3}, 0.5, 2, 6);
  Tensor dense = uniform({3, 4}, -1, 1, 7), dense_bias = uniform({4}, -1, 1, 8);
};

// A Keras 2.0.x full-model file: the weights of layer L are stored as "L_1/<param>:0".
void write_full_h5(const std::string& path, const TinyWeights& w, const std::string& config = sequential_config(),
                   bool drop_bn_variance = false) {
  test::Hdf5Writer h5(path);
  h5.fixed_strings("/", "model_config", {config}, /*scalar=*/true);
  h5.fixed_strings("/", "keras_version", {"2.0.5"}, true);
  h5.group("/model_weights");
  h5.fixed_strings("/model_weights", "layer_names", {"conv2d_1", "bn_1", "gap_1", "dense_1"});
  h5.fixed_strings("/model_weights/conv2d_1", "weight_names", {"conv2d_1_1/kernel:0", "conv2d_1_1/bias:0"}, false);
  h5.dataset("/model_weights/conv2d_1/conv2d_1_1/kernel:0", w.kernel);
  h5.dataset("/model_weights/conv2d_1/conv2d_1_1/bias:0", w.bias);
  std::vector<std::string> bn = {"bn_1_1/gamma:0", "bn_1_1/beta:0", "bn_1_1/moving_mean:0", "bn_1_1/moving_variance:0"};
  if (drop_bn_variance) bn.pop_back();
  h5.fixed_strings("/model_weights/bn_1", "weight_names", bn);
  h5.dataset("/model_weights/bn_1/bn_1_1/gamma:0", w.gamma);
  h5.dataset("/model_weights/bn_1/bn_1_1/beta:0", w.beta);
  h5.dataset("/model_weights/bn_1/bn_1_1/moving_mean:0", w.mean, H5T_IEEE_F64LE);
  h5.dataset("/model_weights/bn_1/bn_1_1/moving_variance:0", w.var);
  h5.group("/model_weights/gap_1");
  h5.empty_float_array("/model_weights/gap_1", "weight_names");
  h5.fixed_strings("/model_weights/dense_1", "weight_names", {"dense_1_1/kernel:0", "dense_1_1/bias:0"});
  h5.dataset("/model_weights/dense_1/dense_1_1/kernel:0", w.dense);
  h5.dataset("/model_weights/dense_1/dense_1_1/bias:0", w.dense_bias);
}

const Tensor& weight(const ImportedGraph& g, const std::string& name) {
  for (const auto& [n, t] : g.weights)
    if (n == name) return t;
  throw Error("no weight " + name);
}

void expect_equal(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(a.to_vector(), b.to_vector()) << what;
}

// The tiny model's logits computed here from the Keras-layout weights (NHWC loops).
Tensor tiny_reference_logits(const Tensor& nhwc, const TinyWeights& w) {
  const int64_t n = nhwc.size(0);
  Tensor out = Tensor::zeros({n, 4});
  for (int64_t b = 0; b < n; ++b) {
    std::vector<double> pooled(3, 0);
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 3; ++x)
        for (int64_t o = 0; o < 3; ++o) {
          double s = w.bias.at({o});
          for (int64_t i = 0; i < 3; ++i)
            for (int64_t j = 0; j < 3; ++j)
              for (int64_t c = 0; c < 2; ++c) s += nhwc.at({b, y + i, x + j, c}) * w.kernel.at({i, j, c, o});
          s = (s - w.mean.at({o})) / std::sqrt(w.var.at({o}) + 1e-3) * w.gamma.at({o}) + w.beta.at({o});
          pooled[o] += s / 9;
        }
    for (int64_t k = 0; k < 4; ++k) {
      double s = w.dense_bias.at({k});
      for (int64_t o = 0; o < 3; ++o) s += pooled[o] * w.dense.at({o, k});
      out.data<float>()[b * 4 + k] = static_cast<float>(s);
    }
  }
  return out;
}

TEST(KerasH5, FullModelFileWeightsByPositionWithinTheLayer) {
  const std::string path = temp_path("full.h5").string();
  const TinyWeights w;
  write_full_h5(path, w);
  EXPECT_EQ(graph_file_format(path), "keras-h5");
  const ImportedGraph g = import_graph_file(path);
  expect_equal(weight(g, "conv2d_1.weight"), w.kernel.permute({3, 2, 0, 1}).contiguous(), "conv kernel");
  expect_equal(weight(g, "bn_1.running_mean"), w.mean, "moving mean (stored as float64)");
  expect_equal(weight(g, "dense_1.weight"), w.dense.transpose(0, 1).contiguous(), "dense kernel");
  const Tensor x = uniform({2, 5, 5, 2}, -1, 1, 9);
  auto model = build_imported_model(g);
  expect_close(model->forward(x.permute({0, 3, 1, 2}).contiguous()), tiny_reference_logits(x, w), 1e-5, "logits");
  fs::remove(path);
}

// Keras 2 saves a nested model under its own layer group, its trainable weights first (in layer
// order), then the others: BatchNormalization before Conv2D gives gamma, beta, kernel, bias,
// moving_mean, moving_variance.
TEST(KerasH5, NestedModelTakesTrainableWeightsFirst) {
  const std::string config = R"({"class_name": "Model", "config": {"name": "outer", "layers": [
    {"class_name": "InputLayer", "name": "input_1", "config": {"batch_input_shape": [null, 5, 5, 2], "name": "input_1"},
     "inbound_nodes": []},
    {"class_name": "Sequential", "name": "inner", "config": [
      {"class_name": "BatchNormalization", "config": {"name": "bn_in", "batch_input_shape": [null, 5, 5, 2],
        "axis": -1, "epsilon": 0.001, "center": true, "scale": true}},
      {"class_name": "Conv2D", "config": {"name": "conv_in", "filters": 3, "kernel_size": [3, 3], "strides": [1, 1],
        "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear",
        "use_bias": true}}],
     "inbound_nodes": [[["input_1", 0, 0, {}]]]},
    {"class_name": "GlobalAveragePooling2D", "name": "gap", "config": {"name": "gap"},
     "inbound_nodes": [[["inner", 0, 0, {}]]]}],
    "input_layers": [["input_1", 0, 0]], "output_layers": [["gap", 0, 0]]}})";
  const std::string path = temp_path("nested.h5").string();
  const Tensor gamma = uniform({2}, 0.5, 1.5, 1), beta = uniform({2}, -1, 1, 2), mean = uniform({2}, -1, 1, 3),
               var = uniform({2}, 0.5, 2, 4), kernel = uniform({3, 3, 2, 3}, -1, 1, 5), bias = uniform({3}, -1, 1, 6);
  {
    test::Hdf5Writer h5(path);
    h5.fixed_strings("/", "model_config", {config}, true);
    h5.fixed_strings("/model_weights", "layer_names", {"input_1", "inner", "gap"});
    h5.empty_float_array("/model_weights/input_1", "weight_names");
    h5.empty_float_array("/model_weights/gap", "weight_names");
    const std::vector<std::pair<std::string, Tensor>> stored = {
        {"bn_in/gamma:0", gamma}, {"bn_in/beta:0", beta}, {"conv_in/kernel:0", kernel},
        {"conv_in/bias:0", bias}, {"bn_in/moving_mean:0", mean}, {"bn_in/moving_variance:0", var}};
    std::vector<std::string> names;
    for (const auto& [name, t] : stored) {
      names.push_back(name);
      h5.dataset("/model_weights/inner/" + name, t);
    }
    h5.fixed_strings("/model_weights/inner", "weight_names", names);
  }
  const ImportedGraph g = import_graph_file(path);
  const auto find = [&](const std::string& suffix) -> Tensor {
    for (const auto& [name, t] : g.weights)
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return t;
    ADD_FAILURE() << "no weight ending in " << suffix;
    return Tensor::zeros({1});
  };
  expect_equal(find("conv_in.weight"), kernel.permute({3, 2, 0, 1}).contiguous(), "nested conv kernel");
  expect_equal(find("conv_in.bias"), bias, "nested conv bias");
  expect_equal(find("bn_in.running_mean"), mean, "nested moving mean");
  expect_equal(find("bn_in.running_var"), var, "nested moving variance");
  expect_equal(find("bn_in.weight"), gamma, "nested gamma");
  fs::remove(path);
}

TEST(KerasH5, BadFilesGiveOneErrorNamingTheCulprit) {
  const TinyWeights w;
  const std::string path = temp_path("bad.h5").string();

  write_file_atomic(path, "not an hdf5 file at all");
  EXPECT_EQ(error_of([&] { import_graph_file(path); }).rfind(path + ": not a model file scalpel imports", 0), 0u);
  EXPECT_EQ(error_of([&] { import_keras_h5(path); }), path + ": not an HDF5 file (no HDF5 signature)");

  write_full_h5(path, w);
  const std::string bytes = read_file(path);
  write_file_atomic(path, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { import_graph_file(path); }, {path + ": unreadable HDF5 file (truncated file"});

  // Every cut through the file (header, metadata, data) is refused.
  for (size_t cut = 0; cut < bytes.size(); cut += bytes.size() / 37 + 1) {
    write_file_atomic(path, bytes.substr(0, cut));
    EXPECT_THROW(import_keras_h5(path), Error) << "cut at " << cut << " of " << bytes.size();
  }

  write_full_h5(path, w, sequential_config("Lambda"));
  expect_error([&] { import_graph_file(path); }, {path, "conv2d_1", "Lambda"});

  write_full_h5(path, w, sequential_config(), /*drop_bn_variance=*/true);
  EXPECT_EQ(error_of([&] { import_graph_file(path); }),
            path + ": layer 'bn_1' holds 3 weights in the file, its config needs 4 "
                   "(gamma, beta, moving_mean, moving_variance)");

  TinyWeights wrong;
  wrong.dense = uniform({4, 3}, -1, 1, 7);  // transposed: [units, in] instead of [in, units]
  write_full_h5(path, wrong);
  expect_error([&] { import_graph_file(path); }, {path, "dense_1", "kernel"});

  TinyWeights nan;
  nan.gamma.data<float>()[1] = std::nanf("");
  write_full_h5(path, nan);
  EXPECT_EQ(error_of([&] { import_graph_file(path); }),
            path + ": layer 'bn_1': weight /model_weights/bn_1/bn_1_1/gamma:0 holds NaN or infinity");
  fs::remove(path);
}

// The file's keras_version reaches the config builder: standalone Keras 2.2 (TF1) resized
// bilinearly with other coordinates, which scalpel refuses rather than run differently.
TEST(KerasH5, KerasVersionOfTheFileIsHeeded) {
  const std::string config = R"({"class_name": "Sequential", "config": {"name": "up", "layers": [
    {"class_name": "UpSampling2D", "config": {"name": "up_1", "batch_input_shape": [null, 4, 4, 3], "size": [2, 2],
      "interpolation": "bilinear", "data_format": "channels_last"}}]}})";
  const std::string path = temp_path("version.h5").string();
  for (const char* version : {"2.2.4", "2.13.1"}) {
    {
      test::Hdf5Writer h5(path);
      h5.fixed_strings("/", "model_config", {config}, true);
      h5.fixed_strings("/", "keras_version", {version}, true);
      h5.fixed_strings("/model_weights", "layer_names", {"up_1"});
      h5.empty_float_array("/model_weights/up_1", "weight_names");
    }
    if (std::string(version) == "2.2.4") {
      expect_error([&] { import_graph_file(path); }, {path, "'up_1'", "UpSampling2D"});
    } else {
      EXPECT_EQ(error_of([&] { import_graph_file(path); }), "");
    }
  }
  fs::remove(path);
}

TEST(KerasH5, WeightsOnlyFileNeedsAModel) {
  const std::string path = temp_path("weights_only.h5").string();
  {
    test::Hdf5Writer h5(path);
    h5.fixed_strings("/", "layer_names", {"dense_1"});
  }
  EXPECT_EQ(error_of([&] { import_graph_file(path); }),
            path + ": a Keras weights-only file (no model_config): give the architecture with --model NAME");
  fs::remove(path);
}

// ---- Keras 3 .keras ----

// The tiny model as Keras 3 writes it: config.json with dict inbound_nodes, and
// model.weights.h5 with layers/<snake_case class>/vars/<i>.
// legacy: the groups under "_layer_checkpoint_dependencies" instead of "layers", as Keras
// 2.13-2.15 wrote its .keras files.
std::string keras3_archive(const TinyWeights& w, bool short_bn = false, bool legacy = false) {
  const std::string config = R"({"module": "keras", "class_name": "Sequential", "config": {"name": "tiny",
    "layers": [
      {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [null, 5, 5, 2], "name": "input_layer"}},
      {"module": "keras.layers", "class_name": "Conv2D", "config": {"name": "conv2d", "filters": 3,
        "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "data_format": "channels_last",
        "dilation_rate": [1, 1], "activation": "linear", "use_bias": true}},
      {"module": "keras.layers", "class_name": "BatchNormalization", "config": {"name": "batch_normalization",
        "axis": -1, "epsilon": 0.001, "momentum": 0.99, "center": true, "scale": true}},
      {"module": "keras.layers", "class_name": "GlobalAveragePooling2D", "config": {"name": "global_average_pooling2d",
        "data_format": "channels_last"}},
      {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "units": 4,
        "activation": "softmax", "use_bias": true}}
    ]}})";
  const std::string h5_path = temp_path("model.weights.h5").string();
  {
    test::Hdf5Writer h5(h5_path);
    const std::string l = legacy ? "/_layer_checkpoint_dependencies/" : "/layers/";
    h5.dataset(l + "conv2d/vars/0", w.kernel);
    h5.dataset(l + "conv2d/vars/1", w.bias);
    h5.dataset(l + "batch_normalization/vars/0", w.gamma);
    h5.dataset(l + "batch_normalization/vars/1", w.beta, test::Hdf5Writer::half_type());
    h5.dataset(l + "batch_normalization/vars/2", w.mean);
    if (!short_bn) h5.dataset(l + "batch_normalization/vars/3", w.var);
    h5.group(l + "global_average_pooling2d/vars");
    h5.dataset(l + "dense/vars/0", w.dense);
    h5.dataset(l + "dense/vars/1", w.dense_bias);
    h5.group("/optimizer/vars");
  }
  std::string weights = read_file(h5_path);
  fs::remove(h5_path);
  return test::stored_zip({{"metadata.json", R"({"keras_version": "3.6.0"})"}, {"config.json", config},
                           {"model.weights.h5", weights}});
}

TEST(KerasZip, Keras3ArchiveLoadsByClassNamedGroups) {
  TinyWeights w;
  w.beta = Tensor::from_vector({0.5, -0.25, 1.125}, {3});  // exact in float16, as the archive stores it
  const std::string path = temp_path("tiny.keras").string();
  write_file_atomic(path, keras3_archive(w));
  EXPECT_EQ(graph_file_format(path), "keras-zip");
  const ImportedGraph g = import_graph_file(path);
  expect_equal(weight(g, "conv2d.weight"), w.kernel.permute({3, 2, 0, 1}).contiguous(), "conv kernel");
  expect_equal(weight(g, "batch_normalization.bias"), w.beta, "beta (float16)");
  const Tensor x = uniform({2, 5, 5, 2}, -1, 1, 10);
  auto model = build_imported_model(g);
  expect_close(model->forward(x.permute({0, 3, 1, 2}).contiguous()), tiny_reference_logits(x, w), 1e-5, "logits");

  write_file_atomic(path, keras3_archive(w, /*short_bn=*/false, /*legacy=*/true));
  expect_equal(weight(import_graph_file(path), "dense.weight"), w.dense.transpose(0, 1).contiguous(),
               "Keras 2.13 layout");

  write_file_atomic(path, keras3_archive(w, /*short_bn=*/true));
  EXPECT_EQ(error_of([&] { import_graph_file(path); }),
            path + ": layer 'batch_normalization' holds 3 weights in model.weights.h5, its config needs 4 "
                   "(gamma, beta, moving_mean, moving_variance)");
  const std::string bytes = keras3_archive(w);
  write_file_atomic(path, bytes.substr(0, bytes.size() - 30));
  EXPECT_NE(error_of([&] { import_keras_zip(path); }).find(path), std::string::npos);
  fs::remove(path);
}

// Keras 3 names a layer's group after its class, counting repeats in the functional model's
// layer order (input_layer, conv2d, re_lu, conv2d_1), whatever the layers' own names.
TEST(KerasZip, RepeatedClassesAreCountedInLayerOrder) {
  const auto tensor_ref = [](const std::string& layer) {
    return R"({"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, 5, 5, 2], "dtype": "float32",
      "keras_history": [")" + layer + R"(", 0, 0]}}], "kwargs": {}})";
  };
  const auto conv = [&](const std::string& name, int filters, const std::string& input) {
    return R"({"module": "keras.layers", "class_name": "Conv2D", "name": ")" + name + R"(", "config": {"name": ")" +
           name + R"(", "filters": )" + std::to_string(filters) + R"(, "kernel_size": [1, 1], "strides": [1, 1],
      "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear",
      "use_bias": false}, "inbound_nodes": [)" + tensor_ref(input) + "]}";
  };
  const std::string config = R"({"module": "keras", "class_name": "Functional", "config": {"name": "f", "layers": [
    {"module": "keras.layers", "class_name": "InputLayer", "name": "image", "config": {"batch_shape": [null, 5, 5, 2],
      "name": "image"}, "inbound_nodes": []},
    )" + conv("first", 2, "image") + R"(,
    {"module": "keras.layers", "class_name": "ReLU", "name": "act", "config": {"name": "act"},
     "inbound_nodes": [)" + tensor_ref("first") + R"(]},
    )" + conv("second", 3, "act") + R"(],
    "input_layers": [["image", 0, 0]], "output_layers": [["second", 0, 0]]}})";
  const Tensor first = uniform({1, 1, 2, 2}, -1, 1, 1), second = uniform({1, 1, 2, 3}, -1, 1, 2);
  const std::string h5_path = temp_path("functional.weights.h5").string();
  {
    test::Hdf5Writer h5(h5_path);
    h5.group("/layers/input_layer/vars");
    h5.dataset("/layers/conv2d/vars/0", first);
    h5.group("/layers/re_lu/vars");
    h5.dataset("/layers/conv2d_1/vars/0", second);
  }
  const std::string path = temp_path("functional.keras").string();
  write_file_atomic(path, test::stored_zip({{"config.json", config}, {"model.weights.h5", read_file(h5_path)}}));
  fs::remove(h5_path);
  const ImportedGraph g = import_graph_file(path);
  expect_equal(weight(g, "first.weight"), first.permute({3, 2, 0, 1}).contiguous(), "conv2d -> first");
  expect_equal(weight(g, "second.weight"), second.permute({3, 2, 0, 1}).contiguous(), "conv2d_1 -> second");
  fs::remove(path);
}

// ---- weights-only files onto a model ----

// `module`'s parameters written as Keras stores them (model.save_weights): one layer per
// Conv2d / depthwise Conv2d / SeparableConv2d / BatchNorm2d / Linear, in definition order.
void write_keras_weights(const std::string& path, nn::Module& module) {
  test::Hdf5Writer h5(path);
  std::vector<std::string> layers;
  std::string skip_prefix = "-";
  int index = 0;
  for (auto& [name, m] : module.named_modules()) {
    if (name.rfind(skip_prefix, 0) == 0) continue;  // a SeparableConv2d's children, written with it
    const std::string layer = fmt::format("layer_{}", index);
    const std::string group = "/" + layer;
    std::vector<std::pair<std::string, Tensor>> weights;
    const auto depthwise = [](const Tensor& wt, int64_t in) {  // [in*m, 1, kh, kw] -> [kh, kw, in, m]
      return wt.reshape({in, wt.size(0) / in, wt.size(2), wt.size(3)}).permute({2, 3, 0, 1}).contiguous();
    };
    if (auto* sep = dynamic_cast<nn::SeparableConv2d*>(m)) {
      skip_prefix = name + ".";
      weights.push_back({"depthwise_kernel", depthwise(sep->depthwise->weight, sep->in_channels)});
      weights.push_back({"pointwise_kernel", sep->pointwise->weight.permute({2, 3, 1, 0}).contiguous()});
      if (sep->pointwise->bias.defined()) weights.push_back({"bias", sep->pointwise->bias});
    } else if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
      const bool is_depthwise = conv->options.groups > 1 && conv->options.groups == conv->in_channels;
      weights.push_back({is_depthwise ? "depthwise_kernel" : "kernel",
                         is_depthwise ? depthwise(conv->weight, conv->in_channels)
                                      : conv->weight.permute({2, 3, 1, 0}).contiguous()});
      if (conv->bias.defined()) weights.push_back({"bias", conv->bias});
    } else if (m->type() == "BatchNorm2d") {
      for (const auto& [short_name, keras] : {std::pair{"weight", "gamma"}, {"bias", "beta"},
                                              {"running_mean", "moving_mean"}, {"running_var", "moving_variance"}}) {
        for (const nn::NamedTensor& e : m->state_dict())
          if (e.name == short_name) weights.push_back({keras, e.tensor});
      }
    } else if (m->type() == "Linear") {
      for (const nn::NamedTensor& e : m->named_parameters(false))
        weights.push_back({e.name == "weight" ? "kernel" : "bias",
                           e.name == "weight" ? e.tensor.transpose(0, 1).contiguous() : e.tensor});
    }
    if (weights.empty()) continue;
    ++index;
    layers.push_back(layer);
    std::vector<std::string> names;
    for (const auto& [param, t] : weights) {
      names.push_back(layer + "/" + param + ":0");
      h5.dataset(group + "/" + names.back(), t);
    }
    h5.fixed_strings(group, "weight_names", names);
  }
  h5.fixed_strings("/", "layer_names", layers);
}

std::shared_ptr<nn::Sequential> separable_net(int64_t bn_channels = 6) {
  auto net = std::make_shared<nn::Sequential>();
  net->add("stem", std::make_shared<nn::Conv2d>(3, 4, 3));
  net->add("stem_bn", std::make_shared<nn::BatchNorm2d>(4));
  net->add("sep", std::make_shared<nn::SeparableConv2d>(4, 6, 3));
  net->add("sep_bn", std::make_shared<nn::BatchNorm2d>(bn_channels));
  nn::Conv2dOptions dw;
  dw.groups = 6;
  net->add("dw", std::make_shared<nn::Conv2d>(6, 12, 3, dw));
  net->add("pool", std::make_shared<nn::GlobalAvgPool>());
  net->add("fc", std::make_shared<nn::Linear>(12, 5));
  Generator gen(3);
  for (nn::NamedTensor& e : net->state_dict())
    if (e.tensor.dtype() == DType::F32) uniform_(e.tensor, 0.1, 1, gen);
  return net;
}

void zero_state(nn::Module& m) {
  for (nn::NamedTensor& e : m.state_dict())
    if (e.tensor.dtype() == DType::F32) e.tensor.fill_(0);
}

void expect_same_state(nn::Module& a, nn::Module& b) {
  const auto sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) expect_equal(sa[i].tensor, sb[i].tensor, sa[i].name);
}

TEST(KerasH5, WeightsOnlyFileOntoModulesByLayerOrder) {
  const std::string path = temp_path("separable.h5").string();
  auto source = separable_net();
  write_keras_weights(path, *source);
  auto target = separable_net();
  zero_state(*target);
  std::vector<nn::NamedTensor> state;
  for (const auto& [n, t] : keras_h5_weights_for_model(path, *target)) state.push_back({n, t});
  target->load_state_dict(state);
  expect_same_state(*source, *target);

  auto other = separable_net(/*bn_channels=*/7);
  EXPECT_EQ(error_of([&] { keras_h5_weights_for_model(path, *other); }),
            path + ": Keras layer 'layer_3' (beta [6], gamma [6], moving_mean [6], moving_variance [6]) does not "
                   "fit the model's BatchNorm2d 'sep_bn' (weight [7], bias [7], running_mean [7], running_var [7])");
  auto longer = separable_net();
  longer->add("fc2", std::make_shared<nn::Linear>(5, 2));
  EXPECT_EQ(error_of([&] { keras_h5_weights_for_model(path, *longer); }),
            path + ": the file's 6 layers with weights leave the model's Linear 'fc2' (weight [2, 5], bias [2]) "
                   "without weights");
  fs::remove(path);
}

// Keras' Flatten reads (H, W, C), a torchvision-style classifier (C, H, W): a Dense after a
// conv map gets its rows reordered, so the scalpel module computes what Keras computes.
TEST(KerasH5, WeightsOnlyDenseAfterFlattenReadsChannelsLast) {
  const Tensor kernel = uniform({1, 1, 2, 3}, -1, 1, 1), bias = uniform({3}, -1, 1, 2);
  const Tensor dense = uniform({2 * 2 * 3, 4}, -1, 1, 3), dense_bias = uniform({4}, -1, 1, 4);
  const std::string path = temp_path("flatten.h5").string();
  {
    test::Hdf5Writer h5(path);
    // As Keras splits an attribute too big for an HDF5 object header: layer_names0, layer_names1.
    h5.fixed_strings("/", "layer_names0", {"conv", "flatten"});
    h5.fixed_strings("/", "layer_names1", {"fc"});
    h5.fixed_strings("/conv", "weight_names", {"conv/kernel:0", "conv/bias:0"});
    h5.dataset("/conv/conv/kernel:0", kernel);
    h5.dataset("/conv/conv/bias:0", bias);
    h5.empty_float_array("/flatten", "weight_names");
    h5.fixed_strings("/fc", "weight_names", {"fc/kernel:0", "fc/bias:0"});
    h5.dataset("/fc/fc/kernel:0", dense);
    h5.dataset("/fc/fc/bias:0", dense_bias);
  }
  auto net = std::make_shared<nn::Sequential>();
  net->add("conv", std::make_shared<nn::Conv2d>(2, 3, 1));
  net->add("flatten", std::make_shared<nn::Flatten>());
  net->add("fc", std::make_shared<nn::Linear>(12, 4));
  std::vector<nn::NamedTensor> state;
  for (const auto& [n, t] : keras_h5_weights_for_model(path, *net)) state.push_back({n, t});
  net->load_state_dict(state);

  const Tensor x = uniform({1, 2, 2, 2}, -1, 1, 5);  // NHWC
  Tensor expected = Tensor::zeros({1, 4});
  for (int64_t k = 0; k < 4; ++k) {
    double s = dense_bias.at({k});
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t w = 0; w < 2; ++w)
        for (int64_t o = 0; o < 3; ++o) {
          double y = bias.at({o});
          for (int64_t c = 0; c < 2; ++c) y += x.at({0, h, w, c}) * kernel.at({0, 0, c, o});
          s += y * dense.at({(h * 2 + w) * 3 + o, k});
        }
    expected.data<float>()[k] = static_cast<float>(s);
  }
  expect_close(net->forward(x.permute({0, 3, 1, 2}).contiguous()), expected, 1e-5, "Keras flatten order");
  fs::remove(path);
}

TEST(KerasH5, WeightsOnlyFileRoundTripsAZooModel) {
  const std::string path = temp_path("mobilenet.h5").string();
  ModelOptions options;
  options.classes = 3;
  auto source = create_model("mobilenet_v1", options);
  write_keras_weights(path, *source);
  auto target = create_model("mobilenet_v1", options);
  zero_state(*target);
  const LoadResult r = load_weights(*target, keras_h5_weights_for_model(path, *target), path);
  EXPECT_FALSE(r.head_replaced);
  expect_same_state(*source, *target);
  fs::remove(path);
}

// The same file through the CLI: `predict --model M --weights w.h5` gives the source model's logits.
TEST(KerasH5, WeightsOnlyFileThroughTheCli) {
  const std::string path = temp_path("cli_mobilenet.h5").string(), x = temp_path("cli_x.npy").string(),
                    y = temp_path("cli_y.npy").string();
  ModelOptions options;
  options.classes = 3;
  options.width = 0.25;
  auto source = create_model("mobilenet_v1", options);
  write_keras_weights(path, *source);
  Generator gen(3);
  const Tensor input = randn({2, 3, 64, 64}, gen);
  save_npy(x, input);
  const test::CliResult r = test::run_cli({"predict", "--model", "mobilenet_v1", "--width", "0.25", "--classes", "3",
                                           "--weights", path, "--input-npy", x, "--output-npy", y});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  source->eval();
  NoGradGuard no_grad;
  const auto expected = (*source)(input).to_vector(), got = load_npy(y).to_vector();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-5 * (1 + std::abs(expected[i])));
  for (const auto& p : {path, x, y}) fs::remove(p);
}

#else

TEST(KerasH5, BuiltWithoutHdf5SaysSo) {
  const std::string path = (fs::temp_directory_path() / "scalpel-no-hdf5.h5").string();
  write_file_atomic(path, std::string("\x89HDF\r\n\x1a\n", 8) + std::string(100, '\0'));
  EXPECT_NE(error_of([&] { import_graph_file(path); }).find("built without HDF5"), std::string::npos);
  fs::remove(path);
}

#endif

}  // namespace
}  // namespace scalpel::models
