#include "models/import/tflite.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <set>

#include "tensor/error.h"
#include "tensor/io/element_convert.h"
#include "tensor/io/flatbuffer.h"
#include "tensor/io/mapped_file.h"

namespace scalpel::models {

namespace {

using flatbuffers::FlatBuffer;
using flatbuffers::Table;
using flatbuffers::Vector;

// ---- schema constants (tensorflow/lite/schema/schema.fbs, version 3) ----
// Field ids: the order of the fields in each table, a union counting twice (type, value).
namespace field {
// Model
constexpr int kModelVersion = 0, kOperatorCodes = 1, kSubgraphs = 2, kBuffers = 4;
// OperatorCode: the byte code, then (since 2.4) a 32-bit code for codes above 127.
constexpr int kDeprecatedBuiltinCode = 0, kCustomCode = 1, kBuiltinCode = 3;
// SubGraph
constexpr int kTensors = 0, kInputs = 1, kOutputs = 2, kOperators = 3;
// Tensor
constexpr int kShape = 0, kType = 1, kBuffer = 2, kName = 3, kQuantization = 4, kSparsity = 6;
// QuantizationParameters
constexpr int kScale = 2, kZeroPoint = 3, kQuantDetailsType = 4, kQuantizedDimension = 6;
// Operator
constexpr int kOpcodeIndex = 0, kOpInputs = 1, kOpOutputs = 2, kOptionsType = 3, kOptions = 4;
// Buffer: inline data, or (models over 2 GB) an offset and size into the file.
constexpr int kData = 0, kBufferOffset = 1, kBufferSize = 2;
}  // namespace field

enum TensorType : int8_t {
  kFloat32 = 0, kFloat16 = 1, kInt32 = 2, kUint8 = 3, kInt64 = 4, kInt16 = 7, kInt8 = 9
};

enum Builtin : int32_t {
  kAdd = 0, kAveragePool2d = 1, kConcatenation = 2, kConv2d = 3, kDepthwiseConv2d = 4,
  kDequantize = 6, kFullyConnected = 9, kLogistic = 14, kMaxPool2d = 17, kMul = 18, kRelu = 19,
  kReluN1To1 = 20, kRelu6 = 21, kReshape = 22, kSoftmax = 25, kTanh = 28, kCustom = 32, kPad = 34,
  kMean = 40, kSub = 41, kDiv = 42, kSqueeze = 43, kMaximum = 55, kMinimum = 57, kPadV2 = 60,
  kExpandDims = 70, kReduceMax = 82, kLeakyRelu = 98, kMirrorPad = 100, kQuantize = 114,
  kHardSwish = 117
};

// BuiltinOptions union members (1-based; 0 = none) of the options this importer reads.
enum OptionsType : uint8_t {
  kConv2dOptions = 1, kDepthwiseConv2dOptions = 2, kPool2dOptions = 5,
  kFullyConnectedOptions = 8, kSoftmaxOptions = 9, kConcatenationOptions = 10, kAddOptions = 11,
  kMulOptions = 21, kReducerOptions = 27, kSubOptions = 28, kDivOptions = 29,
  kMaximumMinimumOptions = 39, kLeakyReluOptions = 75, kMirrorPadOptions = 77
};

// Names of the builtin operators, for messages (schema order; "" for retired codes).
constexpr std::array<std::string_view, 128> kBuiltinNames = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC",
    "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE",
    "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS",
    "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND",
    "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX",
    "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM", "ARG_MAX", "MINIMUM",
    "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE", "SIN",
    "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG",
    "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD",
    "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK",
    "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD",
    "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS",
    "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK",
    "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND",
    "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL", ""};

std::string builtin_name(int32_t code) {
  if (code >= 0 && code < static_cast<int32_t>(kBuiltinNames.size()) &&
      !kBuiltinNames[static_cast<size_t>(code)].empty()) {
    return std::string(kBuiltinNames[static_cast<size_t>(code)]);
  }
  return fmt::format("builtin code {}", code);
}

// Any tensor larger than this is refused (2^31 elements: 8 GB of float).
constexpr int64_t kMaxElements = int64_t{1} << 31;
constexpr int64_t kMaxImageSide = 8192, kMaxImageChannels = 1024;

struct TfTensor {
  int index = 0;
  std::string name;
  std::vector<int64_t> shape;  // as the file says (NHWC for images)
  int8_t type = kFloat32;
  std::string_view data;       // constant data; empty for activations
  std::vector<float> scales;   // quantization; empty when not quantized
  std::vector<int64_t> zero_points;
  int64_t quantized_dimension = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  bool constant() const { return !data.empty(); }
};

size_t element_size(int8_t type) {
  switch (type) {
    case kFloat32: case kInt32: return 4;
    case kFloat16: case kInt16: return 2;
    case kUint8: case kInt8: return 1;
    case kInt64: return 8;
    default: return 0;
  }
}

// A value of the graph being built, per TFLite tensor.
struct Value {
  std::string name;              // "" until an operator (or the graph input) makes it
  bool channels_first = false;   // a 4-D NHWC tensor held as NCHW
  std::optional<std::vector<float>> constant;  // folded constant, TFLite layout
};

std::vector<int64_t> nhwc_to_nchw(const std::vector<int64_t>& s) { return {s[0], s[3], s[1], s[2]}; }

// NHWC axis -> NCHW axis.
int64_t nchw_axis(int64_t axis) {
  static constexpr std::array<int64_t, 4> kMap = {0, 2, 3, 1};
  return kMap[static_cast<size_t>(axis)];
}

Json int_array(const std::vector<int64_t>& values) {
  Json a = Json::array();
  for (int64_t v : values) a.push_back(Json(static_cast<long long>(v)));
  return a;
}

class Importer {
 public:
  Importer(std::string_view bytes, std::string source) : fb_(bytes, source), source_(std::move(source)) {}

  ImportedGraph run();

 private:
  [[noreturn]] void fail_op(std::string_view message) const {
    fail("{}: operator {} ({}): {}", source_, op_index_, op_name_, message);
  }
  template <typename... Args>
  void check_op(bool ok, fmt::format_string<Args...> format, Args&&... args) const {
    if (!ok) fail_op(fmt::format(format, std::forward<Args>(args)...));
  }

