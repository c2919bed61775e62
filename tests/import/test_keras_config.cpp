// The Keras model config -> GraphSpec translation (models/import/keras_config.h), on configs
// written here in the forms Keras 2 (list inbound_nodes), Keras 3 (dict inbound_nodes) and
// Sequential use:
//  - the nodes, their attributes and the NCHW axes a channels_last model turns into
//  - every weight in Keras' order, and its conversion to scalpel's layout element by element
//    (Conv2D, DepthwiseConv2D with a multiplier, SeparableConv2D, Conv2DTranspose, Dense)
//  - Flatten of an NHWC map transposes back to NHWC first (Dense weights keep Keras' order)
//  - BatchNormalization without scale/center, Rescaling, Normalization: constants
//  - nested models are inlined; unsupported layers and count/shape mismatches are one Error
#include <gtest/gtest.h>

#include <map>

#include "layers/module.h"
#include "models/import/keras_config.h"
#include "support/errors.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

using scalpel::test::error_of;
using scalpel::test::expect_error;

// A Keras 2 layer entry: {"name", "class_name", "config", "inbound_nodes": [[[in, 0, 0, {}]...]]}.
Json layer(const std::string& cls, const std::string& name, Json config, const std::vector<std::string>& inputs) {
  config["name"] = name;
  Json l = Json::object();
  l["name"] = name;
  l["class_name"] = cls;
  l["config"] = config;
  Json node = Json::array();
  for (const std::string& in : inputs) node.push_back(Json::array({in, 0, 0, Json::object()}));
  l["inbound_nodes"] = inputs.empty() ? Json::array() : Json::array({node});
  return l;
}

Json input_layer(const std::string& name, const std::vector<int64_t>& hwc) {
  Json shape = Json::array({nullptr});
  for (int64_t d : hwc) shape.push_back(Json(static_cast<long long>(d)));
  Json c = Json::object();
  c["batch_input_shape"] = shape;
  return layer("InputLayer", name, c, {});
}

Json functional(const std::string& name, Json layers, const std::string& in, const std::string& out) {
  Json config = Json::object();
  config["name"] = name;
  config["layers"] = std::move(layers);
  config["input_layers"] = Json::array({Json::array({in, 0, 0})});
  config["output_layers"] = Json::array({Json::array({out, 0, 0})});
  Json m = Json::object();
  m["class_name"] = "Functional";
  m["config"] = config;
  return m;
}

Json conv(int64_t filters, int64_t k, int64_t stride, const std::string& padding, bool bias = true,
          const std::string& activation = "linear") {
  Json c = Json::object();
  c["filters"] = filters;
  c["kernel_size"] = Json::array({k, k});
  c["strides"] = Json::array({stride, stride});
  c["padding"] = padding;
  c["use_bias"] = bias;
  c["activation"] = activation;
  c["data_format"] = "channels_last";
  return c;
}

Json obj(std::initializer_list<std::pair<const char*, Json>> members) {
  Json o = Json::object();
  for (const auto& [k, v] : members) o[k] = v;
  return o;
}

const GraphNode& node(const GraphSpec& spec, const std::string& name) {
  for (const GraphNode& n : spec.nodes)
    if (n.name == name) return n;
  throw Error("no node " + name);
}

std::vector<std::string> ops(const GraphSpec& spec) {
  std::vector<std::string> out;
  for (const GraphNode& n : spec.nodes) out.push_back(n.op);
  return out;
}

// Random stored tensors of every weight's Keras shape.
std::vector<Tensor> random_weights(const KerasGraph& g, uint64_t seed = 1) {
  Generator gen(seed);
  std::vector<Tensor> out;
  for (const KerasWeight& w : g.weights) out.push_back(randn(w.shape, gen));
  return out;
}

const Tensor& named(const NamedTensors& tensors, const std::string& name) {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  throw Error("no tensor " + name);
}

