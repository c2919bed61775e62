#include "models/export/onnx.h"

#include <cmath>
#include <map>
#include <set>

#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/io/protobuf_writer.h"

namespace scalpel::models {

namespace {

// Field numbers and enums of onnx/onnx.proto (proto2).
namespace onnx {
enum ModelField { kIrVersion = 1, kProducerName = 2, kProducerVersion = 3, kGraph = 7, kOpsetImport = 8, kMetadata = 14 };
enum GraphField { kNode = 1, kGraphName = 2, kInitializer = 5, kInput = 11, kOutput = 12 };
enum NodeField { kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kOpType = 4, kAttribute = 5 };
enum AttributeField { kAttrName = 1, kAttrF = 2, kAttrI = 3, kAttrS = 4, kAttrInts = 8, kAttrType = 20 };
enum AttributeType { kFloat = 1, kInt = 2, kString = 3, kInts = 7 };
enum TensorField { kDims = 1, kDataType = 2, kTensorName = 8, kRawData = 9 };
enum DataType { kFloat32 = 1, kInt64 = 7 };
}  // namespace onnx

// The IR version that goes with an opset (onnx/helper.py VERSION_TABLE): the oldest that
// holds it, so older runtimes still open the file.
int64_t ir_version_for(int64_t opset) {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

struct Attr {
  ProtoWriter w;
  Attr(const std::string& name, int64_t value) {
    w.bytes(onnx::kAttrName, name).varint(onnx::kAttrType, onnx::kInt).int64(onnx::kAttrI, value);
  }
  Attr(const std::string& name, double value) {
    w.bytes(onnx::kAttrName, name).varint(onnx::kAttrType, onnx::kFloat).float32(onnx::kAttrF, static_cast<float>(value));
  }
  Attr(const std::string& name, const char* value) {
    w.bytes(onnx::kAttrName, name).varint(onnx::kAttrType, onnx::kString).bytes(onnx::kAttrS, value);
  }
  Attr(const std::string& name, const std::string& value) : Attr(name, value.c_str()) {}
  Attr(const std::string& name, const std::vector<int64_t>& values) {
    w.bytes(onnx::kAttrName, name).varint(onnx::kAttrType, onnx::kInts);
    for (int64_t v : values) w.int64(onnx::kAttrInts, v);
  }
};

std::vector<int64_t> ints(const Json& attrs, const char* key, std::vector<int64_t> fallback) {
  const Json* j = attrs.find(key);
  if (!j || j->is_null()) return fallback;
  std::vector<int64_t> out;
  for (const Json& v : j->as_array()) out.push_back(v.as_int());
  return out;
}
int64_t integer(const Json& attrs, const char* key, int64_t fallback) {
  const Json* j = attrs.find(key);
  return j && !j->is_null() ? j->as_int() : fallback;
}
double number(const Json& attrs, const char* key, double fallback) {
  const Json* j = attrs.find(key);
  return j && !j->is_null() ? j->as_number() : fallback;
}
bool flag(const Json& attrs, const char* key, bool fallback) {
  const Json* j = attrs.find(key);
  return j && !j->is_null() ? j->as_bool() : fallback;
}
std::string text(const Json& attrs, const char* key, const std::string& fallback) {
  const Json* j = attrs.find(key);
  return j && !j->is_null() ? j->as_string() : fallback;
}

ProtoWriter tensor_proto(const std::string& name, const Shape& dims, int data_type, std::string_view raw) {
  ProtoWriter t;
  for (int64_t d : dims) t.int64(onnx::kDims, d);
  t.varint(onnx::kDataType, static_cast<uint64_t>(data_type)).bytes(onnx::kTensorName, name).bytes(onnx::kRawData, raw);
  return t;
}

ProtoWriter value_info(const std::string& name, const Shape& shape, bool dynamic_batch) {
  ProtoWriter shape_proto;
  for (size_t i = 0; i < shape.size(); ++i) {
    ProtoWriter dim;
    if (i == 0 && dynamic_batch)
      dim.bytes(2, "N");  // dim_param
    else
      dim.int64(1, shape[i]);  // dim_value
    shape_proto.message(1, dim);
  }
  ProtoWriter tensor_type;
  tensor_type.varint(1, onnx::kFloat32).message(2, shape_proto);  // elem_type, shape
  ProtoWriter type;
  type.message(1, tensor_type);  // TypeProto.tensor_type
  ProtoWriter info;
  info.bytes(1, name).message(2, type);
  return info;
}

// Builds the GraphProto node by node.
class OnnxGraph {
 public:
  OnnxGraph(const GraphSpec& spec, const NamedTensors& weights, int64_t opset) : spec_(spec), opset_(opset) {
    for (const auto& [name, t] : weights) weights_.emplace(name, t);
    rank_[spec.input] = 4;
    for (const GraphNode& n : spec.nodes)
      if (n.op == "max_pool2d" && !n.inputs.empty()) max_pool_inputs_.insert(n.inputs[0]);
  }

  void add(const GraphNode& n) {
    SCALPEL_CHECK(n.inputs.size() >= 1 || n.op == "constant", "node '{}' ({}): no input", n.name, n.op);
    node_ = &n;
    const int64_t rank = n.inputs.empty() ? 0 : rank_of(n.inputs[0]);
    int64_t out_rank = rank;
    const Json& a = n.attrs;
    const std::string& x = n.inputs.empty() ? n.output : n.inputs[0];
    const std::string& y = n.output;
    const std::string& op = n.op;
    if (op == "conv2d") {
      std::vector<std::string> in = {x, param("weight")};
      if (flag(a, "bias", true)) in.push_back(param("bias"));
      std::vector<Attr> at = {Attr("kernel_shape", ints(a, "kernel", {})), Attr("strides", ints(a, "stride", {1, 1})),
                              Attr("dilations", ints(a, "dilation", {1, 1})), Attr("group", integer(a, "groups", 1))};
      at.push_back(flag(a, "same", false) ? Attr("auto_pad", "SAME_UPPER") : Attr("pads", pads(a)));
      emit("Conv", in, {y}, std::move(at));
    } else if (op == "conv_transpose2d") {
      std::vector<std::string> in = {x, param("weight")};
      if (flag(a, "bias", true)) in.push_back(param("bias"));
      emit("ConvTranspose", in, {y},
           {Attr("kernel_shape", ints(a, "kernel", {})), Attr("strides", ints(a, "stride", {1, 1})),
            Attr("dilations", ints(a, "dilation", {1, 1})), Attr("group", integer(a, "groups", 1)),
            Attr("pads", pads(a)), Attr("output_padding", ints(a, "output_padding", {0, 0}))});
    } else if (op == "batch_norm") {
      // ONNX momentum is the share the running statistics keep (PyTorch's 1 - momentum).
      emit("BatchNormalization", {x, param("weight"), param("bias"), param("running_mean"), param("running_var")},
           {y}, {Attr("epsilon", number(a, "eps", 1e-5)), Attr("momentum", 1.0 - number(a, "momentum", 0.1))});
    } else if (op == "linear") {
      if (rank == 2) {
        std::vector<std::string> in = {x, param("weight")};
        if (flag(a, "bias", true)) in.push_back(param("bias"));
        emit("Gemm", in, {y}, {Attr("transB", int64_t{1})});
      } else {  // over the last axis of a higher-rank input: MatMul with W^T, then the bias
        const Tensor w = weight("weight");
        const std::string wt = initializer(n.name + ".weight_t", w.transpose(0, 1).contiguous());
        if (!flag(a, "bias", true)) {
          emit("MatMul", {x, wt}, {y});
        } else {
          emit("MatMul", {x, wt}, {y + "__matmul"});
          emit("Add", {y + "__matmul", param("bias")}, {y});
        }
      }
    } else if (op == "constant") {
      const Tensor value = weight("value");
      initializer(y, value);
      out_rank = value.dim();
    } else if (op == "relu") {
      emit("Relu", {x}, {y});
    } else if (op == "relu6") {
      emit("Clip", {x, scalar(0.0f), scalar(6.0f)}, {y});
    } else if (op == "clip") {
      const Json* lo = a.find("min");
      const Json* hi = a.find("max");
      std::vector<std::string> in = {x, lo && !lo->is_null() ? scalar(static_cast<float>(lo->as_number())) : ""};
      if (hi && !hi->is_null()) in.push_back(scalar(static_cast<float>(hi->as_number())));
      emit("Clip", in, {y});
    } else if (op == "leaky_relu") {
      emit("LeakyRelu", {x}, {y}, {Attr("alpha", number(a, "slope", 0.01))});
    } else if (op == "elu") {
      emit("Elu", {x}, {y}, {Attr("alpha", number(a, "alpha", 1.0))});
    } else if (op == "sigmoid") {
      emit("Sigmoid", {x}, {y});
    } else if (op == "hard_sigmoid") {
      emit("HardSigmoid", {x}, {y}, {Attr("alpha", number(a, "alpha", 0.2)), Attr("beta", number(a, "beta", 0.5))});
    } else if (op == "hard_swish") {
      if (opset_ >= 14) {
        emit("HardSwish", {x}, {y});
      } else {
        emit("HardSigmoid", {x}, {y + "__gate"}, {Attr("alpha", 1.0 / 6.0), Attr("beta", 0.5)});
        emit("Mul", {x, y + "__gate"}, {y});
      }
    } else if (op == "tanh") {
      emit("Tanh", {x}, {y});
    } else if (op == "silu") {
      emit("Sigmoid", {x}, {y + "__sigmoid"});
      emit("Mul", {x, y + "__sigmoid"}, {y});
    } else if (op == "gelu") {  // x * 0.5 * (1 + erf(x / sqrt(2))), the exact form (Gelu is opset 20)
      emit("Div", {x, scalar(static_cast<float>(std::sqrt(2.0)))}, {y + "__scaled"});
      emit("Erf", {y + "__scaled"}, {y + "__erf"});
      emit("Add", {y + "__erf", scalar(1.0f)}, {y + "__erf1"});
      emit("Mul", {x, y + "__erf1"}, {y + "__prod"});
      emit("Mul", {y + "__prod", scalar(0.5f)}, {y});
    } else if (op == "softmax") {
      emit("Softmax", {x}, {y}, {Attr("axis", integer(a, "axis", -1))});
    } else if (op == "identity" || op == "dropout") {
      emit("Identity", {x}, {y});
    } else if (op == "add" || op == "sub" || op == "mul" || op == "div" || op == "max" || op == "min") {
      static const std::map<std::string, std::string> names = {{"add", "Add"}, {"sub", "Sub"}, {"mul", "Mul"},
                                                                {"div", "Div"}, {"max", "Max"}, {"min", "Min"}};
      SCALPEL_CHECK(n.inputs.size() == 2, "node '{}' ({}): needs two inputs, has {}", n.name, op, n.inputs.size());
      out_rank = std::max(rank, rank_of(n.inputs[1]));
      emit(names.at(op), n.inputs, {y});
    } else if (op == "max_pool2d" || op == "avg_pool2d") {
      const std::vector<int64_t> kernel = ints(a, "kernel", {});
      std::vector<Attr> at = {Attr("kernel_shape", kernel), Attr("strides", ints(a, "stride", kernel)),
                              Attr("ceil_mode", int64_t{flag(a, "ceil_mode", false)})};
      at.push_back(flag(a, "same", false) ? Attr("auto_pad", "SAME_UPPER") : Attr("pads", pads(a)));
      if (op == "avg_pool2d") at.push_back(Attr("count_include_pad", int64_t{flag(a, "count_include_pad", false)}));
      emit(op == "max_pool2d" ? "MaxPool" : "AveragePool", {x}, {y}, std::move(at));
    } else if (op == "global_avg_pool" || op == "global_max_pool") {
      const char* onnx_op = op == "global_avg_pool" ? "GlobalAveragePool" : "GlobalMaxPool";
      if (flag(a, "keepdims", false)) {
        emit(onnx_op, {x}, {y});
      } else {
        emit(onnx_op, {x}, {y + "__pooled"});
        emit("Flatten", {y + "__pooled"}, {y}, {Attr("axis", int64_t{1})});
        out_rank = 2;
      }
    } else if (op == "reduce_mean" || op == "reduce_max") {
      const std::vector<int64_t> axes = ints(a, "axes", {});
      const bool keepdims = flag(a, "keepdims", true);
      const char* onnx_op = op == "reduce_mean" ? "ReduceMean" : "ReduceMax";
      if (opset_ >= 18)  // axes became an input in opset 18
        emit(onnx_op, {x, int64s(axes)}, {y}, {Attr("keepdims", int64_t{keepdims})});
      else
        emit(onnx_op, {x}, {y}, {Attr("axes", axes), Attr("keepdims", int64_t{keepdims})});
      if (!keepdims) out_rank = rank - static_cast<int64_t>(axes.size());
    } else if (op == "flatten") {
      emit("Flatten", {x}, {y}, {Attr("axis", integer(a, "axis", 1))});
      out_rank = 2;
    } else if (op == "reshape") {
      const std::vector<int64_t> shape = ints(a, "shape", {});
      emit("Reshape", {x, int64s(shape)}, {y});
      out_rank = static_cast<int64_t>(shape.size());
    } else if (op == "transpose") {
      emit("Transpose", {x}, {y}, {Attr("perm", ints(a, "perm", {}))});
    } else if (op == "squeeze" || op == "unsqueeze") {
      const std::vector<int64_t> axes = ints(a, "axes", {});
      emit(op == "squeeze" ? "Squeeze" : "Unsqueeze", {x, int64s(axes)}, {y});
      out_rank = rank + (op == "squeeze" ? -1 : 1) * static_cast<int64_t>(axes.size());
    } else if (op == "concat") {
      emit("Concat", n.inputs, {y}, {Attr("axis", integer(a, "axis", 1))});
    } else if (op == "slice") {
      emit("Slice",
           {x, int64s({integer(a, "start", 0)}), int64s({integer(a, "end", INT64_MAX)}), int64s({integer(a, "axis", 0)}),
            int64s({integer(a, "step", 1)})},
           {y});
    } else if (op == "pad") {
      const std::vector<int64_t> p = ints(a, "pads", {0, 0, 0, 0});
      SCALPEL_CHECK(p.size() == 4, "node '{}' (pad): pads must be [top, left, bottom, right]", n.name);
      std::vector<int64_t> onnx_pads(static_cast<size_t>(2 * rank), 0);  // begins of every axis, then ends
      SCALPEL_CHECK(rank >= 2, "node '{}' (pad): needs an input with at least 2 axes", n.name);
      onnx_pads[rank - 2] = p[0];
      onnx_pads[rank - 1] = p[1];
      onnx_pads[2 * rank - 2] = p[2];
      onnx_pads[2 * rank - 1] = p[3];
      const std::string mode = text(a, "mode", "constant");
      float value = static_cast<float>(number(a, "value", 0.0));
      // ONNX Runtime (1.20) folds a zero-valued Pad into a following MaxPool's pads, which pad
      // with -inf, not zero (Keras ResNet V2's ZeroPadding2D + MaxPooling2D gave other logits).
      // It checks the value's bytes, so -0.0 (equal to 0 in every comparison and sum) keeps the Pad.
      if (mode == "constant" && value == 0.0f && max_pool_inputs_.contains(y)) value = -0.0f;
      emit("Pad", {x, int64s(onnx_pads), scalar(value)}, {y}, {Attr("mode", mode)});
    } else if (op == "matmul") {
      out_rank = std::max(rank, rank_of(n.inputs.at(1)));
      emit("MatMul", n.inputs, {y});
    } else if (op == "upsample") {
      resize(n, x, y);
    } else {
      fail("node '{}': op '{}' has no ONNX export", n.name, op);
    }
    rank_[y] = out_rank;
  }

  ProtoWriter& graph() { return graph_; }

 private:
  int64_t rank_of(const std::string& value) const {
    auto it = rank_.find(value);
    SCALPEL_CHECK(it != rank_.end(), "node '{}' ({}): input '{}' is used before it is made", node_->name, node_->op,
                  value);
    return it->second;
  }

  void resize(const GraphNode& n, const std::string& x, const std::string& y) {
    const Json& a = n.attrs;
    const std::string mode = text(a, "mode", "nearest");
    const std::string coordinates = text(a, "coordinates", "half_pixel");
    SCALPEL_CHECK(mode == "nearest" || mode == "bilinear", "node '{}' (upsample): unknown mode '{}'", n.name, mode);
    std::vector<Attr> at = {Attr("mode", mode == "bilinear" ? "linear" : "nearest"),
                            Attr("coordinate_transformation_mode", coordinates)};
    // Nearest: PyTorch's asymmetric mode floors; TF's half_pixel_centers and align_corners round.
    if (mode == "nearest") at.push_back(Attr("nearest_mode", coordinates == "asymmetric" ? "floor" : "round_prefer_ceil"));
    const std::vector<int64_t> size = ints(a, "size", {});
    if (!size.empty() && size[0] > 0) {
      // sizes must name every axis: N and C from the input's shape, H and W from the node.
      emit("Shape", {x}, {y + "__shape"});
      emit("Slice", {y + "__shape", int64s({0}), int64s({2}), int64s({0})}, {y + "__nc"});
      emit("Concat", {y + "__nc", int64s(size)}, {y + "__sizes"}, {Attr("axis", int64_t{0})});
      emit("Resize", {x, "", "", y + "__sizes"}, {y}, std::move(at));
    } else {
      const std::vector<double> scale = [&] {
        std::vector<double> s;
        for (const Json& v : a.at("scale").as_array()) s.push_back(v.as_number());
        return s;
      }();
      SCALPEL_CHECK(scale.size() == 2, "node '{}' (upsample): scale must be [sh, sw]", n.name);
      const std::vector<float> scales = {1.0f, 1.0f, static_cast<float>(scale[0]), static_cast<float>(scale[1])};
      const std::string name = n.name + ".scales";
      add_initializer(name, {4}, onnx::kFloat32,
                      std::string_view(reinterpret_cast<const char*>(scales.data()), scales.size() * sizeof(float)));
      emit("Resize", {x, "", name}, {y}, std::move(at));
    }
  }

  std::vector<int64_t> pads(const Json& a) const { return ints(a, "pads", {0, 0, 0, 0}); }  // [t, l, b, r] = ONNX order

  Tensor weight(const std::string& param) const {
    const std::string key = node_->name + "." + param;
    auto it = weights_.find(key);
    SCALPEL_CHECK(it != weights_.end(), "node '{}' ({}): weight '{}' is missing", node_->name, node_->op, key);
    return it->second;
  }
  // The node's parameter as an initializer named "<node>.<param>"; returns that name.
  std::string param(const std::string& param) { return initializer(node_->name + "." + param, weight(param)); }

  std::string initializer(const std::string& name, const Tensor& t) {
    const Tensor c = t.to(Device::cpu()).to(DType::F32).contiguous();
    add_initializer(name, c.shape(), onnx::kFloat32,
                    std::string_view(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * 4));
    return name;
  }
  void add_initializer(const std::string& name, const Shape& dims, int data_type, std::string_view raw) {
    SCALPEL_CHECK(initializers_.insert(name).second, "node '{}': tensor name '{}' is used twice", node_->name, name);
    graph_.message(onnx::kInitializer, tensor_proto(name, dims, data_type, raw));
  }
  // A float32 scalar constant, shared by every node that uses the same value.
  std::string scalar(float value) {
    const std::string name = fmt::format("scalpel_const_f32_{}", value);  // fmt writes -0.0 as "-0"
    if (!initializers_.contains(name))
      add_initializer(name, {}, onnx::kFloat32, std::string_view(reinterpret_cast<const char*>(&value), sizeof value));
    return name;
  }
  // A 1-D int64 constant (axes, shapes, pads, slice bounds), shared likewise.
  std::string int64s(const std::vector<int64_t>& values) {
    std::string name = "scalpel_const_i64";
    for (int64_t v : values) name += fmt::format("_{}", v);
    if (!initializers_.contains(name))
      add_initializer(name, {static_cast<int64_t>(values.size())}, onnx::kInt64,
                      std::string_view(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
    return name;
  }

  void emit(const std::string& op_type, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
            std::vector<Attr> attrs = {}) {
    ProtoWriter node;
    for (const std::string& in : inputs) node.bytes(onnx::kNodeInput, in);
    for (const std::string& out : outputs) node.bytes(onnx::kNodeOutput, out);
    node.bytes(onnx::kNodeName, outputs.front() == node_->output ? node_->name : outputs.front())
        .bytes(onnx::kOpType, op_type);
    for (const Attr& a : attrs) node.message(onnx::kAttribute, a.w);
    graph_.message(onnx::kNode, node);
  }

  const GraphSpec& spec_;
  int64_t opset_;
  std::map<std::string, Tensor> weights_;
  std::map<std::string, int64_t> rank_;
  std::set<std::string> initializers_;
  std::set<std::string> max_pool_inputs_;  // values a max_pool2d reads
  const GraphNode* node_ = nullptr;
  ProtoWriter graph_;
};

}  // namespace

std::string onnx_model_bytes(const GraphSpec& spec, const NamedTensors& weights, const Shape& input_shape,
                             const Shape& output_shape, const OnnxOptions& options) {
  SCALPEL_CHECK(options.opset >= kOnnxMinOpset && options.opset <= kOnnxMaxOpset,
                "--opset {}: the exporter writes opsets {} to {}", options.opset, kOnnxMinOpset, kOnnxMaxOpset);
  SCALPEL_CHECK(input_shape.size() == 4, "ONNX export: the input shape must be [N, C, H, W], got {}",
                shape_str(input_shape));
  OnnxGraph graph(spec, weights, options.opset);
  for (const GraphNode& n : spec.nodes) graph.add(n);
  ProtoWriter& g = graph.graph();
  g.bytes(onnx::kGraphName, spec.name.empty() ? "scalpel" : spec.name)
      .message(onnx::kInput, value_info(spec.input, input_shape, options.dynamic_batch))
      .message(onnx::kOutput, value_info(spec.output, output_shape, options.dynamic_batch));

  ProtoWriter opset;
  opset.bytes(1, "").int64(2, options.opset);  // OperatorSetIdProto: domain "" (ai.onnx), version
  ProtoWriter model;
  model.int64(onnx::kIrVersion, ir_version_for(options.opset)).bytes(onnx::kProducerName, "scalpel");
  if (!options.producer_version.empty()) model.bytes(onnx::kProducerVersion, options.producer_version);
  model.message(onnx::kOpsetImport, opset);
  for (const auto& [key, value] : options.metadata) {
    ProtoWriter entry;
    entry.bytes(1, key).bytes(2, value);
    model.message(onnx::kMetadata, entry);
  }
  model.message(onnx::kGraph, g);
  return model.take();
}

void write_onnx(const std::string& path, const GraphSpec& spec, const NamedTensors& weights, const Shape& input_shape,
                const Shape& output_shape, const OnnxOptions& options) {
  write_file_atomic(path, onnx_model_bytes(spec, weights, input_shape, output_shape, options));
}

int64_t fold_batchnorm(GraphSpec& spec, NamedTensors& weights) {
  std::map<std::string, int64_t> uses;
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    for (const std::string& in : spec.nodes[i].inputs) ++uses[in];
    producer[spec.nodes[i].output] = i;
  }
  auto find_weight = [&](const std::string& name) -> Tensor* {
    for (auto& [key, t] : weights)
      if (key == name) return &t;
    return nullptr;
  };
  auto get = [&](const std::string& name) {
    Tensor* t = find_weight(name);
    SCALPEL_CHECK(t, "fold_batchnorm: weight '{}' is missing", name);
    return t->to(Device::cpu()).to(DType::F32).contiguous().to_vector();
  };

  std::set<std::string> removed_nodes;
  int64_t folded = 0;
  for (GraphNode& bn : spec.nodes) {
    if (bn.op != "batch_norm" || bn.inputs.size() != 1) continue;
    auto it = producer.find(bn.inputs[0]);
    if (it == producer.end()) continue;
    GraphNode& conv = spec.nodes[it->second];
    if (conv.op != "conv2d" || uses[conv.output] != 1 || conv.output == spec.output) continue;
    const std::vector<double> gamma = get(bn.name + ".weight"), beta = get(bn.name + ".bias"),
                              mean = get(bn.name + ".running_mean"), var = get(bn.name + ".running_var");
    const double eps = number(bn.attrs, "eps", 1e-5);
    Tensor* w = find_weight(conv.name + ".weight");
    SCALPEL_CHECK(w, "fold_batchnorm: weight '{}.weight' is missing", conv.name);
    const int64_t out = w->size(0);
    if (static_cast<int64_t>(gamma.size()) != out) continue;
    const bool had_bias = flag(conv.attrs, "bias", true);
    std::vector<double> bias = had_bias ? get(conv.name + ".bias") : std::vector<double>(static_cast<size_t>(out), 0.0);

    Tensor new_w = w->to(Device::cpu()).to(DType::F32).contiguous().clone();
    float* pw = new_w.data<float>();
    const int64_t per_channel = new_w.numel() / out;
    std::vector<float> new_b(static_cast<size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      const double s = gamma[o] / std::sqrt(var[o] + eps);
      for (int64_t k = 0; k < per_channel; ++k) pw[o * per_channel + k] = static_cast<float>(pw[o * per_channel + k] * s);
      new_b[o] = static_cast<float>((bias[o] - mean[o]) * s + beta[o]);
    }
    *w = new_w;
    Tensor b = Tensor::from_data(new_b.data(), {out});
    if (had_bias)
      *find_weight(conv.name + ".bias") = b;
    else
      weights.emplace_back(conv.name + ".bias", b);
    conv.attrs["bias"] = true;
    conv.output = bn.output;
    removed_nodes.insert(bn.name);
    ++folded;
  }
  std::erase_if(spec.nodes, [&](const GraphNode& n) { return removed_nodes.contains(n.name); });
  std::erase_if(weights, [&](const auto& entry) {
    const size_t dot = entry.first.rfind('.');
    return dot != std::string::npos && removed_nodes.contains(entry.first.substr(0, dot));
  });
  return folded;
}

}  // namespace scalpel::models