  void read_tensors(const Table& subgraph, const Vector& buffers);
  void add_input(const Vector& inputs);
  void add_operator(const Table& op, const Vector& opcodes);

  // Tensor `k` of the operator's inputs (-1 = optional, absent: nullptr).
  const TfTensor* input(const Vector& inputs, size_t k, bool optional = false) const;
  const TfTensor& output(const Vector& outputs) const;
  // The graph value of a tensor an earlier operator made.
  const Value& value(const TfTensor& t) const;
  // The float values of a constant tensor, TFLite layout (a DEQUANTIZE of a constant is one
  // too); null for activations.
  const std::vector<float>* constant_of(const TfTensor& t) const {
    const Value& v = values_[static_cast<size_t>(t.index)];
    return v.constant ? &*v.constant : nullptr;
  }
  // Float values of a constant tensor (dequantized), TFLite layout.
  std::vector<float> constant_floats(const TfTensor& t) const;
  std::vector<int64_t> constant_ints(const TfTensor& t) const;

  // Adds a node named after `base`, returns its output value name.
  std::string add_node(const std::string& base, const std::string& op,
                       std::vector<std::string> inputs, Json attrs = Json::object());
  void add_weight(const std::string& node, const std::string& param, Tensor tensor) {
    weights_.push_back({node + "." + param, std::move(tensor)});
  }
  // A constant node holding `values` of `shape`; returns its value name.
  std::string add_constant(const std::string& base, const std::vector<float>& values,
                           const std::vector<int64_t>& shape);
  // The fused activation of the options (NONE, RELU, RELU_N1_TO_1, RELU6, TANH) after `x`.
  std::string fused_activation(const std::string& x, const std::string& base, int8_t code);
  void set_output(const TfTensor& t, std::string name, bool channels_first) {
    values_[static_cast<size_t>(t.index)] = Value{std::move(name), channels_first, std::nullopt};
  }
  // The options table when the operator carries `expected` options (invalid Table otherwise).
  Table options(const Table& op, uint8_t expected) const;

  void conv2d(const Table& op, const Vector& in, const TfTensor& out, bool depthwise);
  void pool2d(const Table& op, const Vector& in, const TfTensor& out, const std::string& kind);
  void binary(const Table& op, const Vector& in, const TfTensor& out, const std::string& kind);
  void reshape(const Vector& in, const TfTensor& out);
  void fully_connected(const Table& op, const Vector& in, const TfTensor& out);
  void softmax(const Table& op, const Vector& in, const TfTensor& out);
  void concatenation(const Table& op, const Vector& in, const TfTensor& out);
  void reduce(const Table& op, const Vector& in, const TfTensor& out, const std::string& kind);
  void pad(const Table& op, const Vector& in, const TfTensor& out, int32_t code);
  void unary(const Vector& in, const TfTensor& out, const std::string& kind, Json attrs = Json::object());

  FlatBuffer fb_;
  std::string source_;
  std::vector<TfTensor> tensors_;
  std::vector<Value> values_;
  std::set<std::string> node_names_;
  GraphSpec spec_;
  NamedTensors weights_;
  Json preprocess_;
  int op_index_ = -1;
  std::string op_name_;
};

ImportedGraph Importer::run() {
  if (!fb_.has_identifier("TFL3")) {
    fail("{}: not a TFLite model (the FlatBuffer identifier is not \"TFL3\")", source_);
  }
  const Table model = fb_.root();
  const auto version = model.scalar<uint32_t>(field::kModelVersion, 0, "version");
  SCALPEL_CHECK(version == 3, "{}: TFLite schema version {}, scalpel reads version 3", source_, version);
  const Vector subgraphs = model.vector(field::kSubgraphs, "subgraphs");
  SCALPEL_CHECK(!subgraphs.empty(), "{}: the model has no subgraph", source_);
  const Table subgraph = subgraphs.table(0);
  const Vector buffers = model.vector(field::kBuffers, "buffers");
  read_tensors(subgraph, buffers);

  spec_.source = "tflite";
  spec_.name = std::string(subgraph.string(4, "name"));
  add_input(subgraph.vector(field::kInputs, "inputs"));

  const Vector opcodes = model.vector(field::kOperatorCodes, "operator_codes");
  const Vector operators = subgraph.vector(field::kOperators, "operators");
  for (size_t i = 0; i < operators.size(); ++i) {
    op_index_ = static_cast<int>(i);
    add_operator(operators.table(i), opcodes);
  }
  op_index_ = -1;

  const Vector outputs = subgraph.vector(field::kOutputs, "outputs");
  SCALPEL_CHECK(outputs.size() == 1, "{}: the model has {} outputs; scalpel imports one", source_,
                outputs.size());
  const int32_t out_index = outputs.scalar<int32_t>(0);
  SCALPEL_CHECK(out_index >= 0 && static_cast<size_t>(out_index) < tensors_.size(),
                "{}: output tensor {} does not exist", source_, out_index);
  const Value& out = values_[static_cast<size_t>(out_index)];
  SCALPEL_CHECK(!out.name.empty() && !out.constant, "{}: no operator makes the output tensor {} '{}'",
                source_, out_index, tensors_[static_cast<size_t>(out_index)].name);
  spec_.output = out.name;
  SCALPEL_CHECK(!spec_.nodes.empty(), "{}: the model has no operator", source_);

  ImportedGraph g;
  g.spec = std::move(spec_);
  g.weights = std::move(weights_);
  g.preprocess = std::move(preprocess_);
  return g;
}

void Importer::read_tensors(const Table& subgraph, const Vector& buffers) {
  const Vector tensors = subgraph.vector(field::kTensors, "tensors");
  tensors_.resize(tensors.size());
  values_.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Table t = tensors.table(i);
    TfTensor& tensor = tensors_[i];
    tensor.index = static_cast<int>(i);
    // The converter joins the names of fused TF ops with ';': the first names the result.
    const std::string_view name = t.string(field::kName, "name");
    tensor.name = std::string(name.substr(0, name.find(';')));
    const std::string what = fmt::format("{}: tensor {} '{}'", source_, i, tensor.name);
    const Vector shape = t.vector(field::kShape, "shape");
    SCALPEL_CHECK(shape.size() <= 8, "{} has {} dimensions", what, shape.size());
    int64_t numel = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      const int64_t dim = shape.scalar<int32_t>(d);
      SCALPEL_CHECK(dim >= 0, "{} has a negative dimension {} (dynamic shapes are not supported)",
                    what, dim);
      numel = dim == 0 ? 0 : numel;
      SCALPEL_CHECK(dim == 0 || numel <= kMaxElements / dim, "{}: shape is absurdly large", what);
      numel *= dim;
      tensor.shape.push_back(dim);
    }
    tensor.type = t.scalar<int8_t>(field::kType, kFloat32, "type");
    SCALPEL_CHECK(!t.has(field::kSparsity), "{} is sparse; sparse tensors are not supported", what);