// A small MobileNet-like block: the layers the nsfwjs model uses, and Concatenate.
Json block_model() {
  Json layers = Json::array();
  layers.push_back(input_layer("input_1", {9, 7, 3}));
  layers.push_back(layer("ZeroPadding2D", "pad", obj({{"padding", Json::array({Json::array({0, 1}), Json::array({0, 1})})}}),
                         {"input_1"}));
  layers.push_back(layer("Conv2D", "conv", conv(4, 3, 2, "valid", false), {"pad"}));
  layers.push_back(layer("BatchNormalization", "bn",
                         obj({{"axis", -1}, {"epsilon", 0.001}, {"center", true}, {"scale", true}}), {"conv"}));
  layers.push_back(layer("ReLU", "relu", obj({{"max_value", 6}, {"negative_slope", 0}, {"threshold", 0}}), {"bn"}));
  Json dw = conv(0, 3, 1, "same");
  dw["depth_multiplier"] = 2;
  layers.push_back(layer("DepthwiseConv2D", "dw", dw, {"relu"}));
  layers.push_back(layer("Conv2D", "project", conv(4, 1, 1, "same"), {"dw"}));
  layers.push_back(layer("Add", "add", Json::object(), {"relu", "project"}));
  layers.push_back(layer("Concatenate", "cat", obj({{"axis", -1}}), {"add", "relu"}));
  layers.push_back(layer("GlobalAveragePooling2D", "gap", Json::object(), {"cat"}));
  Json dense = obj({{"units", 5}, {"activation", "softmax"}, {"use_bias", true}});
  layers.push_back(layer("Dense", "dense", dense, {"gap"}));
  return functional("block", layers, "input_1", "dense");
}

TEST(KerasConfig, FunctionalBlockBecomesNchwNodes) {
  const KerasGraph g = keras_graph_from_config(block_model(), {"keras", "block.json"});
  const GraphSpec& s = g.spec;
  EXPECT_EQ(s.name, "block");
  EXPECT_EQ(s.input_shape, (std::vector<int64_t>{3, 9, 7}));
  EXPECT_EQ(ops(s), (std::vector<std::string>{"pad", "conv2d", "batch_norm", "relu6", "conv2d", "conv2d", "add",
                                              "concat", "global_avg_pool", "linear", "softmax"}));
  EXPECT_EQ(node(s, "pad").attrs.at("pads"), Json::array({0, 0, 1, 1}));  // [top, left, bottom, right]
  const GraphNode& c = node(s, "conv");
  EXPECT_EQ(c.inputs, std::vector<std::string>{"pad"});
  EXPECT_EQ(c.attrs.at("in_channels").as_int(), 3);
  EXPECT_EQ(c.attrs.at("stride"), Json::array({2, 2}));
  EXPECT_FALSE(c.attrs.contains("same"));
  EXPECT_FALSE(c.attrs.at("bias").as_bool());
  EXPECT_DOUBLE_EQ(node(s, "bn").attrs.at("eps").as_number(), 0.001);
  const GraphNode& d = node(s, "dw");
  EXPECT_EQ(d.attrs.at("groups").as_int(), 4);
  EXPECT_EQ(d.attrs.at("out_channels").as_int(), 8);
  EXPECT_TRUE(d.attrs.at("same").as_bool());
  EXPECT_EQ(node(s, "add").inputs, (std::vector<std::string>{"relu", "project"}));
  EXPECT_EQ(node(s, "cat").attrs.at("axis").as_int(), 1);  // Keras' channel axis -1 is NCHW's 1
  EXPECT_EQ(node(s, "dense").attrs.at("in_features").as_int(), 8);
  EXPECT_EQ(node(s, "dense_softmax").attrs.at("axis").as_int(), 1);
  EXPECT_EQ(s.output, "dense_softmax");

  std::vector<std::string> names;
  for (const KerasWeight& w : g.weights) names.push_back(w.layer + "/" + w.param);
  EXPECT_EQ(names, (std::vector<std::string>{"conv/kernel", "bn/gamma", "bn/beta", "bn/moving_mean",
                                             "bn/moving_variance", "dw/depthwise_kernel", "dw/bias", "project/kernel",
                                             "project/bias", "dense/kernel", "dense/bias"}));
  EXPECT_EQ(g.weights[0].shape, (std::vector<int64_t>{3, 3, 3, 4}));
  EXPECT_EQ(g.weights[5].shape, (std::vector<int64_t>{3, 3, 4, 2}));
  EXPECT_FALSE(g.weights[3].trainable);  // moving statistics
  EXPECT_TRUE(g.weights[1].trainable);
}

