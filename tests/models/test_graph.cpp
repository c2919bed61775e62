// GraphModel (models/graph.h): a spec runs as the same functional ops written by hand, its
// JSON round-trips, the feature layer and the trailing softmax are found, every op of the
// vocabulary does what its comment says, and a bad spec is an Error naming the node.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/autograd.h"
#include "layers/functional.h"
#include "models/graph.h"
#include "models_test_util.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

using test::error_of;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  const auto va = a.to_vector(), vb = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

GraphNode node(std::string name, std::string op, std::vector<std::string> inputs, Json attrs = Json::object()) {
  GraphNode n;
  n.name = name;
  n.op = std::move(op);
  n.inputs = std::move(inputs);
  n.output = std::move(name);
  n.attrs = std::move(attrs);
  return n;
}

Json ints(std::initializer_list<int64_t> v) {
  Json a = Json::array();
  for (int64_t x : v) a.as_array().push_back(Json(x));
  return a;
}

// stem: 3x3/2 TF-SAME conv + BN + relu6; a 1x1 conv branch added back; global pool; dense;
// softmax. Odd input sizes make SAME padding asymmetric.
GraphSpec small_spec() {
  GraphSpec s;
  s.source = "test";
  s.name = "small";
  s.input_shape = {3, 0, 0};
  Json conv = Json::object();
  conv["in_channels"] = 3;
  conv["out_channels"] = 8;
  conv["kernel"] = ints({3, 3});
  conv["stride"] = ints({2, 2});
  conv["same"] = true;
  conv["bias"] = false;
  Json bn = Json::object();
  bn["channels"] = 8;
  bn["eps"] = 1e-3;
  Json branch = Json::object();
  branch["in_channels"] = 8;
  branch["out_channels"] = 8;
  branch["kernel"] = ints({1, 1});
  Json fc = Json::object();
  fc["in_features"] = 8;
  fc["out_features"] = 5;
  Json softmax = Json::object();
  softmax["axis"] = -1;
  s.nodes = {node("conv", "conv2d", {"input"}, conv),
             node("bn", "batch_norm", {"conv"}, bn),
             node("act", "relu6", {"bn"}),
             node("branch", "conv2d", {"act"}, branch),
             node("sum", "add", {"act", "branch"}),
             node("pool", "global_avg_pool", {"sum"}),
             node("fc", "linear", {"pool"}, fc),
             node("probs", "softmax", {"fc"}, softmax)};
  s.output = "probs";
  return s;
}

std::vector<nn::NamedTensor> random_state(const nn::Module& m, uint64_t seed) {
  Generator gen(seed);
  std::vector<nn::NamedTensor> state;
  for (const auto& [name, t] : m.state_dict()) {
    Tensor v = randn(t.shape(), gen);
    if (name.ends_with("running_var")) v = abs(v) + 0.5;
    state.push_back({name, v});
  }
  return state;
}

TEST(Graph, RunsAsTheSameOpsWrittenByHand) {
  GraphModel model(small_spec());
  model.load_state_dict(random_state(model, 7));
  model.eval();
  EXPECT_TRUE(model.ends_in_softmax());
  EXPECT_EQ(model.feature_layer(), "sum");
  EXPECT_EQ(model.head_name(), "fc");
  EXPECT_EQ(model.feature_dim(), 8);
  EXPECT_EQ(model.options().classes, 5);
  EXPECT_EQ(shape_str(model.output_shape()), "[1, 5]");

  Generator gen(3);
  const Tensor x = randn({2, 3, 13, 11}, gen);
  NoGradGuard no_grad;
  const Tensor logits = model(x);

  auto p = [&](const std::string& name) {
    for (const auto& [n, t] : model.state_dict())
      if (n == name) return t;
    return Tensor();
  };
  nn::Conv2dOptions conv;
  conv.stride = {2, 2};
  conv.same = true;
  Tensor y = nn::conv2d(x, p("conv.weight"), Tensor(), conv);
  y = nn::batch_norm(y, p("bn.running_mean"), p("bn.running_var"), p("bn.weight"), p("bn.bias"), false, 0.1, 1e-3);
  y = nn::relu6(y);
  y = y + nn::conv2d(y, p("branch.weight"), p("branch.bias"), {});
  const Tensor expected = nn::linear(nn::global_avg_pool(y), p("fc.weight"), p("fc.bias"));
  // Same ops, but the conv kernels may block the sums differently: float32 rounding only.
  const double tolerance = 1e-6 * (1 + max_abs_diff(expected, mul(expected, 0.0)));
  EXPECT_LT(max_abs_diff(logits, expected), tolerance);
  EXPECT_EQ(max_abs_diff(model.forward_head(model.forward_features(x)), logits), 0.0);
  EXPECT_EQ(shape_str(model.forward_features(x).shape()), "[2, 8, 7, 6]");

  const auto values = model.run_all(x);
  EXPECT_EQ(values.back().first, "probs");
  EXPECT_LT(max_abs_diff(values.back().second, nn::softmax(logits, 1)), 1e-6);
}