    const uint32_t buffer = t.scalar<uint32_t>(field::kBuffer, 0, "buffer");
    if (buffer != 0) {
      SCALPEL_CHECK(buffer < buffers.size(), "{} names buffer {} of {}", what, buffer, buffers.size());
      const Table b = buffers.table(buffer);
      const auto offset = b.scalar<uint64_t>(field::kBufferOffset, 0, "offset");
      if (offset > 1) {
        const auto size = b.scalar<uint64_t>(field::kBufferSize, 0, "size");
        SCALPEL_CHECK(offset <= fb_.bytes().size() && size <= fb_.bytes().size() - offset,
                      "{}: its data [{}, +{}) lies outside the {} bytes of the file", what, offset,
                      size, fb_.bytes().size());
        tensor.data = fb_.bytes().substr(offset, size);
      } else {
        tensor.data = b.vector(field::kData, "data", 1).bytes();
      }
    }
    if (tensor.constant()) {
      const size_t size = element_size(tensor.type);
      SCALPEL_CHECK(size != 0, "{} has data of type {}, which scalpel does not read", what,
                    static_cast<int>(tensor.type));
      SCALPEL_CHECK(tensor.data.size() == static_cast<uint64_t>(numel) * size,
                    "{}: {} bytes of data for shape [{}] of {}-byte elements", what,
                    tensor.data.size(), fmt::join(tensor.shape, ", "), size);
    }

    const Table q = t.table(field::kQuantization, "quantization");
    if (q.valid()) {
      SCALPEL_CHECK(q.scalar<uint8_t>(field::kQuantDetailsType, 0, "details_type") == 0,
                    "{} uses custom quantization, which scalpel does not read", what);
      const Vector scales = q.vector(field::kScale, "scale");
      const Vector zeros = q.vector(field::kZeroPoint, "zero_point", 8);
      for (size_t k = 0; k < scales.size(); ++k) {
        const float s = scales.scalar<float>(k);
        SCALPEL_CHECK(std::isfinite(s), "{}: quantization scale {} is not finite", what, s);
        tensor.scales.push_back(s);
      }
      for (size_t k = 0; k < zeros.size(); ++k) tensor.zero_points.push_back(zeros.scalar<int64_t>(k));
      tensor.quantized_dimension = q.scalar<int32_t>(field::kQuantizedDimension, 0, "quantized_dimension");
      if (!tensor.scales.empty()) {
        SCALPEL_CHECK(tensor.zero_points.empty() || tensor.zero_points.size() == tensor.scales.size(),
                      "{}: {} scales but {} zero points", what, tensor.scales.size(),
                      tensor.zero_points.size());
        if (tensor.scales.size() > 1) {
          const int64_t qd = tensor.quantized_dimension;
          SCALPEL_CHECK(qd >= 0 && qd < static_cast<int64_t>(tensor.shape.size()) &&
                            tensor.shape[static_cast<size_t>(qd)] ==
                                static_cast<int64_t>(tensor.scales.size()),
                        "{}: {} per-channel scales along dimension {} of shape [{}]", what,
                        tensor.scales.size(), qd, fmt::join(tensor.shape, ", "));
        }
      }
    }
    // Float constants (quantized integers are dequantized; plain integers are shapes and axes).
    if (tensor.constant() && ((tensor.type != kInt32 && tensor.type != kInt64) || !tensor.scales.empty())) {
      values_[i].constant = constant_floats(tensor);
    }
  }
}

std::vector<float> Importer::constant_floats(const TfTensor& t) const {
  const size_t n = static_cast<size_t>(t.numel());
  const char* p = t.data.data();
  std::vector<double> raw(n);
  for (size_t i = 0; i < n; ++i) {
    switch (t.type) {
      case kFloat32: raw[i] = io_detail::load_unaligned<float>(p + 4 * i); break;
      case kFloat16: raw[i] = io_detail::half_to_float(io_detail::load_unaligned<uint16_t>(p + 2 * i)); break;
      case kInt32: raw[i] = io_detail::load_unaligned<int32_t>(p + 4 * i); break;
      case kInt64: raw[i] = static_cast<double>(io_detail::load_unaligned<int64_t>(p + 8 * i)); break;
      case kInt16: raw[i] = io_detail::load_unaligned<int16_t>(p + 2 * i); break;
      case kUint8: raw[i] = static_cast<uint8_t>(p[i]); break;
      case kInt8: raw[i] = static_cast<int8_t>(p[i]); break;
      default: fail("{}: tensor {} '{}' has an unsupported type {}", source_, t.index, t.name, t.type);
    }
  }
  std::vector<float> out(n);
  if (t.scales.empty() || t.type == kFloat32 || t.type == kFloat16) {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(raw[i]);
  } else {
    // Per-channel: the channel of element i along quantized_dimension.
    size_t inner = 1, channels = 1;
    if (t.scales.size() > 1) {
      const size_t qd = static_cast<size_t>(t.quantized_dimension);
      for (size_t d = qd + 1; d < t.shape.size(); ++d) inner *= static_cast<size_t>(t.shape[d]);
      channels = static_cast<size_t>(t.shape[qd]);
    }
    for (size_t i = 0; i < n; ++i) {
      const size_t c = channels == 1 ? 0 : (i / inner) % channels;
      const double zero = t.zero_points.empty() ? 0.0 : static_cast<double>(t.zero_points[c]);
      out[i] = static_cast<float>(t.scales[c] * (raw[i] - zero));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    SCALPEL_CHECK(std::isfinite(out[i]), "{}: tensor {} '{}' holds a non-finite value", source_,
                  t.index, t.name);
  }
  return out;
}

std::vector<int64_t> Importer::constant_ints(const TfTensor& t) const {
  if (!t.constant()) fail_op(fmt::format("tensor {} '{}' must be a constant", t.index, t.name));
  if (t.type != kInt32 && t.type != kInt64) {
    fail_op(fmt::format("tensor {} '{}' must hold integers", t.index, t.name));
  }
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i] = t.type == kInt32 ? io_detail::load_unaligned<int32_t>(t.data.data() + 4 * i)
                              : io_detail::load_unaligned<int64_t>(t.data.data() + 8 * i);
  }
  return out;
}