TEST(KerasConfig, WeightsTakeScalpelsLayoutElementByElement) {
  const KerasGraph g = keras_graph_from_config(block_model());
  const std::vector<Tensor> stored = random_weights(g);
  const NamedTensors w = keras_weights_to_graph(g, stored, "block.json");
  // Conv2D [kh, kw, in, out] -> [out, in, kh, kw].
  const Tensor& conv_w = named(w, "conv.weight");
  ASSERT_EQ(conv_w.shape(), (Shape{4, 3, 3, 3}));
  EXPECT_EQ(conv_w.at({3, 1, 0, 2}), stored[0].at({0, 2, 1, 3}));
  EXPECT_EQ(conv_w.at({0, 2, 2, 1}), stored[0].at({2, 1, 2, 0}));
  // Depthwise [kh, kw, in, mult] -> [in * mult, 1, kh, kw], output channel c * mult + m.
  const Tensor& dw_w = named(w, "dw.weight");
  ASSERT_EQ(dw_w.shape(), (Shape{8, 1, 3, 3}));
  EXPECT_EQ(dw_w.at({2 * 2 + 1, 0, 1, 2}), stored[5].at({1, 2, 2, 1}));
  EXPECT_EQ(dw_w.at({3 * 2 + 0, 0, 0, 1}), stored[5].at({0, 1, 3, 0}));
  // Dense [in, out] -> [out, in].
  const Tensor& dense_w = named(w, "dense.weight");
  ASSERT_EQ(dense_w.shape(), (Shape{5, 8}));
  EXPECT_EQ(dense_w.at({4, 6}), stored[9].at({6, 4}));
  EXPECT_EQ(named(w, "bn.running_var").at({2}), stored[4].at({2}));
  EXPECT_EQ(named(w, "bn.weight").at({1}), stored[1].at({1}));
}

// The same model in Keras 3's dict form gives the same graph.
TEST(KerasConfig, Keras3DictInboundNodesReadAsKeras2) {
  Json m = block_model();
  Json& layers = m["config"]["layers"];
  for (size_t i = 0; i < layers.size(); ++i) {
    Json& l = layers[i];
    l["module"] = "keras.layers";
    Json nodes = Json::array();
    for (const Json& call : l.at("inbound_nodes").as_array()) {
      Json args = Json::array();
      for (const Json& ref : call.as_array()) {
        Json tensor = obj({{"class_name", "__keras_tensor__"},
                           {"config", obj({{"keras_history", Json::array({ref[0], ref[1], ref[2]})}})}});
        args.push_back(tensor);
      }
      // Merge layers take their inputs as one list argument.
      Json call3 = Json::object();
      call3["args"] = args.size() > 1 ? Json::array({args}) : args;
      call3["kwargs"] = Json::object();
      nodes.push_back(call3);
    }
    l["inbound_nodes"] = nodes;
    if (l.at("class_name").as_string() == "InputLayer") {
      Json c = Json::object();
      for (const auto& [k, v] : l["config"].as_object()) c[k == "batch_input_shape" ? "batch_shape" : k] = v;
      l["config"] = c;
    }
  }
  m["config"]["input_layers"] = Json::array({"input_1", 0, 0});  // Keras 3, one input
  const KerasGraph g2 = keras_graph_from_config(block_model());
  const KerasGraph g3 = keras_graph_from_config(m);
  EXPECT_EQ(g3.spec.input_shape, g2.spec.input_shape);
  ASSERT_EQ(g3.spec.nodes.size(), g2.spec.nodes.size());
  for (size_t i = 0; i < g2.spec.nodes.size(); ++i) {
    EXPECT_EQ(g3.spec.nodes[i].name, g2.spec.nodes[i].name);
    EXPECT_EQ(g3.spec.nodes[i].inputs, g2.spec.nodes[i].inputs);
    EXPECT_EQ(g3.spec.nodes[i].attrs, g2.spec.nodes[i].attrs);
  }
  EXPECT_EQ(g3.weights.size(), g2.weights.size());
}

Json sequential(Json layers) {
  Json m = Json::object();
  m["class_name"] = "Sequential";
  m["config"] = obj({{"name", "seq"}, {"layers", std::move(layers)}});
  return m;
}