TEST(Graph, TrainsLikeAnyModel) {
  GraphModel model(small_spec());
  model.load_state_dict(random_state(model, 8));
  Generator gen(4);
  const Tensor loss = sum(model(randn({2, 3, 9, 9}, gen)));
  backward(loss);
  for (const auto& [name, t] : model.named_parameters()) EXPECT_TRUE(t.grad().defined()) << name;
}

TEST(Graph, JsonRoundTrip) {
  const GraphSpec s = small_spec();
  const Json j = Json::parse(s.to_json().dump());
  const GraphSpec back = GraphSpec::from_json(j);
  EXPECT_EQ(back.to_json().dump(), s.to_json().dump());
  Json broken = j;
  broken["nodes"] = 3;
  EXPECT_NE(error_of([&] { GraphSpec::from_json(broken, "model.onnx"); }).find("model.onnx: malformed graph"),
            std::string::npos);
}

TEST(Graph, BadSpecsNameTheNode) {
  GraphSpec s = small_spec();
  s.nodes[2].op = "frobnicate";
  EXPECT_NE(error_of([&] { GraphModel m(s); }).find("node 'act' (frobnicate): unknown op"), std::string::npos);

  s = small_spec();
  s.nodes[4].inputs = {"act", "later"};
  EXPECT_NE(error_of([&] { GraphModel m(s); }).find("input 'later' is not made by an earlier node"),
            std::string::npos);

  s = small_spec();
  s.nodes[3].output = "act";
  EXPECT_NE(error_of([&] { GraphModel m(s); }).find("output 'act' is already defined"), std::string::npos);

  s = small_spec();
  s.nodes[0].attrs.as_object().erase(s.nodes[0].attrs.as_object().begin() + 1);  // out_channels
  EXPECT_NE(error_of([&] { GraphModel m(s); }).find("node 'conv' (conv2d): missing attribute 'out_channels'"),
            std::string::npos);

  s = small_spec();
  s.nodes[1].name = "bn.1";
  EXPECT_NE(error_of([&] { GraphModel m(s); }).find("'bn.1' is not a valid module name"), std::string::npos);

  s = small_spec();
  s.nodes[6].attrs["in_features"] = 9;  // the pooled map has 8 channels
  EXPECT_NE(error_of([&] { GraphModel m(s); }).find("does not run on a 3x224x224 input"), std::string::npos);

  EXPECT_EQ(graph_safe_name("conv1/BiasAdd:0"), "conv1_BiasAdd_0");
  EXPECT_EQ(graph_safe_name("0.weight"), "n_0_weight");
}

// One node applied to `x` (any shape: the graph input shape only matters for the dry run).
Tensor run_op(const std::string& op, Json attrs, const Tensor& x, std::vector<Tensor> extra = {}) {
  GraphSpec s;
  s.source = "test";
  s.input_shape = {x.size(1), x.dim() == 4 ? x.size(2) : 1, x.dim() == 4 ? x.size(3) : 1};
  std::vector<std::string> inputs{"input"};
  for (size_t i = 0; i < extra.size(); ++i) {
    Json c = Json::object();
    Json shape = Json::array();
    for (int64_t d : extra[i].shape()) shape.as_array().push_back(Json(d));
    c["shape"] = shape;
    s.nodes.push_back(node(fmt::format("c{}", i), "constant", {}, c));
    inputs.push_back(fmt::format("c{}", i));
  }
  s.nodes.push_back(node("op", op, inputs, std::move(attrs)));
  s.output = "op";
  // The dry run feeds [1, C, H, W]: only 4-D inputs get a representative one.
  if (x.dim() != 4) s.input_shape = {x.size(1), 1, 1};
  GraphModel m(s);
  std::vector<nn::NamedTensor> state;
  for (size_t i = 0; i < extra.size(); ++i) state.push_back({fmt::format("c{}.value", i), extra[i]});
  m.load_state_dict(state);
  m.eval();
  NoGradGuard no_grad;
  return m.run_all(x).back().second;
}

Tensor row(std::vector<double> v) { return Tensor::from_vector(v, {1, 1, 1, static_cast<int64_t>(v.size())}); }