void Importer::add_input(const Vector& inputs) {
  SCALPEL_CHECK(inputs.size() == 1, "{}: the model has {} inputs; scalpel imports one image input",
                source_, inputs.size());
  const int32_t index = inputs.scalar<int32_t>(0);
  SCALPEL_CHECK(index >= 0 && static_cast<size_t>(index) < tensors_.size(),
                "{}: input tensor {} does not exist", source_, index);
  const TfTensor& t = tensors_[static_cast<size_t>(index)];
  SCALPEL_CHECK(t.shape.size() == 4 && !t.constant(),
                "{}: the input tensor '{}' of shape [{}] is not an NHWC image batch", source_, t.name,
                fmt::join(t.shape, ", "));
  // GraphModel runs the graph once on the declared size: refuse sizes no image has.
  SCALPEL_CHECK(t.shape[1] >= 1 && t.shape[1] <= kMaxImageSide && t.shape[2] >= 1 &&
                    t.shape[2] <= kMaxImageSide && t.shape[3] >= 1 && t.shape[3] <= kMaxImageChannels,
                "{}: the input '{}' of shape [{}] is not an image of at most {}x{} pixels and {} channels",
                source_, t.name, fmt::join(t.shape, ", "), kMaxImageSide, kMaxImageSide, kMaxImageChannels);
  spec_.input = "input";
  spec_.input_shape = {t.shape[3], t.shape[1], t.shape[2]};
  std::string x = spec_.input;
  node_names_.insert(x);

  if (t.type == kUint8 || t.type == kInt8) {
    SCALPEL_CHECK(t.scales.size() == 1, "{}: the quantized input '{}' has {} scales, expected one",
                  source_, t.name, t.scales.size());
    // Pixels p in 0..255 are stored as q = p + q_min; their real value is s (q - zero).
    const double s = t.scales[0];
    const double zero = t.zero_points.empty() ? 0.0 : static_cast<double>(t.zero_points[0]);
    const double q_min = t.type == kUint8 ? 0.0 : -128.0;
    const double center = zero - q_min;
    // The normalization x(p) whose range matches; then real = a x + b exactly.
    std::string norm = "none";
    double a = s, b = s * (q_min - zero);           // none: x = p
    if (std::abs(center - 127.5) <= 0.5) {           // tf: x = p / 127.5 - 1
      norm = "tf";
      a = 127.5 * s;
      b = s * (127.5 + q_min - zero);
    } else if (center == 0.0) {                      // unit: x = p / 255
      norm = "unit";
      a = 255.0 * s;
    }
    preprocess_ = Json::object();
    preprocess_["width"] = static_cast<long long>(t.shape[2]);
    preprocess_["height"] = static_cast<long long>(t.shape[1]);
    preprocess_["channels"] = static_cast<long long>(t.shape[3]);
    preprocess_["fit"] = "stretch";
    preprocess_["crop_fraction"] = 0.875;
    // TFLite's label_image example resizes with PIL's default (bicubic, antialiased).
    preprocess_["interp"] = "bicubic";
    preprocess_["normalize"] = norm;
    if (std::abs(a - 1.0) > 1e-7) {
      const std::string k = add_constant("input_scale_value", {static_cast<float>(a)}, {1});
      x = add_node("input_scale", "mul", {x, k});
    }
    if (std::abs(b) > 1e-7) {
      const std::string k = add_constant("input_shift_value", {static_cast<float>(b)}, {1});
      x = add_node("input_shift", "add", {x, k});
    }
  } else {
    SCALPEL_CHECK(t.type == kFloat32, "{}: the input '{}' has type {}; scalpel imports float32, "
                  "uint8 and int8 inputs", source_, t.name, static_cast<int>(t.type));
  }
  values_[static_cast<size_t>(index)] = Value{x, true, std::nullopt};
}

const TfTensor* Importer::input(const Vector& inputs, size_t k, bool optional) const {
  if (k >= inputs.size()) {
    if (optional) return nullptr;
    fail_op(fmt::format("has {} inputs, needs at least {}", inputs.size(), k + 1));
  }
  const int32_t index = inputs.scalar<int32_t>(k);
  if (index == -1 && optional) return nullptr;
  check_op(index >= 0 && static_cast<size_t>(index) < tensors_.size(),
           "input {} names tensor {}, the subgraph has {}", k, index, tensors_.size());
  return &tensors_[static_cast<size_t>(index)];
}

const TfTensor& Importer::output(const Vector& outputs) const {
  check_op(outputs.size() == 1, "has {} outputs, expected one", outputs.size());
  const int32_t index = outputs.scalar<int32_t>(0);
  check_op(index >= 0 && static_cast<size_t>(index) < tensors_.size(),
           "output names tensor {}, the subgraph has {}", index, tensors_.size());
  const TfTensor& t = tensors_[static_cast<size_t>(index)];
  const Value& v = values_[static_cast<size_t>(index)];
  check_op(!t.constant() && v.name.empty() && !v.constant,
           "output tensor {} '{}' is written twice (or is a constant)", index, t.name);
  return t;
}

const Value& Importer::value(const TfTensor& t) const {
  const Value& v = values_[static_cast<size_t>(t.index)];
  if (v.name.empty() && !v.constant) {
    fail_op(fmt::format("reads tensor {} '{}' before any operator writes it", t.index, t.name));
  }
  return v;
}