// Keras flattens (H, W, C): the graph transposes its NCHW map back before flattening, so the
// Dense kernel is only transposed.
TEST(KerasConfig, FlattenOfAChannelsLastMapTransposesBackToNhwc) {
  Json layers = Json::array();
  Json c = conv(2, 3, 1, "same");
  c["batch_input_shape"] = Json::array({nullptr, 4, 5, 1});
  layers.push_back(layer("Conv2D", "conv", c, {}));
  layers.push_back(layer("MaxPooling2D", "pool", obj({{"pool_size", Json::array({2, 2})}, {"padding", "valid"}}), {}));
  layers.push_back(layer("Flatten", "flat", Json::object(), {}));
  layers.push_back(layer("Dense", "fc", obj({{"units", 3}}), {}));
  const KerasGraph g = keras_graph_from_config(sequential(layers));
  EXPECT_EQ(ops(g.spec), (std::vector<std::string>{"conv2d", "max_pool2d", "transpose", "flatten", "linear"}));
  EXPECT_EQ(node(g.spec, "flat_nhwc").attrs.at("perm"), Json::array({0, 2, 3, 1}));
  EXPECT_EQ(node(g.spec, "fc").attrs.at("in_features").as_int(), 2 * 2 * 2);  // pool: 4x5 -> 2x2
  EXPECT_EQ(g.spec.input_shape, (std::vector<int64_t>{1, 4, 5}));
}

TEST(KerasConfig, SeparableAndTransposedConvolutions) {
  Json layers = Json::array();
  layers.push_back(input_layer("in", {6, 6, 3}));
  Json sep = conv(5, 3, 2, "same", false);
  sep["depth_multiplier"] = 1;
  layers.push_back(layer("SeparableConv2D", "sep", sep, {}));
  layers.push_back(layer("Conv2DTranspose", "up", conv(2, 3, 2, "same", true, "relu"), {}));
  layers.push_back(layer("Cropping2D", "crop", obj({{"cropping", Json::array({Json::array({1, 0}), Json::array({0, 2})})}}), {}));
  layers.push_back(layer("UpSampling2D", "ups", obj({{"size", Json::array({2, 2})}, {"interpolation", "nearest"}}), {}));
  const KerasGraph g = keras_graph_from_config(sequential(layers));
  EXPECT_EQ(ops(g.spec), (std::vector<std::string>{"conv2d", "conv2d", "conv_transpose2d", "relu", "slice", "slice",
                                                   "upsample"}));
  EXPECT_EQ(node(g.spec, "sep_depthwise").attrs.at("groups").as_int(), 3);
  EXPECT_FALSE(node(g.spec, "sep_depthwise").attrs.at("bias").as_bool());
  EXPECT_EQ(node(g.spec, "sep_pointwise").attrs.at("kernel"), Json::array({1, 1}));
  // TF "same" transposed conv: output = input * stride, (k - s) = 1 cropped, at the bottom/right.
  EXPECT_EQ(node(g.spec, "up").attrs.at("pads"), Json::array({0, 0, 1, 1}));
  EXPECT_EQ(node(g.spec, "crop_rows").attrs.at("start").as_int(), 1);
  EXPECT_EQ(node(g.spec, "crop_cols").attrs.at("end").as_int(), -2);
  std::vector<std::string> names;
  for (const KerasWeight& w : g.weights) names.push_back(w.layer + "/" + w.param);
  EXPECT_EQ(names, (std::vector<std::string>{"sep/depthwise_kernel", "sep/pointwise_kernel", "up/kernel", "up/bias"}));
  EXPECT_EQ(g.weights[2].shape, (std::vector<int64_t>{3, 3, 2, 5}));  // [kh, kw, out, in]
  const std::vector<Tensor> stored = random_weights(g);
  const NamedTensors w = keras_weights_to_graph(g, stored, "m");
  const Tensor& up = named(w, "up.weight");  // [in, out, kh, kw]
  ASSERT_EQ(up.shape(), (Shape{5, 2, 3, 3}));
  EXPECT_EQ(up.at({4, 1, 0, 2}), stored[2].at({0, 2, 1, 4}));
  EXPECT_EQ(named(w, "sep_pointwise.weight").at({4, 2, 0, 0}), stored[1].at({0, 0, 2, 4}));
}

// channels_first: the graph's NCHW is Keras' own order, nothing is transposed.
TEST(KerasConfig, ChannelsFirstNeedsNoTranspose) {
  Json layers = Json::array();
  Json c = conv(4, 3, 1, "same");
  c["data_format"] = "channels_first";
  c["batch_input_shape"] = Json::array({nullptr, 2, 5, 6});
  layers.push_back(layer("Conv2D", "conv", c, {}));
  layers.push_back(layer("BatchNormalization", "bn", obj({{"axis", 1}}), {}));
  layers.push_back(layer("GlobalAveragePooling2D", "gap", obj({{"data_format", "channels_first"}}), {}));
  const KerasGraph g = keras_graph_from_config(sequential(layers));
  EXPECT_EQ(g.spec.input_shape, (std::vector<int64_t>{2, 5, 6}));
  EXPECT_EQ(ops(g.spec), (std::vector<std::string>{"conv2d", "batch_norm", "global_avg_pool"}));
  EXPECT_EQ(node(g.spec, "bn").attrs.at("channels").as_int(), 4);
}