TEST(GraphOps, PaddingModes) {
  const Tensor x = row({1, 2, 3});
  Json a = Json::object();
  a["pads"] = ints({0, 2, 0, 1});
  a["mode"] = "reflect";
  EXPECT_EQ(run_op("pad", a, x).to_vector(), (std::vector<double>{3, 2, 1, 2, 3, 2}));
  a["mode"] = "edge";
  EXPECT_EQ(run_op("pad", a, x).to_vector(), (std::vector<double>{1, 1, 1, 2, 3, 3}));
  a["mode"] = "constant";
  a["value"] = -1;
  EXPECT_EQ(run_op("pad", a, x).to_vector(), (std::vector<double>{-1, -1, 1, 2, 3, -1}));
  a["pads"] = ints({0, -1, 0, 0});  // negative pads crop
  EXPECT_EQ(run_op("pad", a, x).to_vector(), (std::vector<double>{2, 3}));
}

TEST(GraphOps, ShapeOps) {
  Generator gen(5);
  const Tensor x = randn({2, 3, 4, 5}, gen);
  Json r = Json::object();
  r["shape"] = ints({0, -1});
  EXPECT_EQ(shape_str(run_op("reshape", r, x).shape()), "[2, 60]");
  Json f = Json::object();
  f["axis"] = 2;
  EXPECT_EQ(shape_str(run_op("flatten", f, x).shape()), "[6, 20]");
  Json t = Json::object();
  t["perm"] = ints({0, 2, 3, 1});
  EXPECT_EQ(max_abs_diff(run_op("transpose", t, x), permute(x, {0, 2, 3, 1})), 0.0);
  Json sl = Json::object();
  sl["axis"] = -1;
  sl["start"] = -3;
  sl["end"] = 1000;
  sl["step"] = 2;
  EXPECT_EQ(max_abs_diff(run_op("slice", sl, x), slice(x, 3, 2, 5, 2)), 0.0);
  Json u = Json::object();
  u["axes"] = ints({0, -1});
  EXPECT_EQ(shape_str(run_op("unsqueeze", u, x).shape()), "[1, 2, 3, 4, 5, 1]");
  Json k = Json::object();
  k["keepdims"] = true;
  EXPECT_EQ(shape_str(run_op("global_max_pool", k, x).shape()), "[2, 3, 1, 1]");
  Json m = Json::object();
  m["axes"] = ints({2, 3});
  EXPECT_LT(max_abs_diff(run_op("reduce_mean", m, x), mean(x, {2, 3}, true)), 1e-6);
  Json c = Json::object();
  c["axis"] = 1;
  EXPECT_EQ(shape_str(run_op("concat", c, slice(x, 0, 0, 1), {randn({1, 2, 4, 5}, gen)}).shape()), "[1, 5, 4, 5]");
}

TEST(GraphOps, ActivationsAndBroadcasting) {
  const Tensor x = row({-2, -0.5, 0, 1, 4});
  Json e = Json::object();
  e["alpha"] = 0.5;
  const auto elu = run_op("elu", e, x).to_vector();
  EXPECT_NEAR(elu[0], 0.5 * (std::exp(-2.0) - 1), 1e-6);
  EXPECT_NEAR(elu[4], 4, 1e-6);
  const auto hard = run_op("hard_sigmoid", Json::object(), x).to_vector();
  const std::vector<double> expected{0.1, 0.4, 0.5, 0.7, 1};
  for (size_t i = 0; i < hard.size(); ++i) EXPECT_NEAR(hard[i], expected[i], 1e-7);
  Json clip = Json::object();
  clip["min"] = -1;
  EXPECT_EQ(run_op("clip", clip, x).to_vector(), (std::vector<double>{-1, -0.5, 0, 1, 4}));
  const Tensor scale = Tensor::from_vector({2}, {1});
  EXPECT_EQ(run_op("mul", Json::object(), x, {scale}).to_vector(), (std::vector<double>{-4, -1, 0, 2, 8}));
}

TEST(GraphOps, Upsampling) {
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2});
  Json a = Json::object();
  a["scale"] = Json::array({2.0, 2.0});
  EXPECT_EQ(max_abs_diff(run_op("upsample", a, x), nn::upsample(x, 4, 4, "nearest")), 0.0);
  a["mode"] = "bilinear";
  a["coordinates"] = "align_corners";
  EXPECT_EQ(max_abs_diff(run_op("upsample", a, x), nn::upsample(x, 4, 4, "bilinear", true)), 0.0);
  Json odd = Json::object();
  odd["size"] = ints({3, 3});
  EXPECT_NE(error_of([&] { run_op("upsample", odd, x); }).find("only whole scale factors"), std::string::npos);
}

}  // namespace
}  // namespace scalpel::models