std::string Importer::add_node(const std::string& base, const std::string& op,
                               std::vector<std::string> inputs, Json attrs) {
  std::string name = graph_safe_name(base);
  if (node_names_.count(name) != 0) {
    int k = 2;
    while (node_names_.count(fmt::format("{}_{}", name, k)) != 0) ++k;
    name = fmt::format("{}_{}", name, k);
  }
  node_names_.insert(name);
  GraphNode node;
  node.name = name;
  node.op = op;
  node.inputs = std::move(inputs);
  node.output = name;
  node.attrs = std::move(attrs);
  spec_.nodes.push_back(std::move(node));
  return name;
}

std::string Importer::add_constant(const std::string& base, const std::vector<float>& values,
                                   const std::vector<int64_t>& shape) {
  Json attrs = Json::object();
  attrs["shape"] = int_array(shape);
  const std::string name = add_node(base, "constant", {}, std::move(attrs));
  add_weight(name, "value", Tensor::from_data(values.data(), Shape(shape)));
  return name;
}

std::string Importer::fused_activation(const std::string& x, const std::string& base, int8_t code) {
  switch (code) {
    case 0: return x;
    case 1: return add_node(base + "_relu", "relu", {x});
    case 2: {
      Json attrs = Json::object();
      attrs["min"] = -1.0;
      attrs["max"] = 1.0;
      return add_node(base + "_relu_n1_to_1", "clip", {x}, std::move(attrs));
    }
    case 3: return add_node(base + "_relu6", "relu6", {x});
    case 4: return add_node(base + "_tanh", "tanh", {x});
    default: fail_op(fmt::format("fused activation {} is not supported", static_cast<int>(code)));
  }
}

Table Importer::options(const Table& op, uint8_t expected) const {
  const auto type = op.scalar<uint8_t>(field::kOptionsType, 0, "builtin_options_type");
  if (type == 0) return {};
  check_op(type == expected, "carries options of union type {}, expected {}", type, expected);
  return op.table(field::kOptions, "builtin_options");
}

void Importer::add_operator(const Table& op, const Vector& opcodes) {
  const auto opcode_index = op.scalar<uint32_t>(field::kOpcodeIndex, 0, "opcode_index");
  op_name_ = "?";
  check_op(opcode_index < opcodes.size(), "names operator code {} of {}", opcode_index, opcodes.size());
  const Table code = opcodes.table(opcode_index);
  const int32_t builtin = std::max<int32_t>(
      code.scalar<int8_t>(field::kDeprecatedBuiltinCode, 0, "deprecated_builtin_code"),
      code.scalar<int32_t>(field::kBuiltinCode, 0, "builtin_code"));
  op_name_ = builtin_name(builtin);
  if (builtin == kCustom) {
    op_name_ = fmt::format("custom op '{}'", code.string(field::kCustomCode, "custom_code"));
    fail_op("custom operators are not supported");
  }
  const Vector in = op.vector(field::kOpInputs, "inputs");
  const TfTensor& out = output(op.vector(field::kOpOutputs, "outputs"));

  switch (builtin) {
    case kConv2d: return conv2d(op, in, out, false);
    case kDepthwiseConv2d: return conv2d(op, in, out, true);
    case kAveragePool2d: return pool2d(op, in, out, "avg_pool2d");
    case kMaxPool2d: return pool2d(op, in, out, "max_pool2d");
    case kAdd: return binary(op, in, out, "add");
    case kSub: return binary(op, in, out, "sub");
    case kMul: return binary(op, in, out, "mul");
    case kDiv: return binary(op, in, out, "div");
    case kMaximum: return binary(op, in, out, "max");
    case kMinimum: return binary(op, in, out, "min");
    case kReshape: case kSqueeze: case kExpandDims: return reshape(in, out);
    case kFullyConnected: return fully_connected(op, in, out);
    case kSoftmax: return softmax(op, in, out);
    case kConcatenation: return concatenation(op, in, out);
    case kMean: return reduce(op, in, out, "reduce_mean");
    case kReduceMax: return reduce(op, in, out, "reduce_max");
    case kPad: case kPadV2: case kMirrorPad: return pad(op, in, out, builtin);
    case kRelu: return unary(in, out, "relu");
    case kRelu6: return unary(in, out, "relu6");
    case kReluN1To1: {
      Json attrs = Json::object();
      attrs["min"] = -1.0;
      attrs["max"] = 1.0;
      return unary(in, out, "clip", std::move(attrs));
    }
    case kLogistic: return unary(in, out, "sigmoid");
    case kTanh: return unary(in, out, "tanh");
    case kHardSwish: return unary(in, out, "hard_swish");
    case kLeakyRelu: {
      const Table o = options(op, kLeakyReluOptions);
      Json attrs = Json::object();
      attrs["slope"] = o.valid() ? o.scalar<float>(0, 0.0f, "alpha") : 0.0f;
      return unary(in, out, "leaky_relu", std::move(attrs));
    }
    case kQuantize: case kDequantize: {
      // Float execution: the value passes through (a dequantized constant stays a constant).
      const TfTensor& x = *input(in, 0);
      Value& v = values_[static_cast<size_t>(out.index)];
      if (const std::vector<float>* c = constant_of(x)) {
        v.constant = *c;
      } else {
        v = value(x);
      }
      return;
    }
    default: fail_op("this operator is not supported by scalpel's TFLite importer (docs/tflite.md)");
  }
}

void Importer::unary(const Vector& in, const TfTensor& out, const std::string& kind, Json attrs) {
  const Value& x = value(*input(in, 0));
  check_op(!x.constant, "applies to a constant");
  set_output(out, add_node(out.name, kind, {x.name}, std::move(attrs)), x.channels_first);
}