TEST(KerasConfig, BilinearUpsamplingOfTf1IsRefused) {
  Json layers = Json::array();
  layers.push_back(input_layer("in", {4, 4, 3}));
  layers.push_back(layer("UpSampling2D", "up", obj({{"size", Json::array({2, 2})}, {"interpolation", "bilinear"}}), {}));
  KerasConfigOptions tf2;
  tf2.keras_version = "2.13.1";
  EXPECT_EQ(node(keras_graph_from_config(sequential(layers), tf2).spec, "up").attrs.at("mode").as_string(), "bilinear");
  KerasConfigOptions tf1;
  tf1.keras_version = "2.2.4";
  expect_error([&] { keras_graph_from_config(sequential(layers), tf1); }, {"'up'", "UpSampling2D", "asymmetric"});
}

TEST(KerasConfig, BatchNormWithoutScaleOrCenterGetsOnesAndZeros) {
  Json layers = Json::array();
  layers.push_back(input_layer("in", {4, 4, 3}));
  layers.push_back(layer("BatchNormalization", "bn", obj({{"axis", 3}, {"epsilon", 1e-5}, {"scale", false}, {"center", false}}), {}));
  layers.push_back(layer("Rescaling", "rescale", obj({{"scale", 1.0 / 255}, {"offset", -1.0}}), {}));
  const KerasGraph g = keras_graph_from_config(sequential(layers));
  ASSERT_EQ(g.weights.size(), 2u);
  EXPECT_EQ(g.weights[0].param, "moving_mean");
  const NamedTensors w = keras_weights_to_graph(g, random_weights(g), "m");
  EXPECT_EQ(named(w, "bn.weight").to_vector(), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(named(w, "bn.bias").to_vector(), (std::vector<double>{0, 0, 0}));
  EXPECT_FLOAT_EQ(static_cast<float>(named(w, "rescale_scale.value").item()), 1.0f / 255);
  EXPECT_EQ(ops(g.spec), (std::vector<std::string>{"batch_norm", "constant", "mul", "constant", "add"}));
}

TEST(KerasConfig, NormalizationWeightsBecomeMeanAndStd) {
  Json layers = Json::array();
  layers.push_back(input_layer("in", {4, 4, 2}));
  layers.push_back(layer("Normalization", "norm", obj({{"axis", -1}}), {}));
  const KerasGraph g = keras_graph_from_config(sequential(layers));
  ASSERT_EQ(g.weights.size(), 3u);  // mean, variance, count
  const std::vector<Tensor> stored = {Tensor::from_vector({0.5, -1}, {2}), Tensor::from_vector({4, 0}, {2}),
                                      Tensor::scalar(10)};
  const NamedTensors w = keras_weights_to_graph(g, stored, "m");
  EXPECT_EQ(named(w, "norm_mean.value").shape(), (Shape{1, 2, 1, 1}));
  const std::vector<double> sd = named(w, "norm_std.value").to_vector();
  EXPECT_DOUBLE_EQ(sd[0], 2.0);
  EXPECT_NEAR(sd[1], 1e-7, 1e-12);  // Keras: max(sqrt(variance), epsilon)
  EXPECT_EQ(ops(g.spec), (std::vector<std::string>{"constant", "constant", "sub", "div"}));
}

// Run through GraphModel: (x - mean) / sqrt(variance) per channel of an NHWC input (NCHW in
// the graph), and with axis None one mean for everything.
TEST(KerasConfig, NormalizationRunsPerChannelAndWhole) {
  for (const bool whole : {false, true}) {
    Json layers = Json::array();
    layers.push_back(input_layer("in", {2, 3, 2}));
    layers.push_back(layer("Normalization", "norm", obj({{"axis", whole ? Json() : Json(-1)}}), {}));
    const KerasGraph g = keras_graph_from_config(sequential(layers));
    std::vector<Tensor> stored;
    if (whole) stored = {Tensor::scalar(0.5), Tensor::scalar(4), Tensor::scalar(3)};
    else stored = {Tensor::from_vector({0.5, -1}, {2}), Tensor::from_vector({4, 0.25}, {2}), Tensor::scalar(3)};
    const NamedTensors w = keras_weights_to_graph(g, stored, "m");
    GraphModel model(g.spec);
    std::vector<nn::NamedTensor> state;
    for (const auto& [name, t] : w) state.push_back({name, t});
    model.load_state_dict(state);
    model.eval();
    Generator gen(3);
    const Tensor x = randn({1, 2, 2, 3}, gen);  // NCHW
    const Tensor y = model.forward(x);
    ASSERT_EQ(y.shape(), x.shape());
    for (int64_t c = 0; c < 2; ++c) {
      const double mean = whole ? 0.5 : (c == 0 ? 0.5 : -1.0);
      const double sd = whole ? 2.0 : (c == 0 ? 2.0 : 0.5);
      EXPECT_NEAR(y.at({0, c, 1, 2}), (x.at({0, c, 1, 2}) - mean) / sd, 1e-6) << (whole ? "whole" : "per channel");
    }
  }
}

TEST(KerasConfig, ActivationsAndReluVariants) {
  Json layers = Json::array();
  layers.push_back(input_layer("in", {8}));
  layers.push_back(layer("ReLU", "r1", obj({{"max_value", 2.5}}), {}));
  layers.push_back(layer("ReLU", "r2", obj({{"negative_slope", 0.1}}), {}));
  layers.push_back(layer("LeakyReLU", "lk", obj({{"alpha", 0.3}}), {}));
  layers.push_back(layer("Activation", "hs", obj({{"activation", "hard_sigmoid"}}), {}));
  layers.push_back(layer("Activation", "sw", obj({{"activation", "swish"}}), {}));
  layers.push_back(layer("Dropout", "drop", obj({{"rate", 0.5}}), {}));
  layers.push_back(layer("Softmax", "sm", obj({{"axis", -1}}), {}));
  const KerasGraph g = keras_graph_from_config(sequential(layers));
  EXPECT_EQ(ops(g.spec), (std::vector<std::string>{"clip", "leaky_relu", "leaky_relu", "hard_sigmoid", "silu",
                                                   "dropout", "softmax"}));
  EXPECT_DOUBLE_EQ(node(g.spec, "r1").attrs.at("max").as_number(), 2.5);
  EXPECT_DOUBLE_EQ(node(g.spec, "hs").attrs.at("alpha").as_number(), 0.2);  // Keras 2: 0.2 x + 0.5
  EXPECT_EQ(node(g.spec, "sm").attrs.at("axis").as_int(), 1);
}

// A pretrained base used as a layer (transfer learning): its layers are inlined and its
// weights belong to the outer layer that holds it.
TEST(KerasConfig, NestedModelIsInlined) {
  Json inner = Json::array();
  inner.push_back(input_layer("base_in", {8, 8, 3}));
  inner.push_back(layer("Conv2D", "base_conv", conv(4, 3, 1, "same"), {"base_in"}));
  Json base = functional("base", inner, "base_in", "base_conv");
  base["name"] = "base";
  base["inbound_nodes"] = Json::array({Json::array({Json::array({"input", 0, 0, Json::object()})})});
  Json outer = Json::array();
  outer.push_back(input_layer("input", {8, 8, 3}));
  outer.push_back(base);
  outer.push_back(layer("GlobalAveragePooling2D", "gap", Json::object(), {"base"}));
  outer.push_back(layer("Dense", "head", obj({{"units", 2}}), {"gap"}));
  const KerasGraph g = keras_graph_from_config(functional("outer", outer, "input", "head"));
  EXPECT_EQ(ops(g.spec), (std::vector<std::string>{"conv2d", "global_avg_pool", "linear"}));
  EXPECT_EQ(node(g.spec, "gap").inputs, std::vector<std::string>{"base_conv"});
  ASSERT_EQ(g.weights.size(), 4u);
  EXPECT_EQ(g.weights[0].layer, "base_conv");
  EXPECT_EQ(g.weights[0].top_layer, "base");
  EXPECT_EQ(g.weights[2].top_layer, "head");
}

// The usual transfer-learning model: Sequential([base, GlobalAveragePooling2D, Dense]), the
// base frozen.
TEST(KerasConfig, NestedModelInASequential) {
  Json inner = Json::array();
  inner.push_back(input_layer("base_in", {8, 8, 3}));
  inner.push_back(layer("Conv2D", "base_conv", conv(4, 3, 2, "same"), {"base_in"}));
  inner.push_back(layer("BatchNormalization", "base_bn", Json::object(), {"base_conv"}));
  Json base = functional("base", inner, "base_in", "base_bn");
  base["config"]["trainable"] = false;
  Json layers = Json::array();
  layers.push_back(input_layer("input", {8, 8, 3}));
  layers.push_back(base);
  layers.push_back(layer("GlobalAveragePooling2D", "gap", Json::object(), {}));
  layers.push_back(layer("Dense", "head", obj({{"units", 2}}), {}));
  const KerasGraph g = keras_graph_from_config(sequential(layers));
  EXPECT_EQ(ops(g.spec), (std::vector<std::string>{"conv2d", "batch_norm", "global_avg_pool", "linear"}));
  ASSERT_EQ(g.weights.size(), 8u);
  EXPECT_EQ(g.weights[0].top_layer, "base");
  EXPECT_FALSE(g.weights[0].trainable);  // the frozen base
  EXPECT_TRUE(g.weights[6].trainable);   // head/kernel
  EXPECT_EQ(node(g.spec, "head").attrs.at("in_features").as_int(), 4);
}

TEST(KerasConfig, UnsupportedLayerIsNamedWithItsClass) {
  Json layers = Json::array();
  layers.push_back(input_layer("in", {4, 4, 3}));
  layers.push_back(layer("Lambda", "my_lambda", obj({{"function", "..."}}), {}));
  expect_error([&] { keras_graph_from_config(sequential(layers), {"keras", "model.h5"}); },
               {"model.h5", "my_lambda", "Lambda", "not supported"});
}

TEST(KerasConfig, CountAndShapeMismatchesAreOneError) {
  const KerasGraph g = keras_graph_from_config(block_model());
  std::vector<Tensor> stored = random_weights(g);
  stored.pop_back();
  expect_error([&] { keras_weights_to_graph(g, stored, "model.h5"); }, {"model.h5", "11 weights", "10"});
  stored = random_weights(g);
  stored[0] = Tensor::zeros({3, 3, 4, 4});
  expect_error([&] { keras_weights_to_graph(g, stored, "model.h5"); }, {"model.h5", "conv", "kernel", "[3, 3, 3, 4]"});
}

TEST(KerasConfig, BadConfigsAreErrors) {
  Json m = block_model();
  m["config"]["layers"][2]["inbound_nodes"] = Json::array({Json::array({Json::array({"nowhere", 0, 0, Json::object()})})});
  expect_error([&] { keras_graph_from_config(m, {"keras", "m.json"}); }, {"m.json", "conv", "input no layer makes"});
  Json bad_relu = Json::array();
  bad_relu.push_back(input_layer("in", {4}));
  bad_relu.push_back(layer("ReLU", "thr", obj({{"threshold", 0.5}}), {}));
  expect_error([&] { keras_graph_from_config(sequential(bad_relu)); }, {"thr", "ReLU", "threshold"});
  // A zero stride would divide by zero; a negative padding or filter count is nonsense.
  Json zero_stride = Json::array();
  zero_stride.push_back(input_layer("in", {4, 4, 3}));
  zero_stride.push_back(layer("Conv2D", "c0", conv(2, 3, 0, "same"), {}));
  expect_error([&] { keras_graph_from_config(sequential(zero_stride)); }, {"c0", "Conv2D", "positive"});
  Json negative = Json::array();
  negative.push_back(input_layer("in", {4, 4, 3}));
  negative.push_back(layer("ZeroPadding2D", "zp", obj({{"padding", -1}}), {}));
  expect_error([&] { keras_graph_from_config(sequential(negative)); }, {"zp", "non-negative"});
  Json no_filters = Json::array();
  no_filters.push_back(input_layer("in", {4, 4, 3}));
  no_filters.push_back(layer("Conv2D", "c1", conv(0, 3, 1, "same"), {}));
  expect_error([&] { keras_graph_from_config(sequential(no_filters)); }, {"c1", "filters"});
  Json no_class = Json::object();
  EXPECT_NE(error_of([&] { keras_graph_from_config(no_class); }), "");
}

}  // namespace
}  // namespace scalpel::models