void Importer::conv2d(const Table& op, const Vector& in, const TfTensor& out, bool depthwise) {
  const TfTensor& x_tensor = *input(in, 0);
  const Value& x = value(x_tensor);
  const TfTensor& filter = *input(in, 1);
  const TfTensor* bias = input(in, 2, true);
  check_op(x.channels_first && x_tensor.shape.size() == 4, "input is not a 4-D NHWC tensor");
  check_op(constant_of(filter) != nullptr && filter.shape.size() == 4,
           "the filter must be a constant 4-D tensor");
  const Table o = options(op, depthwise ? kDepthwiseConv2dOptions : kConv2dOptions);
  check_op(o.valid(), "has no options");
  // Conv2DOptions: padding 0, stride_w 1, stride_h 2, activation 3, dilation_w 4, dilation_h 5;
  // DepthwiseConv2DOptions: the same with depth_multiplier at 3 (activation 4, dilations 5, 6).
  const int shift = depthwise ? 1 : 0;
  const auto padding = o.scalar<int8_t>(0, 0, "padding");
  const int64_t stride_w = o.scalar<int32_t>(1, 0, "stride_w");
  const int64_t stride_h = o.scalar<int32_t>(2, 0, "stride_h");
  const auto activation = o.scalar<int8_t>(3 + shift, 0, "fused_activation_function");
  const int64_t dilation_w = o.scalar<int32_t>(4 + shift, 1, "dilation_w_factor");
  const int64_t dilation_h = o.scalar<int32_t>(5 + shift, 1, "dilation_h_factor");
  check_op(stride_w >= 1 && stride_h >= 1 && dilation_w >= 1 && dilation_h >= 1 && stride_w <= 1024 &&
               stride_h <= 1024 && dilation_w <= 1024 && dilation_h <= 1024,
           "strides {}x{} and dilations {}x{} must lie in 1..1024", stride_h, stride_w, dilation_h,
           dilation_w);
  check_op(padding == 0 || padding == 1, "unknown padding {}", padding);

  const int64_t in_channels = x_tensor.shape[3];
  const std::vector<int64_t>& f = filter.shape;
  const int64_t kh = f[1], kw = f[2];
  check_op(kh >= 1 && kw >= 1, "empty filter");
  const std::vector<float>& w = *constant_of(filter);
  Tensor weight;
  int64_t out_channels = 0, groups = 1;
  if (depthwise) {
    // [1, kh, kw, in * mult] -> [in * mult, 1, kh, kw]
    out_channels = f[3];
    check_op(f[0] == 1 && in_channels > 0 && out_channels > 0 && out_channels % in_channels == 0,
             "filter [{}] does not fit {} input channels", fmt::join(f, ", "), in_channels);
    groups = in_channels;
    weight = Tensor::from_data(w.data(), {kh, kw, out_channels}).permute({2, 0, 1}).contiguous()
                 .reshape({out_channels, 1, kh, kw});
  } else {
    // [out, kh, kw, in / groups] -> [out, in / groups, kh, kw]
    out_channels = f[0];
    check_op(in_channels > 0 && out_channels > 0 && f[3] > 0 && in_channels % f[3] == 0 &&
                 out_channels % (in_channels / f[3]) == 0,
             "filter [{}] does not fit {} input channels", fmt::join(f, ", "), in_channels);
    groups = in_channels / f[3];
    weight = Tensor::from_data(w.data(), Shape(f)).permute({0, 3, 1, 2}).contiguous();
  }
  Json attrs = Json::object();
  attrs["in_channels"] = static_cast<long long>(in_channels);
  attrs["out_channels"] = static_cast<long long>(out_channels);
  attrs["kernel"] = int_array({kh, kw});
  attrs["stride"] = int_array({stride_h, stride_w});
  attrs["dilation"] = int_array({dilation_h, dilation_w});
  attrs["groups"] = static_cast<long long>(groups);
  if (padding == 0) {
    attrs["same"] = true;
  } else {
    attrs["pads"] = int_array({0, 0, 0, 0});
  }
  attrs["bias"] = bias != nullptr;
  const std::string node = add_node(out.name, "conv2d", {x.name}, std::move(attrs));
  add_weight(node, "weight", std::move(weight));
  if (bias != nullptr) {
    check_op(constant_of(*bias) != nullptr && bias->numel() == out_channels,
             "the bias must be a constant of {} values", out_channels);
    const std::vector<float>& b = *constant_of(*bias);
    add_weight(node, "bias", Tensor::from_data(b.data(), {out_channels}));
  }
  set_output(out, fused_activation(node, out.name, activation), true);
}

void Importer::pool2d(const Table& op, const Vector& in, const TfTensor& out, const std::string& kind) {
  const TfTensor& x_tensor = *input(in, 0);
  const Value& x = value(x_tensor);
  check_op(x.channels_first && x_tensor.shape.size() == 4, "input is not a 4-D NHWC tensor");
  const Table o = options(op, kPool2dOptions);
  check_op(o.valid(), "has no options");
  // Pool2DOptions: padding 0, stride_w 1, stride_h 2, filter_width 3, filter_height 4, activation 5.
  const auto padding = o.scalar<int8_t>(0, 0, "padding");
  const int64_t stride_w = o.scalar<int32_t>(1, 0, "stride_w");
  const int64_t stride_h = o.scalar<int32_t>(2, 0, "stride_h");
  const int64_t filter_w = o.scalar<int32_t>(3, 0, "filter_width");
  const int64_t filter_h = o.scalar<int32_t>(4, 0, "filter_height");
  check_op(stride_w >= 1 && stride_h >= 1 && filter_w >= 1 && filter_h >= 1 && stride_w <= 4096 &&
               stride_h <= 4096 && filter_w <= 4096 && filter_h <= 4096,
           "strides {}x{} and window {}x{} must lie in 1..4096", stride_h, stride_w, filter_h, filter_w);
  check_op(padding == 0 || padding == 1, "unknown padding {}", padding);
  Json attrs = Json::object();
  attrs["kernel"] = int_array({filter_h, filter_w});
  attrs["stride"] = int_array({stride_h, stride_w});
  if (padding == 0) {
    attrs["same"] = true;
  } else {
    attrs["pads"] = int_array({0, 0, 0, 0});
  }
  // TFLite averages the window's pixels inside the image only.
  if (kind == "avg_pool2d") attrs["count_include_pad"] = false;
  const std::string node = add_node(out.name, kind, {x.name}, std::move(attrs));
  set_output(out, fused_activation(node, out.name, o.scalar<int8_t>(5, 0, "fused_activation_function")),
             true);
}

void Importer::binary(const Table& op, const Vector& in, const TfTensor& out, const std::string& kind) {
  const TfTensor* t[2] = {input(in, 0), input(in, 1)};
  const Value* v[2] = {&value(*t[0]), &value(*t[1])};
  check_op(!(v[0]->constant && v[1]->constant), "both operands are constants");
  const bool channels_first = v[0]->channels_first || v[1]->channels_first;
  std::string names[2];
  for (int k = 0; k < 2; ++k) {
    const TfTensor& tk = *t[k];
    if (v[k]->constant) {
      // NumPy broadcasting against an NCHW operand: pad the constant to 4-D, then to NCHW.
      std::vector<int64_t> shape = tk.shape;
      Tensor c = Tensor::from_data(v[k]->constant->data(), Shape(shape));
      if (channels_first) {
        check_op(shape.size() <= 4, "constant operand of rank {}", shape.size());
        while (shape.size() < 4) shape.insert(shape.begin(), 1);
        c = c.reshape(Shape(shape)).permute({0, 3, 1, 2}).contiguous();
        shape = nhwc_to_nchw(shape);
      }
      std::vector<float> values(c.data<float>(), c.data<float>() + c.numel());
      names[k] = add_constant(out.name + "_constant", values, shape);
    } else {
      check_op(v[k]->channels_first == channels_first || tk.shape.size() == 0,
               "mixes a 4-D NHWC operand with one of rank {}", tk.shape.size());
      names[k] = v[k]->name;
    }
  }
  const std::string node = add_node(out.name, kind, {names[0], names[1]});
  int8_t activation = 0;
  const auto type = op.scalar<uint8_t>(field::kOptionsType, 0, "builtin_options_type");
  if (kind == "add" || kind == "sub" || kind == "mul" || kind == "div") {
    const uint8_t expected = kind == "add" ? kAddOptions : kind == "sub" ? kSubOptions
                             : kind == "mul" ? kMulOptions : kDivOptions;
    const Table o = options(op, expected);
    if (o.valid()) activation = o.scalar<int8_t>(0, 0, "fused_activation_function");
  } else {
    check_op(type == 0 || type == kMaximumMinimumOptions, "carries options of union type {}", type);
  }
  set_output(out, fused_activation(node, out.name, activation), channels_first);
}

void Importer::reshape(const Vector& in, const TfTensor& out) {
  // RESHAPE, SQUEEZE and EXPAND_DIMS: the output tensor states the static shape.
  const TfTensor& x_tensor = *input(in, 0);
  const Value& x = value(x_tensor);
  check_op(!x.constant, "reshapes a constant");
  const std::vector<int64_t>& s = x_tensor.shape;
  const std::vector<int64_t>& o = out.shape;
  check_op(x_tensor.numel() == out.numel(), "reshapes [{}] into [{}]", fmt::join(s, ", "), fmt::join(o, ", "));
  check_op(!o.empty(), "output has rank 0");
  std::string name = x.name;
  // An NCHW map larger than 1x1 goes back to NHWC so the elements keep TFLite's order.
  if (x.channels_first && s[1] * s[2] != 1) {
    Json attrs = Json::object();
    attrs["perm"] = int_array({0, 2, 3, 1});
    name = add_node(out.name + "_to_nhwc", "transpose", {name}, std::move(attrs));
  }
  std::vector<int64_t> shape = o;
  bool channels_first = false, back_to_nchw = false;
  if (o.size() == 4) {
    channels_first = true;
    if (o[1] * o[2] == 1) {
      shape = nhwc_to_nchw(o);  // a 1x1 map: NHWC and NCHW hold the same element order
    } else {
      back_to_nchw = true;
    }
  }
  if (!s.empty() && o[0] == s[0]) shape[0] = 0;  // the batch dimension follows the input
  Json attrs = Json::object();
  attrs["shape"] = int_array(shape);
  name = add_node(out.name, "reshape", {name}, std::move(attrs));
  if (back_to_nchw) {
    Json perm = Json::object();
    perm["perm"] = int_array({0, 3, 1, 2});
    name = add_node(out.name + "_to_nchw", "transpose", {name}, std::move(perm));
  }
  set_output(out, name, channels_first);
}

void Importer::fully_connected(const Table& op, const Vector& in, const TfTensor& out) {
  const TfTensor& x_tensor = *input(in, 0);
  const Value& x = value(x_tensor);
  const TfTensor& weights = *input(in, 1);
  const TfTensor* bias = input(in, 2, true);
  check_op(constant_of(weights) != nullptr && weights.shape.size() == 2,
           "the weights must be a constant 2-D tensor");
  const int64_t out_features = weights.shape[0], in_features = weights.shape[1];
  check_op(in_features > 0 && x_tensor.numel() % in_features == 0, "input [{}] does not fit weights [{}]",
           fmt::join(x_tensor.shape, ", "), fmt::join(weights.shape, ", "));
  const Table o = options(op, kFullyConnectedOptions);
  int8_t activation = 0;
  if (o.valid()) {
    // FullyConnectedOptions: activation 0, weights_format 1, keep_num_dims 2.
    activation = o.scalar<int8_t>(0, 0, "fused_activation_function");
    check_op(o.scalar<int8_t>(1, 0, "weights_format") == 0, "shuffled weights are not supported");
    check_op(o.scalar<uint8_t>(2, 0, "keep_num_dims") == 0 || x_tensor.shape.size() == 2,
             "keep_num_dims is not supported");
  }
  std::string name = x.name;
  if (x_tensor.shape.size() != 2) {
    if (x.channels_first && x_tensor.shape[1] * x_tensor.shape[2] != 1) {
      Json attrs = Json::object();
      attrs["perm"] = int_array({0, 2, 3, 1});
      name = add_node(out.name + "_to_nhwc", "transpose", {name}, std::move(attrs));
    }
    Json attrs = Json::object();
    attrs["shape"] = int_array({-1, in_features});
    name = add_node(out.name + "_flatten", "reshape", {name}, std::move(attrs));
  }
  Json attrs = Json::object();
  attrs["in_features"] = static_cast<long long>(in_features);
  attrs["out_features"] = static_cast<long long>(out_features);
  attrs["bias"] = bias != nullptr;
  const std::string node = add_node(out.name, "linear", {name}, std::move(attrs));
  const std::vector<float>& w = *constant_of(weights);
  add_weight(node, "weight", Tensor::from_data(w.data(), {out_features, in_features}));
  if (bias != nullptr) {
    check_op(constant_of(*bias) != nullptr && bias->numel() == out_features,
             "the bias must be a constant of {} values", out_features);
    const std::vector<float>& b = *constant_of(*bias);
    add_weight(node, "bias", Tensor::from_data(b.data(), {out_features}));
  }
  set_output(out, fused_activation(node, out.name, activation), false);
}

void Importer::softmax(const Table& op, const Vector& in, const TfTensor& out) {
  const TfTensor& x_tensor = *input(in, 0);
  const Value& x = value(x_tensor);
  check_op(!x.constant && !x_tensor.shape.empty(), "needs a non-constant input of rank 1 or more");
  const Table o = options(op, kSoftmaxOptions);
  const float beta = o.valid() ? o.scalar<float>(0, 1.0f, "beta") : 1.0f;
  check_op(std::isfinite(beta) && beta > 0, "beta {} must be positive", beta);
  std::string name = x.name;
  if (beta != 1.0f) {
    const std::string k = add_constant(out.name + "_beta", {beta}, {1});
    name = add_node(out.name + "_scaled", "mul", {name, k});
  }
  Json attrs = Json::object();
  // TFLite's last axis: the channels (axis 1 of NCHW) of an image-shaped tensor.
  attrs["axis"] = x.channels_first ? 1 : static_cast<long long>(x_tensor.shape.size()) - 1;
  set_output(out, add_node(out.name, "softmax", {name}, std::move(attrs)), x.channels_first);
}

void Importer::concatenation(const Table& op, const Vector& in, const TfTensor& out) {
  const Table o = options(op, kConcatenationOptions);
  check_op(o.valid(), "has no options");
  int64_t axis = o.scalar<int32_t>(0, 0, "axis");
  const int64_t rank = static_cast<int64_t>(out.shape.size());
  if (axis < 0) axis += rank;
  check_op(axis >= 0 && axis < rank, "axis {} is outside rank {}", o.scalar<int32_t>(0, 0, "axis"), rank);
  check_op(!in.empty(), "has no inputs");
  std::vector<std::string> names;
  bool channels_first = false;
  for (size_t k = 0; k < in.size(); ++k) {
    const Value& v = value(*input(in, k));
    check_op(!v.constant, "concatenates a constant");
    if (k == 0) channels_first = v.channels_first;
    check_op(v.channels_first == channels_first, "mixes 4-D NHWC inputs with others");
    names.push_back(v.name);
  }
  Json attrs = Json::object();
  attrs["axis"] = static_cast<long long>(channels_first ? nchw_axis(axis) : axis);
  const std::string node = add_node(out.name, "concat", std::move(names), std::move(attrs));
  set_output(out, fused_activation(node, out.name, o.scalar<int8_t>(1, 0, "fused_activation_function")),
             channels_first);
}

void Importer::reduce(const Table& op, const Vector& in, const TfTensor& out, const std::string& kind) {
  const TfTensor& x_tensor = *input(in, 0);
  const Value& x = value(x_tensor);
  check_op(!x.constant, "reduces a constant");
  const Table o = options(op, kReducerOptions);
  const bool keep_dims = o.valid() && o.scalar<uint8_t>(0, 0, "keep_dims") != 0;
  const int64_t rank = static_cast<int64_t>(x_tensor.shape.size());
  std::set<int64_t> axes;
  for (int64_t a : constant_ints(*input(in, 1))) {
    const int64_t axis = a < 0 ? a + rank : a;
    check_op(axis >= 0 && axis < rank, "axis {} is outside rank {}", a, rank);
    axes.insert(x.channels_first ? nchw_axis(axis) : axis);
  }
  bool channels_first = x.channels_first && keep_dims;
  if (x.channels_first && !keep_dims) {
    // The kept axes must come out in TFLite's order: NCHW minus the reduced axes equals NHWC
    // minus them unless the channels and a spatial axis both remain.
    const bool keeps_channels = axes.count(1) == 0;
    const bool keeps_space = axes.count(2) == 0 || axes.count(3) == 0;
    check_op(!(keeps_channels && keeps_space), "reducing NHWC axes that keep both channels and space "
             "is not supported");
  }
  Json attrs = Json::object();
  attrs["axes"] = int_array(std::vector<int64_t>(axes.begin(), axes.end()));
  attrs["keepdims"] = keep_dims;
  set_output(out, add_node(out.name, kind, {x.name}, std::move(attrs)), channels_first);
}

void Importer::pad(const Table& op, const Vector& in, const TfTensor& out, int32_t code) {
  const TfTensor& x_tensor = *input(in, 0);
  const Value& x = value(x_tensor);
  check_op(x.channels_first && x_tensor.shape.size() == 4, "pads a tensor that is not a 4-D NHWC image");
  const std::vector<int64_t> p = constant_ints(*input(in, 1));
  check_op(p.size() == 8, "paddings of {} values, expected [4, 2]", p.size());
  check_op(p[0] == 0 && p[1] == 0 && p[6] == 0 && p[7] == 0, "pads the batch or the channels");
  for (int64_t v : p) check_op(v >= 0 && v <= 4096, "padding {} must lie in 0..4096", v);
  Json attrs = Json::object();
  attrs["pads"] = int_array({p[2], p[4], p[3], p[5]});  // top, left, bottom, right
  if (code == kPadV2) {
    const TfTensor* value_tensor = input(in, 2, true);
    if (value_tensor != nullptr) {
      const Value& v = values_[static_cast<size_t>(value_tensor->index)];
      check_op(v.constant && v.constant->size() == 1, "the pad value must be a scalar constant");
      attrs["value"] = static_cast<double>((*v.constant)[0]);
    }
  } else if (code == kMirrorPad) {
    const Table o = options(op, kMirrorPadOptions);
    check_op(!o.valid() || o.scalar<int8_t>(0, 0, "mode") == 0, "SYMMETRIC mirror padding is not supported");
    attrs["mode"] = "reflect";
  }
  set_output(out, add_node(out.name, "pad", {x.name}, std::move(attrs)), true);
}

}  // namespace

ImportedGraph import_tflite(std::string_view bytes, const std::string& source) {
  return Importer(bytes, source).run();
}

ImportedGraph import_tflite_file(const std::string& path) {
  const MappedFile file(path);
  return import_tflite(file.bytes(), path);
}

}  // namespace scalpel::models
