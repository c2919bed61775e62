#include "models/import/onnx.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>

#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/io/element_convert.h"
#include "tensor/io/mapped_file.h"
#include "tensor/io/protobuf.h"
#include "tensor/ops.h"

namespace scalpel::models {

namespace {

// More elements than this in one tensor is an absurd size, refused before allocating.
constexpr int64_t kMaxElements = int64_t{1} << 31;
// Tensors made at import from a few bytes (ConstantOfShape) and sizes a file asks for (Resize,
// Pad): beyond these a small file would make scalpel allocate gigabytes.
constexpr int64_t kMaxFoldedElements = int64_t{1} << 26;
constexpr int64_t kMaxSpatialSize = int64_t{1} << 16;

// TensorProto.DataType values.
enum OnnxType : int {
  kFloat = 1, kUint8 = 2, kInt8 = 3, kUint16 = 4, kInt16 = 5, kInt32 = 6, kInt64 = 7,
  kString = 8, kBool = 9, kFloat16 = 10, kDouble = 11, kUint32 = 12, kUint64 = 13,
  kBfloat16 = 16,
};

std::string onnx_type_name(int type) {
  static const char* const names[] = {"UNDEFINED", "FLOAT",  "UINT8",     "INT8",       "UINT16",
                                      "INT16",     "INT32",  "INT64",     "STRING",     "BOOL",
                                      "FLOAT16",   "DOUBLE", "UINT32",    "UINT64",     "COMPLEX64",
                                      "COMPLEX128", "BFLOAT16"};
  if (type >= 0 && type < static_cast<int>(std::size(names))) return names[type];
  return fmt::format("type {}", type);
}

size_t onnx_type_size(int type) {
  switch (type) {
    case kFloat: case kInt32: case kUint32: return 4;
    case kUint8: case kInt8: case kBool: return 1;
    case kUint16: case kInt16: case kFloat16: case kBfloat16: return 2;
    case kInt64: case kDouble: case kUint64: return 8;
    default: return 0;
  }
}

bool onnx_type_is_float(int type) {
  return type == kFloat || type == kDouble || type == kFloat16 || type == kBfloat16;
}

// ---- the parsed protobuf messages (only the fields the importer reads) ----

struct Attr {
  std::string name;
  int type = 0;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

struct Node {
  std::string name, op_type, domain;
  std::vector<std::string> inputs, outputs;
  std::vector<Attr> attrs;

  const Attr* find(std::string_view key) const {
    for (const Attr& a : attrs) {
      if (a.name == key) return &a;
    }
    return nullptr;
  }
  int64_t i(std::string_view key, int64_t fallback) const {
    const Attr* a = find(key);
    return a ? a->i : fallback;
  }
  float f(std::string_view key, float fallback) const {
    const Attr* a = find(key);
    return a ? a->f : fallback;
  }
  std::string s(std::string_view key, std::string fallback) const {
    const Attr* a = find(key);
    return a ? a->s : fallback;
  }
  std::vector<int64_t> ints(std::string_view key, std::vector<int64_t> fallback = {}) const {
    const Attr* a = find(key);
    return a ? a->ints : fallback;
  }
};

struct ValueInfo {
  std::string name;
  int elem_type = 0;
  bool has_shape = false;
  std::vector<int64_t> dims;         // -1 where the dimension is a parameter or unset
  std::vector<std::string> params;   // dim_param ("N", "batch"), "" when none
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  NamedTensors initializers;
  std::vector<ValueInfo> inputs, outputs;
};

struct OnnxModel {
  int64_t opset = 0;
  bool has_graph = false;
  Graph graph;
};

// Reads ModelProto and its parts; external data is looked up in `folder`.
class Parser {
 public:
  Parser(std::string source, std::string folder) : source_(std::move(source)), folder_(std::move(folder)) {}

  OnnxModel model(std::string_view bytes) {
    ProtoReader r(bytes, source_);
    OnnxModel m;
    bool default_opset = false, any_opset = false;
    int64_t ir_version = 0;
    while (r.next()) {
      switch (r.field()) {
        case 1: ir_version = r.int64(); break;
        case 7:
          m.graph = graph(r.message());
          m.has_graph = true;
          break;
        case 8: {  // OperatorSetIdProto
          ProtoReader o = r.message();
          std::string domain;
          int64_t version = 0;
          while (o.next()) {
            if (o.field() == 1) domain = o.string();
            if (o.field() == 2) version = o.int64();
          }
          any_opset = true;
          if (domain.empty() || domain == "ai.onnx") {
            m.opset = version;
            default_opset = true;
          }
          break;
        }
        default: break;
      }
    }
    if (!default_opset) {
      // Files of IR version 3 on name their opsets (after the graph: a file cut there is short).
      SCALPEL_CHECK(ir_version < 3 || any_opset, "{}: no opset_import (truncated file?)", source_);
      m.opset = 1;
    }
    return m;
  }

  OnnxTensor tensor(ProtoReader r) {
    const size_t start = r.field_offset();
    OnnxTensor out;
    std::vector<int64_t> dims, int32_data, int64_data;
    std::vector<uint64_t> uint64_data;
    std::vector<float> float_data;
    std::vector<double> double_data;
    std::string_view raw;
    bool has_raw = false, has_strings = false, external = false;
    std::vector<std::pair<std::string, std::string>> external_data;
    while (r.next()) {
      switch (r.field()) {
        case 1: r.append_int64s(dims); break;
        case 2: out.data_type = r.int32(); break;
        case 3: fail("{}: tensor at offset {}: segmented tensors are not supported", source_, start);
        case 4: r.append_floats(float_data); break;
        case 5: r.append_int64s(int32_data); break;
        case 6: has_strings = true; break;
        case 7: r.append_int64s(int64_data); break;
        case 8: out.name = r.string(); break;
        case 9: raw = r.bytes(); has_raw = true; break;
        case 10: r.append_doubles(double_data); break;
        case 11: r.append_uint64s(uint64_data); break;
        case 13: {
          ProtoReader e = r.message();
          std::string key, value;
          while (e.next()) {
            if (e.field() == 1) key = e.string();
            if (e.field() == 2) value = e.string();
          }
          external_data.emplace_back(key, value);
          break;
        }
        case 14: external = r.int32() == 1; break;
        default: break;
      }
    }
    const std::string what = out.name.empty() ? fmt::format("tensor at offset {}", start)
                                              : fmt::format("tensor '{}'", out.name);
    const size_t element_size = onnx_type_size(out.data_type);
    if (element_size == 0 || has_strings) {
      fail("{}: {}: data type {} is not supported", source_, what, onnx_type_name(out.data_type));
    }
    int64_t numel = 1;
    for (const int64_t d : dims) {
      SCALPEL_CHECK(d >= 0, "{}: {}: negative dimension {} in {}", source_, what, d, shape_str(dims));
      if (d != 0 && numel > kMaxElements / d) {
        fail("{}: {}: absurd size {} (more than {} elements)", source_, what, shape_str(dims), kMaxElements);
      }
      numel *= d;
    }
    const bool floating = onnx_type_is_float(out.data_type);
    Tensor t = Tensor::empty(dims, floating ? DType::F32 : DType::I64);
    std::unique_ptr<MappedFile> mapped;
    if (external) {
      raw = external_bytes(external_data, what, mapped);
      has_raw = true;
    }
    if (has_raw) {
      const uint64_t expected = static_cast<uint64_t>(numel) * element_size;
      if (raw.size() != expected) {
        fail("{}: {}: {} {} needs {} bytes of data, found {}", source_, what, shape_str(dims),
             onnx_type_name(out.data_type), expected, raw.size());
      }
      for (int64_t k = 0; k < numel; ++k) {
        const char* p = raw.data() + k * element_size;
        set_element(t, k, out.data_type, p);
      }
      out.value = t;
      return out;
    }
    // The typed fields: float_data, double_data, int64_data, uint64_data (UINT32 and UINT64),
    // int32_data (every narrower integer, bool, and float16 / bfloat16 as their 16 bits).
    size_t count = 0;
    switch (out.data_type) {
      case kFloat: count = float_data.size(); break;
      case kDouble: count = double_data.size(); break;
      case kInt64: count = int64_data.size(); break;
      case kUint32: case kUint64: count = uint64_data.size(); break;
      default: count = int32_data.size(); break;
    }
    if (count != static_cast<size_t>(numel)) {
      fail("{}: {}: {} {} needs {} values, found {}", source_, what, shape_str(dims),
           onnx_type_name(out.data_type), numel, count);
    }
    for (int64_t k = 0; k < numel; ++k) {
      switch (out.data_type) {
        case kFloat: t.data<float>()[k] = float_data[k]; break;
        case kDouble: t.data<float>()[k] = static_cast<float>(double_data[k]); break;
        case kFloat16: t.data<float>()[k] = io_detail::half_to_float(static_cast<uint16_t>(int32_data[k])); break;
        case kBfloat16: t.data<float>()[k] = io_detail::bf16_to_float(static_cast<uint16_t>(int32_data[k])); break;
        case kInt64: t.data<int64_t>()[k] = int64_data[k]; break;
        case kUint32: case kUint64: t.data<int64_t>()[k] = static_cast<int64_t>(uint64_data[k]); break;
        default: t.data<int64_t>()[k] = int32_data[k]; break;
      }
    }
    out.value = t;
    return out;
  }

  Attr attribute(ProtoReader r) {
    Attr a;
    while (r.next()) {
      switch (r.field()) {
        case 1: a.name = r.string(); break;
        case 20: a.type = r.int32(); break;
        case 2: a.f = r.float32(); break;
        case 3: a.i = r.int64(); break;
        case 4: a.s = r.string(); break;
        case 5: a.t = tensor(r.message()).value; break;
        case 7: r.append_floats(a.floats); break;
        case 8: r.append_int64s(a.ints); break;
        case 9: a.strings.push_back(r.string()); break;
        default: break;  // graphs, sparse tensors, type protos: no op we translate uses them
      }
    }
    return a;
  }

  Node node(ProtoReader r) {
    Node n;
    while (r.next()) {
      switch (r.field()) {
        case 1: n.inputs.push_back(r.string()); break;
        case 2: n.outputs.push_back(r.string()); break;
        case 3: n.name = r.string(); break;
        case 4: n.op_type = r.string(); break;
        case 7: n.domain = r.string(); break;
        case 5: n.attrs.push_back(attribute(r.message())); break;
        default: break;
      }
    }
    return n;
  }

  ValueInfo value_info(ProtoReader r) {
    ValueInfo v;
    while (r.next()) {
      if (r.field() == 1) v.name = r.string();
      if (r.field() != 2) continue;
      ProtoReader type = r.message();  // TypeProto
      while (type.next()) {
        if (type.field() != 1) continue;  // tensor_type
        ProtoReader tensor_type = type.message();
        while (tensor_type.next()) {
          if (tensor_type.field() == 1) v.elem_type = tensor_type.int32();
          if (tensor_type.field() != 2) continue;
          v.has_shape = true;
          ProtoReader shape = tensor_type.message();
          while (shape.next()) {
            if (shape.field() != 1) continue;
            ProtoReader dim = shape.message();
            int64_t value = -1;
            std::string param;
            while (dim.next()) {
              if (dim.field() == 1) value = dim.int64();
              if (dim.field() == 2) param = dim.string();
            }
            v.dims.push_back(value);
            v.params.push_back(param);
          }
        }
      }
    }
    return v;
  }

  Graph graph(ProtoReader r) {
    Graph g;
    while (r.next()) {
      switch (r.field()) {
        case 1: g.nodes.push_back(node(r.message())); break;
        case 2: g.name = r.string(); break;
        case 5: {
          OnnxTensor t = tensor(r.message());
          g.initializers.emplace_back(t.name, t.value);
          break;
        }
        case 15: fail("{}: sparse initializers (offset {}) are not supported", source_, r.field_offset());
        case 11: g.inputs.push_back(value_info(r.message())); break;
        case 12: g.outputs.push_back(value_info(r.message())); break;
        default: break;
      }
    }
    return g;
  }

 private:
  static void set_element(Tensor& t, int64_t k, int type, const char* p) {
    using io_detail::load_unaligned;
    switch (type) {
      case kFloat: t.data<float>()[k] = load_unaligned<float>(p); break;
      case kDouble: t.data<float>()[k] = static_cast<float>(load_unaligned<double>(p)); break;
      case kFloat16: t.data<float>()[k] = io_detail::half_to_float(load_unaligned<uint16_t>(p)); break;
      case kBfloat16: t.data<float>()[k] = io_detail::bf16_to_float(load_unaligned<uint16_t>(p)); break;
      case kUint8: case kBool: t.data<int64_t>()[k] = static_cast<uint8_t>(*p); break;
      case kInt8: t.data<int64_t>()[k] = static_cast<int8_t>(*p); break;
      case kUint16: t.data<int64_t>()[k] = load_unaligned<uint16_t>(p); break;
      case kInt16: t.data<int64_t>()[k] = load_unaligned<int16_t>(p); break;
      case kInt32: t.data<int64_t>()[k] = load_unaligned<int32_t>(p); break;
      case kUint32: t.data<int64_t>()[k] = load_unaligned<uint32_t>(p); break;
      case kInt64: case kUint64: t.data<int64_t>()[k] = load_unaligned<int64_t>(p); break;
      default: break;
    }
  }

  // The bytes an external-data tensor points to, kept alive by `mapped`.
  std::string_view external_bytes(const std::vector<std::pair<std::string, std::string>>& entries,
                                  const std::string& what, std::unique_ptr<MappedFile>& mapped) {
    std::string location;
    uint64_t offset = 0;
    std::optional<uint64_t> length;
    for (const auto& [key, value] : entries) {
      if (key == "location") location = value;
      if (key == "offset" || key == "length") {
        uint64_t number = 0;
        const bool digits = !value.empty() && value.size() <= 19 &&
                            std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
        SCALPEL_CHECK(digits, "{}: {}: external data {} '{}' is not a number", source_, what, key, value);
        number = std::stoull(value);
        if (key == "offset") offset = number; else length = number;
      }
    }
    SCALPEL_CHECK(!location.empty(), "{}: {}: external data without a location", source_, what);
    const std::filesystem::path relative(location);
    bool escapes = relative.is_absolute();
    for (const auto& part : relative) escapes = escapes || part == "..";
    SCALPEL_CHECK(!escapes, "{}: {}: external data location '{}' is outside the model's folder",
                  source_, what, location);
    const std::string path = folder_.empty() ? location : folder_ + "/" + location;
    mapped = std::make_unique<MappedFile>(path);
    const std::string_view file = mapped->bytes();
    if (offset > file.size() || (length && *length > file.size() - offset)) {
      fail("{}: {}: external data {} bytes at offset {} lie beyond the end of {} ({} bytes)", source_,
           what, length.value_or(0), offset, path, file.size());
    }
    return file.substr(offset, length ? *length : file.size() - offset);
  }

  std::string source_;
  std::string folder_;
};

// ---- translation into a GraphSpec ----

// One dimension as far as import knows it: a size, or a symbol shared by every dimension known
// to be equal to the same unknown size (the batch of the input and of every conv after it).
struct Dim {
  int64_t size = -1;
  int64_t symbol = -1;  // -1 with size -1: unknown
  bool known() const { return size >= 0; }
  static Dim of(int64_t size) { return {size, -1}; }
};
using Dims = std::vector<Dim>;

// What an ONNX value is at import: a constant (folded), a tensor computed at run time (a value
// of the spec), or a shape vector (int64, 1-D or scalar) whose elements may be dimensions only
// known at run time.
struct Value {
  enum class Kind { Constant, Dynamic, ShapeVector } kind = Kind::Dynamic;
  Tensor constant;
  std::string name;           // Dynamic: the spec's value name
  std::optional<Dims> dims;   // Dynamic: the shape when the rank is known; ShapeVector: elements
  bool scalar = false;        // ShapeVector: 0-d
};

std::vector<int64_t> int_values(const Tensor& t) { return t.to(DType::I64).contiguous().values<int64_t>(); }

Json obj(std::initializer_list<std::pair<const char*, Json>> members) {
  Json o = Json::object();
  for (const auto& [key, value] : members) o[key] = value;
  return o;
}

Json int_array(const std::vector<int64_t>& values) {
  Json a = Json::array();
  for (const int64_t v : values) a.push_back(v);
  return a;
}

Json float_array(const std::vector<double>& values) {
  Json a = Json::array();
  for (const double v : values) a.push_back(v);
  return a;
}

int64_t wrap(int64_t axis, int64_t rank, const std::string& what) {
  const int64_t wrapped = axis < 0 ? axis + rank : axis;
  SCALPEL_CHECK(wrapped >= 0 && wrapped < rank, "{}: axis {} out of range for rank {}", what, axis, rank);
  return wrapped;
}

// NumPy / ONNX slice bounds on an axis of size n: the indices taken.
std::vector<int64_t> slice_indices(int64_t n, int64_t start, int64_t end, int64_t step) {
  std::vector<int64_t> out;
  if (step == 0) return out;
  if (start < 0) start += n;
  if (end < 0) end += n;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, n);
    end = std::clamp<int64_t>(end, 0, n);
    for (int64_t k = start; k < end; k += step) out.push_back(k);
  } else {
    start = std::clamp<int64_t>(start, -1, n - 1);
    end = std::clamp<int64_t>(end, -1, n - 1);
    for (int64_t k = start; k > end; k += step) out.push_back(k);
  }
  return out;
}

// t's elements at `indices` along `axis` (a copy).
Tensor take(const Tensor& t, int64_t axis, const std::vector<int64_t>& indices) {
  Shape shape = t.shape();
  shape[axis] = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::empty(shape, t.dtype());
  for (size_t k = 0; k < indices.size(); ++k) {
    out.slice(axis, static_cast<int64_t>(k), static_cast<int64_t>(k) + 1)
        .copy_(t.slice(axis, indices[k], indices[k] + 1));
  }
  return out;
}

// Elementwise arithmetic of two constants with broadcasting; integers divide as C does.
Tensor fold_arithmetic(const std::string& op, const Tensor& a, const Tensor& b) {
  const Shape shape = ops::broadcast_shapes(a.shape(), b.shape());
  const std::vector<double> x = a.to(DType::F64).expand(shape).contiguous().to_vector();
  const std::vector<double> y = b.to(DType::F64).expand(shape).contiguous().to_vector();
  const bool integer = a.dtype() == DType::I64 && b.dtype() == DType::I64;
  std::vector<double> z(x.size());
  for (size_t k = 0; k < x.size(); ++k) {
    if (op == "Add") z[k] = x[k] + y[k];
    if (op == "Sub") z[k] = x[k] - y[k];
    if (op == "Mul") z[k] = x[k] * y[k];
    if (op == "Div") z[k] = integer ? (y[k] == 0 ? 0 : std::trunc(x[k] / y[k])) : x[k] / y[k];
  }
  return Tensor::from_vector(z, shape, integer ? DType::I64 : DType::F32);
}

class Translator {
 public:
  Translator(std::string source, const OnnxModel& model, const OnnxImportOptions& options)
      : source_(std::move(source)), opset_(model.opset), graph_(model.graph), options_(options) {}

  ImportedGraph run() {
    out_.spec.source = "onnx";
    out_.spec.name = graph_.name;
    declare_inputs();
    for (const size_t index : topological_order()) {
      const Node& n = graph_.nodes[index];
      translate(n);
    }
    SCALPEL_CHECK(!graph_.outputs.empty(), "{}: the graph declares no output", source_);
    finish_output(graph_.outputs.front().name);
    return std::move(out_);
  }

 private:
  // ---- graph inputs, order and outputs ----

  void declare_inputs() {
    for (const auto& [name, tensor] : graph_.initializers) {
      values_[name] = constant(tensor);
    }
    for (const auto& [name, tensor] : options_.constant_inputs) values_[name] = constant(tensor);
    std::vector<const ValueInfo*> runtime;
    for (const ValueInfo& v : graph_.inputs) {
      if (!values_.count(v.name)) runtime.push_back(&v);
    }
    SCALPEL_CHECK(!runtime.empty(), "{}: the graph has no input left to run on", source_);
    if (runtime.size() > 1) {
      std::vector<std::string> names;
      for (const ValueInfo* v : runtime) names.push_back("'" + v->name + "'");
      fail("{}: the graph has {} inputs ({}); scalpel runs graphs of one input", source_, runtime.size(),
           fmt::join(names, ", "));
    }
    const ValueInfo& input = *runtime.front();
    out_.spec.input = input.name;
    taken_values_.insert(input.name);
    Value v;
    v.name = input.name;
    if (input.has_shape) {
      Dims dims;
      std::map<std::string, int64_t> params;
      for (size_t k = 0; k < input.dims.size(); ++k) {
        if (input.dims[k] >= 0) {
          dims.push_back(Dim::of(input.dims[k]));
        } else if (!input.params[k].empty()) {
          auto [it, added] = params.emplace(input.params[k], next_symbol_);
          if (added) ++next_symbol_;
          dims.push_back({-1, it->second});
        } else {
          dims.push_back({-1, next_symbol_++});
        }
        if (k > 0 && !options_.tensor_input) out_.spec.input_shape.push_back(std::max<int64_t>(input.dims[k], 0));
      }
      v.dims = dims;
    }
    values_[input.name] = v;
  }

  // Node indices in an order where every input is made before it is used (Kahn's algorithm,
  // the file's order among ready nodes). A value nobody makes, or a cycle, is an Error.
  std::vector<size_t> topological_order() {
    std::map<std::string, size_t> maker;
    for (size_t k = 0; k < graph_.nodes.size(); ++k) {
      for (const std::string& output : graph_.nodes[k].outputs) {
        if (output.empty()) continue;
        SCALPEL_CHECK(!maker.count(output) && !values_.count(output),
                      "{}: value '{}' is made twice (second time by {})", source_, output,
                      where(graph_.nodes[k]));
        maker[output] = k;
      }
    }
    std::vector<size_t> waiting(graph_.nodes.size(), 0);
    std::vector<std::vector<size_t>> users(graph_.nodes.size());
    for (size_t k = 0; k < graph_.nodes.size(); ++k) {
      for (const std::string& input : graph_.nodes[k].inputs) {
        if (input.empty() || values_.count(input)) continue;
        const auto it = maker.find(input);
        SCALPEL_CHECK(it != maker.end(), "{}: {} uses '{}', which no node makes and no input or initializer holds",
                      source_, where(graph_.nodes[k]), input);
        ++waiting[k];
        users[it->second].push_back(k);
      }
    }
    std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
    for (size_t k = 0; k < waiting.size(); ++k) {
      if (waiting[k] == 0) ready.push(k);
    }
    std::vector<size_t> order;
    while (!ready.empty()) {
      const size_t k = ready.top();
      ready.pop();
      order.push_back(k);
      for (const size_t user : users[k]) {
        if (--waiting[user] == 0) ready.push(user);
      }
    }
    if (order.size() != graph_.nodes.size()) {
      for (size_t k = 0; k < waiting.size(); ++k) {
        if (waiting[k] > 0) fail("{}: the graph has a cycle through {}", source_, where(graph_.nodes[k]));
      }
    }
    return order;
  }

  void finish_output(const std::string& name) {
    const auto it = values_.find(name);
    SCALPEL_CHECK(it != values_.end(), "{}: the graph output '{}' is never made", source_, name);
    const Value& v = it->second;
    if (v.kind != Value::Kind::Dynamic || v.name == out_.spec.input) {
      // A folded output, the input itself or a renamed alias: one node that makes it.
      Node n;
      n.name = name;
      n.op_type = "Identity";
      n.outputs = {name};
      n.inputs = {name};
      const std::string value = dynamic_value(v, n, 0);
      if (value == name) {
        out_.spec.output = name;
        return;
      }
      out_.spec.output = emit(n, "identity", {value}, Json::object(), v.dims);
      return;
    }
    out_.spec.output = v.name;
  }

  // ---- helpers ----

  std::string where(const Node& n) const {
    return fmt::format("node '{}' ({})", n.name.empty() ? (n.outputs.empty() ? std::string("?") : n.outputs[0]) : n.name,
                       n.op_type);
  }

  template <typename... Args>
  [[noreturn]] void fail_node(const Node& n, fmt::format_string<Args...> format, Args&&... args) const {
    fail("{}: {}: {}", source_, where(n), fmt::format(format, std::forward<Args>(args)...));
  }

  static Value constant(const Tensor& t) {
    Value v;
    v.kind = Value::Kind::Constant;
    v.constant = t;
    return v;
  }

  Value shape_vector(Dims dims, bool scalar) {
    bool all_known = true;
    for (const Dim& d : dims) all_known = all_known && d.known();
    if (all_known) {
      std::vector<int64_t> sizes;
      for (const Dim& d : dims) sizes.push_back(d.size);
      Tensor t = Tensor::from_data(sizes.data(), scalar ? Shape{} : Shape{static_cast<int64_t>(sizes.size())});
      return constant(t);
    }
    Value v;
    v.kind = Value::Kind::ShapeVector;
    v.dims = std::move(dims);
    v.scalar = scalar;
    return v;
  }

  bool has_input(const Node& n, size_t i) const { return i < n.inputs.size() && !n.inputs[i].empty(); }

  const Value& input(const Node& n, size_t i) const {
    SCALPEL_CHECK(has_input(n, i), "{}: {}: input {} is missing", source_, where(n), i);
    const auto it = values_.find(n.inputs[i]);
    if (it == values_.end()) {
      fail("{}: {}: input '{}' is not available (an output the importer does not make)", source_, where(n),
           n.inputs[i]);
    }
    return it->second;
  }

  bool is_constant(const Node& n, size_t i) const {
    return has_input(n, i) && input(n, i).kind == Value::Kind::Constant;
  }

  Tensor constant_input(const Node& n, size_t i, std::string_view what) const {
    const Value& v = input(n, i);
    if (v.kind != Value::Kind::Constant) {
      fail_node(n, "{} (input {}, '{}') must be computable at import, but it depends on the graph input", what,
                i, n.inputs[i]);
    }
    return v.constant;
  }

  std::optional<Dims> dims_of(const Node& n, size_t i) const {
    const Value& v = input(n, i);
    if (v.kind == Value::Kind::Constant) {
      Dims dims;
      for (const int64_t d : v.constant.shape()) dims.push_back(Dim::of(d));
      return dims;
    }
    if (v.kind == Value::Kind::ShapeVector) {
      return v.scalar ? Dims{} : Dims{Dim::of(static_cast<int64_t>(v.dims->size()))};
    }
    return v.dims;
  }

  int64_t rank_of(const Node& n, size_t i, std::string_view why) const {
    const std::optional<Dims> dims = dims_of(n, i);
    if (!dims) fail_node(n, "{} needs the rank of '{}', which import could not infer", why, n.inputs[i]);
    return static_cast<int64_t>(dims->size());
  }

  std::string unique_node_name(const std::string& base) {
    std::string name = graph_safe_name(base);
    if (taken_nodes_.insert(name).second) return name;
    for (int k = 1;; ++k) {
      const std::string candidate = fmt::format("{}_{}", name, k);
      if (taken_nodes_.insert(candidate).second) return candidate;
    }
  }

  std::string unique_value_name(const std::string& base) {
    if (taken_values_.insert(base).second) return base;
    for (int k = 1;; ++k) {
      const std::string candidate = fmt::format("{}_{}", base, k);
      if (taken_values_.insert(candidate).second) return candidate;
    }
  }

  // Appends a spec node for ONNX node n. With `step` empty it makes n's (first) output and
  // records it as that ONNX value; otherwise it is an intermediate step of n's lowering.
  std::string emit(const Node& n, const std::string& op, std::vector<std::string> inputs, Json attrs,
                   std::optional<Dims> dims, NamedTensors params = {}, const std::string& step = "") {
    const std::string onnx_output = n.outputs.empty() ? n.name : n.outputs.front();
    const std::string base = n.name.empty() ? onnx_output : n.name;
    GraphNode node;
    node.name = unique_node_name(step.empty() ? base : base + "_" + step);
    node.op = op;
    node.inputs = std::move(inputs);
    node.output = unique_value_name(step.empty() ? onnx_output : onnx_output + "__" + step);
    node.attrs = std::move(attrs);
    for (auto& [param, tensor] : params) {
      out_.weights.emplace_back(node.name + "." + param, tensor.to(DType::F32).contiguous());
    }
    if (step.empty()) {
      Value v;
      v.name = node.output;
      v.dims = std::move(dims);
      values_[onnx_output] = v;
    }
    out_.spec.nodes.push_back(std::move(node));
    return out_.spec.nodes.back().output;
  }

  // The spec value of a Value: a constant becomes a `constant` node (once per ONNX value).
  std::string dynamic_value(const Value& v, const Node& n, size_t i) {
    if (v.kind == Value::Kind::Dynamic) return v.name;
    if (v.kind == Value::Kind::ShapeVector) {
      fail_node(n, "input '{}' is a shape with dimensions only known at run time; this use of it is not supported",
                n.inputs[i]);
    }
    const std::string& onnx_name = n.inputs[i];
    const auto cached = constant_nodes_.find(onnx_name);
    if (cached != constant_nodes_.end()) return cached->second;
    Node c;
    c.name = onnx_name;
    c.op_type = "Constant";
    c.outputs = {onnx_name};
    const std::string value = emit_constant(c, v.constant, "const");
    constant_nodes_[onnx_name] = value;
    return value;
  }

  // A `constant` node holding t (as float32), an intermediate step of n.
  std::string emit_constant(const Node& n, const Tensor& t, const std::string& step) {
    return emit(n, "constant", {}, obj({{"shape", int_array(t.shape())}}), std::nullopt, {{"value", t}}, step);
  }
  std::string dynamic(const Node& n, size_t i) { return dynamic_value(input(n, i), n, i); }

  void alias(const Node& n, const Value& v) { values_[n.outputs.at(0)] = v; }

  // ---- dispatch ----

  void translate(const Node& n) {
    if (!n.domain.empty() && n.domain != "ai.onnx") {
      fail_node(n, "op {}:{} is not supported (only the default ONNX domain)", n.domain, n.op_type);
    }
    SCALPEL_CHECK(!n.outputs.empty(), "{}: {} has no output", source_, where(n));
    using Handler = void (Translator::*)(const Node&);
    static const std::map<std::string, Handler> handlers = {
        {"Add", &Translator::binary},
        {"AveragePool", &Translator::pool},
        {"BatchNormalization", &Translator::batch_norm},
        {"Cast", &Translator::cast},
        {"Clip", &Translator::clip},
        {"Concat", &Translator::concat},
        {"Constant", &Translator::constant_node},
        {"ConstantOfShape", &Translator::constant_of_shape},
        {"Conv", &Translator::conv},
        {"ConvTranspose", &Translator::conv_transpose},
        {"Div", &Translator::binary},
        {"Dropout", &Translator::identity},
        {"Elu", &Translator::activation},
        {"Flatten", &Translator::flatten},
        {"Gather", &Translator::gather},
        {"Gemm", &Translator::gemm},
        {"GlobalAveragePool", &Translator::global_pool},
        {"GlobalMaxPool", &Translator::global_pool},
        {"HardSigmoid", &Translator::activation},
        {"HardSwish", &Translator::activation},
        {"Identity", &Translator::identity},
        {"LeakyRelu", &Translator::activation},
        {"MatMul", &Translator::matmul},
        {"Max", &Translator::binary},
        {"MaxPool", &Translator::pool},
        {"Min", &Translator::binary},
        {"Mul", &Translator::binary},
        {"Pad", &Translator::pad},
        {"Relu", &Translator::activation},
        {"Reshape", &Translator::reshape},
        {"Resize", &Translator::resize},
        {"Shape", &Translator::shape},
        {"Sigmoid", &Translator::activation},
        {"Slice", &Translator::slice},
        {"Softmax", &Translator::softmax},
        {"Squeeze", &Translator::squeeze},
        {"Sub", &Translator::binary},
        {"Tanh", &Translator::activation},
        {"Transpose", &Translator::transpose},
        {"Unsqueeze", &Translator::unsqueeze},
        {"Upsample", &Translator::resize},
    };
    const auto it = handlers.find(n.op_type);
    if (it == handlers.end()) fail_node(n, "op {} is not supported (docs/onnx.md lists the ops scalpel imports)", n.op_type);
    (this->*it->second)(n);
  }

 public:
  static std::vector<std::string> supported() {
    return {"Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant",
            "ConstantOfShape", "Conv", "ConvTranspose", "Div", "Dropout", "Elu", "Flatten", "Gather",
            "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity",
            "LeakyRelu", "MatMul", "Max", "MaxPool", "Min", "Mul", "Pad", "Relu", "Reshape", "Resize",
            "Shape", "Sigmoid", "Slice", "Softmax", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
            "Upsample"};
  }

 private:
  // ---- constants and shapes ----

  void constant_node(const Node& n) {
    if (const Attr* a = n.find("value"); a && a->t.defined()) return alias(n, constant(a->t));
    if (const Attr* a = n.find("value_float")) return alias(n, constant(Tensor::scalar(a->f)));
    if (const Attr* a = n.find("value_int")) return alias(n, constant(Tensor::scalar(static_cast<double>(a->i), DType::I64)));
    if (const Attr* a = n.find("value_floats")) {
      return alias(n, constant(Tensor::from_data(a->floats.data(), {static_cast<int64_t>(a->floats.size())})));
    }
    if (const Attr* a = n.find("value_ints")) {
      return alias(n, constant(Tensor::from_data(a->ints.data(), {static_cast<int64_t>(a->ints.size())})));
    }
    fail_node(n, "a Constant needs a tensor, float or int value (sparse and string values are not supported)");
  }

  void constant_of_shape(const Node& n) {
    const std::vector<int64_t> shape = int_values(constant_input(n, 0, "the shape"));
    int64_t numel = 1;
    for (const int64_t d : shape) {
      if (d < 0 || (d != 0 && numel > kMaxFoldedElements / d)) fail_node(n, "absurd shape {}", shape_str(shape));
      numel *= d;
    }
    Tensor fill = Tensor::zeros({1});
    if (const Attr* a = n.find("value"); a && a->t.defined()) fill = a->t;
    Tensor t = Tensor::empty(shape, fill.dtype());
    t.fill_(fill.contiguous().to_vector().at(0));
    alias(n, constant(t));
  }

  void shape(const Node& n) {
    const std::optional<Dims> dims = dims_of(n, 0);
    if (!dims) fail_node(n, "the shape of '{}' is not known at import (its rank could not be inferred)", n.inputs[0]);
    const int64_t rank = static_cast<int64_t>(dims->size());
    int64_t start = n.i("start", 0), end = n.i("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    alias(n, shape_vector(Dims(dims->begin() + start, dims->begin() + end), false));
  }

  void cast(const Node& n) {
    const int64_t to = n.i("to", 0);
    const Value& v = input(n, 0);
    if (v.kind == Value::Kind::Constant) {
      return alias(n, constant(v.constant.to(onnx_type_is_float(static_cast<int>(to)) ? DType::F32 : DType::I64)));
    }
    if (v.kind == Value::Kind::ShapeVector) return alias(n, v);
    if (!onnx_type_is_float(static_cast<int>(to))) {
      fail_node(n, "a Cast of a tensor computed at run time to {} is not supported", onnx_type_name(static_cast<int>(to)));
    }
    alias(n, v);  // float to float: scalpel computes in float32
  }

  void identity(const Node& n) {
    // Dropout is the identity at inference; its mask output is left unmade (a node using it
    // fails naming it). Training mode (opset 12 on: a constant true input) is random.
    if (n.op_type == "Dropout" && has_input(n, 2) &&
        constant_input(n, 2, "training_mode").contiguous().to_vector().at(0) != 0 &&
        (!has_input(n, 1) || constant_input(n, 1, "the ratio").contiguous().to_vector().at(0) != 0)) {
      fail_node(n, "Dropout in training mode (random) is not supported");
    }
    alias(n, input(n, 0));
  }

  // The axes of Squeeze / Unsqueeze: an attribute before opset 13, an input since.
  std::optional<std::vector<int64_t>> axes_of(const Node& n, size_t input_index) {
    if (const Attr* a = n.find("axes")) return a->ints;
    if (has_input(n, input_index)) return int_values(constant_input(n, input_index, "the axes"));
    return std::nullopt;
  }

  void unsqueeze(const Node& n) {
    std::vector<int64_t> axes = axes_of(n, 1).value_or(std::vector<int64_t>{});
    SCALPEL_CHECK(!axes.empty(), "{}: {}: Unsqueeze needs axes", source_, where(n));
    const Value& v = input(n, 0);
    const std::optional<Dims> dims = dims_of(n, 0);
    if (dims) {
      const int64_t out_rank = static_cast<int64_t>(dims->size() + axes.size());
      for (int64_t& a : axes) a = wrap(a, out_rank, where(n));
      std::sort(axes.begin(), axes.end());
    }
    auto inserted = [&](const Dims& in) {
      Dims out = in;
      for (const int64_t a : axes) out.insert(out.begin() + std::min<int64_t>(a, static_cast<int64_t>(out.size())), Dim::of(1));
      return out;
    };
    if (v.kind == Value::Kind::Constant) {
      Shape shape;
      for (const Dim& d : inserted(*dims)) shape.push_back(d.size);
      return alias(n, constant(v.constant.contiguous().reshape(shape)));
    }
    if (v.kind == Value::Kind::ShapeVector) {
      if (v.scalar && axes == std::vector<int64_t>{0}) return alias(n, shape_vector(*v.dims, false));
      fail_node(n, "unsqueezing a run-time shape vector to 2-D is not supported");
    }
    emit(n, "unsqueeze", {v.name}, obj({{"axes", int_array(axes)}}),
         dims ? std::optional<Dims>(inserted(*dims)) : std::nullopt);
  }

  void squeeze(const Node& n) {
    std::optional<std::vector<int64_t>> axes = axes_of(n, 1);
    const Value& v = input(n, 0);
    const std::optional<Dims> dims = dims_of(n, 0);
    if (!axes) {
      if (!dims) fail_node(n, "a Squeeze without axes needs the input's shape, which import could not infer");
      axes.emplace();
      for (size_t k = 0; k < dims->size(); ++k) {
        if ((*dims)[k].size == 1) axes->push_back(static_cast<int64_t>(k));
        if (!(*dims)[k].known()) fail_node(n, "a Squeeze without axes over a dimension of run-time size");
      }
    }
    if (dims) {
      for (int64_t& a : *axes) a = wrap(a, static_cast<int64_t>(dims->size()), where(n));
    }
    auto removed = [&](const Dims& in) {
      Dims out;
      for (size_t k = 0; k < in.size(); ++k) {
        if (std::find(axes->begin(), axes->end(), static_cast<int64_t>(k)) == axes->end()) out.push_back(in[k]);
      }
      return out;
    };
    if (v.kind == Value::Kind::Constant) {
      Shape shape;
      for (const Dim& d : removed(*dims)) shape.push_back(d.size);
      return alias(n, constant(v.constant.contiguous().reshape(shape)));
    }
    if (v.kind == Value::Kind::ShapeVector) {
      if (!v.scalar && v.dims->size() == 1) return alias(n, shape_vector(*v.dims, true));
      fail_node(n, "squeezing a run-time shape vector of more than one element");
    }
    emit(n, "squeeze", {v.name}, obj({{"axes", int_array(*axes)}}),
         dims ? std::optional<Dims>(removed(*dims)) : std::nullopt);
  }

  void concat(const Node& n) {
    const int64_t axis = n.i("axis", 0);
    bool all_constant = true, any_shape = false;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (!has_input(n, k)) continue;
      all_constant = all_constant && is_constant(n, k);
      any_shape = any_shape || input(n, k).kind == Value::Kind::ShapeVector;
    }
    if (all_constant) {
      std::vector<Tensor> parts;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        if (has_input(n, k)) parts.push_back(input(n, k).constant.to(input(n, 0).constant.dtype()));
      }
      return alias(n, constant(ops::concat(parts, axis)));
    }
    if (any_shape) {
      Dims elements;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        if (!has_input(n, k)) continue;
        const Value& v = input(n, k);
        if (v.kind == Value::Kind::ShapeVector) {
          elements.insert(elements.end(), v.dims->begin(), v.dims->end());
        } else if (v.kind == Value::Kind::Constant && v.constant.dim() == 1) {
          for (const int64_t d : int_values(v.constant)) elements.push_back(Dim::of(d));
        } else {
          fail_node(n, "concatenating a run-time shape vector with a computed tensor is not supported");
        }
      }
      return alias(n, shape_vector(elements, false));
    }
    std::vector<std::string> names;
    std::optional<Dims> dims;
    bool dims_known = true;
    int64_t wrapped = axis;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (!has_input(n, k)) continue;
      names.push_back(dynamic(n, k));
      const std::optional<Dims> d = dims_of(n, k);
      if (!d) {
        dims_known = false;
        continue;
      }
      wrapped = wrap(axis, static_cast<int64_t>(d->size()), where(n));
      if (!dims) {
        dims = d;
      } else if (dims->size() == d->size()) {
        Dim& sum = (*dims)[wrapped];
        sum = sum.known() && (*d)[wrapped].known() ? Dim::of(sum.size + (*d)[wrapped].size) : Dim{};
      }
    }
    emit(n, "concat", names, obj({{"axis", wrapped}}), dims_known ? dims : std::nullopt);
  }

  void gather(const Node& n) {
    const Tensor indices_tensor = constant_input(n, 1, "the indices");
    const std::vector<int64_t> indices = int_values(indices_tensor);
    const Value& v = input(n, 0);
    const std::optional<Dims> dims = dims_of(n, 0);
    const int64_t rank = rank_of(n, 0, "Gather");
    const int64_t axis = wrap(n.i("axis", 0), rank, where(n));
    auto wrapped_index = [&](int64_t index) {
      const Dim& d = (*dims)[axis];
      if (index < 0) {
        if (!d.known()) fail_node(n, "a negative index into a dimension of run-time size");
        index += d.size;
      }
      if (index < 0 || (d.known() && index >= d.size)) fail_node(n, "index {} out of range", index);
      return index;
    };
    if (v.kind == Value::Kind::Constant || v.kind == Value::Kind::ShapeVector) {
      if (v.kind == Value::Kind::ShapeVector) {
        Dims picked;
        for (const int64_t index : indices) picked.push_back((*v.dims)[wrapped_index(index)]);
        return alias(n, shape_vector(picked, indices_tensor.dim() == 0));
      }
      std::vector<int64_t> wrapped;
      for (const int64_t index : indices) wrapped.push_back(wrapped_index(index));
      Tensor picked = take(v.constant, axis, wrapped);
      Shape shape(v.constant.shape().begin(), v.constant.shape().begin() + axis);
      shape.insert(shape.end(), indices_tensor.shape().begin(), indices_tensor.shape().end());
      shape.insert(shape.end(), v.constant.shape().begin() + axis + 1, v.constant.shape().end());
      return alias(n, constant(picked.reshape(shape)));
    }
    // A computed tensor: slices along the axis (and a squeeze for a scalar index).
    if (indices_tensor.dim() > 1) fail_node(n, "indices of rank {} into a computed tensor", indices_tensor.dim());
    std::vector<std::string> parts;
    Dims out_dims = *dims;
    for (size_t k = 0; k < indices.size(); ++k) {
      const int64_t index = wrapped_index(indices[k]);
      const bool last = k + 1 == indices.size() && indices_tensor.dim() == 1 && indices.size() == 1;
      out_dims[axis] = Dim::of(1);
      parts.push_back(emit(n, "slice", {v.name}, obj({{"axis", axis}, {"start", index}, {"end", index + 1}}),
                           out_dims, {}, last ? "" : fmt::format("take{}", k)));
    }
    if (indices_tensor.dim() == 0) {
      out_dims.erase(out_dims.begin() + axis);
      emit(n, "squeeze", {parts.front()}, obj({{"axes", int_array({axis})}}), out_dims);
    } else if (indices.size() > 1) {
      out_dims[axis] = Dim::of(static_cast<int64_t>(indices.size()));
      Json attrs = Json::object();
      attrs["axis"] = axis;
      emit(n, "concat", parts, attrs, out_dims);
    }
  }

  // The target shape of a Reshape as the spec's reshape takes it (0 copies the input's
  // dimension, -1 is inferred); a dimension known only at run time must be the input's own.
  std::vector<int64_t> reshape_target(const Node& n, const Value& shape_value, const std::optional<Dims>& in) {
    Dims elements;
    if (shape_value.kind == Value::Kind::Constant) {
      for (const int64_t d : int_values(shape_value.constant)) elements.push_back(Dim::of(d));
    } else {
      elements = *shape_value.dims;
    }
    const bool allow_zero = n.i("allowzero", 0) != 0;
    std::vector<int64_t> target;
    bool inferred = false;
    for (size_t j = 0; j < elements.size(); ++j) {
      const Dim& e = elements[j];
      if (e.known()) {
        if (e.size == 0 && allow_zero) fail_node(n, "allowzero with a zero dimension is not supported");
        target.push_back(e.size);
        continue;
      }
      if (e.size == -1 && e.symbol == -1 && shape_value.kind == Value::Kind::Constant) {
        target.push_back(-1);
        inferred = true;
        continue;
      }
      if (in && j < in->size() && e.symbol >= 0 && (*in)[j].symbol == e.symbol) {
        target.push_back(0);  // the input's own dimension j
        continue;
      }
      if (inferred) fail_node(n, "the target shape has more than one dimension only known at run time");
      target.push_back(-1);
      inferred = true;
    }
    for (const int64_t d : target) {
      if (d == -1 && std::count(target.begin(), target.end(), -1) > 1) fail_node(n, "more than one -1 in the shape");
    }
    return target;
  }

  // Output dims of a reshape as far as they are known.
  static Dims reshaped_dims(const std::vector<int64_t>& target, const std::optional<Dims>& in) {
    Dims out;
    for (size_t j = 0; j < target.size(); ++j) {
      if (target[j] == 0 && in && j < in->size()) out.push_back((*in)[j]);
      else if (target[j] > 0) out.push_back(Dim::of(target[j]));
      else out.push_back(Dim{});
    }
    if (in) {
      int64_t known_in = 1, known_out = 1;
      bool all_in = true;
      size_t unknown = 0, unknown_at = 0;
      for (const Dim& d : *in) {
        all_in = all_in && d.known();
        if (d.known()) known_in *= d.size;
      }
      for (size_t j = 0; j < out.size(); ++j) {
        if (out[j].known()) known_out *= out[j].size;
        else { ++unknown; unknown_at = j; }
      }
      if (all_in && unknown == 1 && known_out > 0) out[unknown_at] = Dim::of(known_in / known_out);
    }
    return out;
  }

  void reshape(const Node& n) {
    const Value& v = input(n, 0);
    const std::optional<Dims> in = dims_of(n, 0);
    std::vector<int64_t> target;
    if (const Attr* a = n.find("shape")) {  // Reshape-1
      target = a->ints;
    } else {
      const Value& shape_value = input(n, 1);
      if (shape_value.kind == Value::Kind::Dynamic) fail_node(n, "the target shape must be computable at import");
      target = reshape_target(n, shape_value, in);
    }
    const Dims out = reshaped_dims(target, in);
    if (v.kind == Value::Kind::Constant) {
      Shape shape;
      for (size_t j = 0; j < target.size(); ++j) shape.push_back(target[j] == 0 ? v.constant.shape().at(j) : target[j]);
      return alias(n, constant(v.constant.contiguous().reshape(shape)));
    }
    if (v.kind == Value::Kind::ShapeVector) fail_node(n, "reshaping a run-time shape vector");
    emit(n, "reshape", {v.name}, obj({{"shape", int_array(target)}}), out);
  }

  void flatten(const Node& n) {
    const Value& v = input(n, 0);
    const std::optional<Dims> in = dims_of(n, 0);
    int64_t axis = n.i("axis", 1);
    if (axis < 0) axis += rank_of(n, 0, "a Flatten with a negative axis");
    std::optional<Dims> out;
    if (in) {
      Dim rows = Dim::of(1), cols = Dim::of(1);
      for (size_t k = 0; k < in->size(); ++k) {
        Dim& part = static_cast<int64_t>(k) < axis ? rows : cols;
        const Dim& d = (*in)[k];
        part = part.known() && d.known() ? Dim::of(part.size * d.size) : (axis == 1 && k == 0 ? d : Dim{});
      }
      out = Dims{rows, cols};
    }
    if (v.kind == Value::Kind::Constant) {
      int64_t rows = 1;
      for (int64_t k = 0; k < axis; ++k) rows *= v.constant.shape().at(k);
      return alias(n, constant(v.constant.contiguous().reshape({rows, rows == 0 ? 0 : v.constant.numel() / rows})));
    }
    emit(n, "flatten", {dynamic(n, 0)}, obj({{"axis", axis}}), out);
  }

  void transpose(const Node& n) {
    const Value& v = input(n, 0);
    std::vector<int64_t> perm = n.ints("perm");
    const std::optional<Dims> in = dims_of(n, 0);
    if (perm.empty()) {
      const int64_t rank = rank_of(n, 0, "a Transpose without perm");
      for (int64_t k = rank - 1; k >= 0; --k) perm.push_back(k);
    }
    std::optional<Dims> out;
    if (in) {
      SCALPEL_CHECK(perm.size() == in->size(), "{}: {}: perm {} does not fit rank {}", source_, where(n),
                    shape_str(perm), in->size());
      out.emplace();
      for (const int64_t p : perm) out->push_back(in->at(wrap(p, static_cast<int64_t>(in->size()), where(n))));
    }
    if (v.kind == Value::Kind::Constant) return alias(n, constant(v.constant.permute(perm).contiguous()));
    emit(n, "transpose", {dynamic(n, 0)}, obj({{"perm", int_array(perm)}}), out);
  }

  void slice(const Node& n) {
    std::vector<int64_t> starts, ends, axes, steps;
    if (opset_ < 10) {
      starts = n.ints("starts");
      ends = n.ints("ends");
      axes = n.ints("axes");
    } else {
      starts = int_values(constant_input(n, 1, "the starts"));
      ends = int_values(constant_input(n, 2, "the ends"));
      if (has_input(n, 3)) axes = int_values(constant_input(n, 3, "the axes"));
      if (has_input(n, 4)) steps = int_values(constant_input(n, 4, "the steps"));
    }
    if (axes.empty()) {
      for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    SCALPEL_CHECK(ends.size() == starts.size() && axes.size() == starts.size() && steps.size() == starts.size(),
                  "{}: {}: starts, ends, axes and steps differ in length", source_, where(n));
    const Value& v = input(n, 0);
    std::optional<Dims> dims = dims_of(n, 0);
    if (v.kind == Value::Kind::Constant || v.kind == Value::Kind::ShapeVector) {
      const int64_t rank = static_cast<int64_t>(dims->size());
      if (v.kind == Value::Kind::ShapeVector) {
        SCALPEL_CHECK(axes.size() == 1 && wrap(axes[0], 1, where(n)) == 0, "{}: {}: a shape vector is 1-D", source_, where(n));
        Dims picked;
        for (const int64_t k : slice_indices(static_cast<int64_t>(v.dims->size()), starts[0], ends[0], steps[0])) {
          picked.push_back((*v.dims)[k]);
        }
        return alias(n, shape_vector(picked, false));
      }
      Tensor t = v.constant;
      for (size_t k = 0; k < axes.size(); ++k) {
        const int64_t axis = wrap(axes[k], rank, where(n));
        SCALPEL_CHECK(steps[k] != 0, "{}: {}: slice step 0", source_, where(n));
        t = take(t, axis, slice_indices(t.shape()[axis], starts[k], ends[k], steps[k]));
      }
      return alias(n, constant(t));
    }
    std::string value = v.name;
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t axis = axes[k];
      if (axis < 0) axis += rank_of(n, 0, "a Slice with a negative axis");
      if (steps[k] <= 0) fail_node(n, "a step of {} (scalpel's slice steps forward)", steps[k]);
      // ONNX writes "to the end" as INT64_MAX (or INT32_MAX); the spec's slice clamps as NumPy.
      const int64_t end = std::min<int64_t>(ends[k], std::numeric_limits<int32_t>::max());
      const int64_t start = std::max<int64_t>(starts[k], std::numeric_limits<int32_t>::min());
      if (dims && axis < static_cast<int64_t>(dims->size())) {
        const Dim d = (*dims)[axis];
        (*dims)[axis] = d.known() ? Dim::of(static_cast<int64_t>(slice_indices(d.size, start, end, steps[k]).size())) : Dim{};
      }
      value = emit(n, "slice", {value},
                   obj({{"axis", axis}, {"start", start}, {"end", end}, {"step", steps[k]}}), dims, {},
                   k + 1 == axes.size() ? "" : fmt::format("axis{}", axis));
    }
    if (axes.empty()) alias(n, v);
  }

  // ---- elementwise ----

  void binary(const Node& n) {
    static const std::map<std::string, std::string> names = {{"Add", "add"}, {"Sub", "sub"}, {"Mul", "mul"},
                                                              {"Div", "div"}, {"Max", "max"}, {"Min", "min"}};
    if ((n.op_type == "Max" || n.op_type == "Min") && n.inputs.size() != 2) {
      // Variadic: one input is itself, more fold pairwise.
      SCALPEL_CHECK(!n.inputs.empty(), "{}: {}: no inputs", source_, where(n));
      if (n.inputs.size() == 1) return alias(n, input(n, 0));
      std::string value = dynamic(n, 0);
      for (size_t k = 1; k < n.inputs.size(); ++k) {
        value = emit(n, n.op_type == "Max" ? "max" : "min", {value, dynamic(n, k)}, Json::object(), std::nullopt, {},
                     k + 1 == n.inputs.size() ? "" : fmt::format("step{}", k));
      }
      return;
    }
    SCALPEL_CHECK(n.inputs.size() == 2, "{}: {}: {} inputs (scalpel's {} takes two)", source_, where(n),
                  n.inputs.size(), n.op_type);
    const Value& a = input(n, 0);
    const Value& b = input(n, 1);
    const bool arithmetic = n.op_type != "Max" && n.op_type != "Min";
    if (a.kind == Value::Kind::Constant && b.kind == Value::Kind::Constant && arithmetic) {
      return alias(n, constant(fold_arithmetic(n.op_type, a.constant, b.constant)));
    }
    if (a.kind == Value::Kind::ShapeVector || b.kind == Value::Kind::ShapeVector) {
      // Shape arithmetic: known elements computed, the others unknown from here on.
      const Value& s = a.kind == Value::Kind::ShapeVector ? a : b;
      const Value& other = a.kind == Value::Kind::ShapeVector ? b : a;
      if (!arithmetic || other.kind == Value::Kind::Dynamic) fail_node(n, "arithmetic on a run-time shape vector");
      std::vector<int64_t> o = other.kind == Value::Kind::Constant ? int_values(other.constant)
                                                                    : std::vector<int64_t>{};
      if (other.kind == Value::Kind::ShapeVector) fail_node(n, "arithmetic between two run-time shape vectors");
      Dims out = *s.dims;
      for (size_t k = 0; k < out.size(); ++k) {
        if (o.size() != 1 && o.size() != out.size()) fail_node(n, "shape arithmetic on vectors of different lengths");
        const int64_t y = o.size() == 1 ? o[0] : o[k];
        if (!out[k].known()) {
          out[k] = Dim{};
          continue;
        }
        const int64_t x = out[k].size;
        const bool swapped = &s == &b;
        const int64_t l = swapped ? y : x, r = swapped ? x : y;
        int64_t z = 0;
        if (n.op_type == "Add") z = l + r;
        if (n.op_type == "Sub") z = l - r;
        if (n.op_type == "Mul") z = l * r;
        if (n.op_type == "Div") z = r == 0 ? 0 : l / r;
        out[k] = Dim::of(z);
      }
      return alias(n, shape_vector(out, s.scalar));
    }
    std::optional<Dims> dims;
    const std::optional<Dims> da = dims_of(n, 0), db = dims_of(n, 1);
    if (da && db) dims = broadcast(*da, *db);
    emit(n, names.at(n.op_type), {dynamic(n, 0), dynamic(n, 1)}, Json::object(), dims);
  }

  static Dims broadcast(const Dims& a, const Dims& b) {
    const size_t rank = std::max(a.size(), b.size());
    Dims out(rank);
    for (size_t k = 0; k < rank; ++k) {
      const Dim x = k + a.size() >= rank ? a[k + a.size() - rank] : Dim::of(1);
      const Dim y = k + b.size() >= rank ? b[k + b.size() - rank] : Dim::of(1);
      if (x.size == 1) out[k] = y;
      else if (y.size == 1) out[k] = x;
      else if (x.known()) out[k] = x;
      else if (y.known()) out[k] = y;
      else out[k] = x.symbol == y.symbol ? x : Dim{};
    }
    return out;
  }

  void activation(const Node& n) {
    Json attrs = Json::object();
    std::string op;
    if (n.op_type == "Relu") op = "relu";
    if (n.op_type == "Sigmoid") op = "sigmoid";
    if (n.op_type == "Tanh") op = "tanh";
    if (n.op_type == "HardSwish") op = "hard_swish";
    if (n.op_type == "LeakyRelu") {
      op = "leaky_relu";
      attrs["slope"] = n.f("alpha", 0.01f);
    }
    if (n.op_type == "Elu") {
      op = "elu";
      attrs["alpha"] = n.f("alpha", 1.0f);
    }
    if (n.op_type == "HardSigmoid") {
      op = "hard_sigmoid";
      attrs["alpha"] = n.f("alpha", 0.2f);
      attrs["beta"] = n.f("beta", 0.5f);
    }
    emit(n, op, {dynamic(n, 0)}, attrs, dims_of(n, 0));
  }

  void clip(const Node& n) {
    Json attrs = Json::object();
    if (opset_ < 11) {
      if (const Attr* a = n.find("min")) attrs["min"] = a->f;
      if (const Attr* a = n.find("max")) attrs["max"] = a->f;
    } else {
      if (has_input(n, 1)) attrs["min"] = constant_input(n, 1, "the minimum").contiguous().to_vector().at(0);
      if (has_input(n, 2)) attrs["max"] = constant_input(n, 2, "the maximum").contiguous().to_vector().at(0);
    }
    emit(n, "clip", {dynamic(n, 0)}, attrs, dims_of(n, 0));
  }

  void softmax(const Node& n) {
    const std::optional<Dims> dims = dims_of(n, 0);
    const int64_t rank = rank_of(n, 0, "Softmax");
    const int64_t axis = wrap(n.i("axis", opset_ < 13 ? 1 : -1), rank, where(n));
    if (opset_ >= 13 || axis == rank - 1) {
      emit(n, "softmax", {dynamic(n, 0)}, obj({{"axis", axis}}), dims);
      return;
    }
    // Before opset 13 Softmax normalizes over all the axes from `axis` on, flattened.
    std::vector<int64_t> flat(static_cast<size_t>(axis), 0), back(static_cast<size_t>(axis), 0);
    flat.push_back(-1);
    for (int64_t k = axis; k < rank; ++k) {
      if (!(*dims)[k].known()) fail_node(n, "a Softmax (opset {}) over axes of run-time size", opset_);
      back.push_back((*dims)[k].size);
    }
    const std::string flattened = emit(n, "reshape", {dynamic(n, 0)}, obj({{"shape", int_array(flat)}}),
                                       std::nullopt, {}, "flat");
    const std::string normalized = emit(n, "softmax", {flattened}, obj({{"axis", -1}}), std::nullopt, {}, "softmax");
    emit(n, "reshape", {normalized}, obj({{"shape", int_array(back)}}), dims);
  }

  // ---- convolution, normalization, pooling ----

  // pads [top, left, bottom, right] of a conv / pool, or nullopt for the spec's same: true.
  std::optional<std::vector<int64_t>> window_pads(const Node& n, const std::vector<int64_t>& kernel,
                                                  const std::vector<int64_t>& stride, const std::vector<int64_t>& dilation,
                                                  const std::optional<Dims>& in) {
    const std::string auto_pad = n.s("auto_pad", "NOTSET");
    if (auto_pad == "NOTSET") {
      std::vector<int64_t> pads = n.ints("pads", {0, 0, 0, 0});
      SCALPEL_CHECK(pads.size() == 4, "{}: {}: pads {} (4 values for 2-D)", source_, where(n), shape_str(pads));
      return std::vector<int64_t>{pads[0], pads[1], pads[2], pads[3]};
    }
    if (auto_pad == "VALID") return std::vector<int64_t>{0, 0, 0, 0};
    SCALPEL_CHECK(auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER", "{}: {}: auto_pad {} is not an ONNX value",
                  source_, where(n), auto_pad);
    std::vector<int64_t> begin(2), end(2);
    for (size_t k = 0; k < 2; ++k) {
      const int64_t extent = dilation[k] * (kernel[k] - 1) + 1;
      int64_t total = 0;
      if (stride[k] == 1) {
        total = extent - 1;
      } else if (in && (*in)[2 + k].known()) {
        const int64_t size = (*in)[2 + k].size;
        const int64_t out = (size + stride[k] - 1) / stride[k];
        total = std::max<int64_t>(0, (out - 1) * stride[k] + extent - size);
      } else if (auto_pad == "SAME_UPPER") {
        return std::nullopt;  // resolved per input size by the spec's same: true
      } else {
        fail_node(n, "auto_pad SAME_LOWER with stride {} on an input of run-time size", stride[k]);
      }
      begin[k] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      end[k] = total - begin[k];
    }
    return std::vector<int64_t>{begin[0], begin[1], end[0], end[1]};
  }

  static Dim window_out(const Dim& in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_total,
                        bool same, bool ceil_mode) {
    if (!in.known()) return Dim{};
    if (same) return Dim::of((in.size + stride - 1) / stride);
    const int64_t span = in.size + pad_total - dilation * (kernel - 1) - 1;
    if (span < 0) return Dim::of(0);
    int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    return Dim::of(out);
  }

  std::vector<int64_t> pair_attr(const Node& n, std::string_view key, int64_t fallback) {
    std::vector<int64_t> v = n.ints(key, {fallback, fallback});
    if (v.size() != 2) fail_node(n, "{} {} (scalpel runs 2-D windows only)", key, shape_str(v));
    return v;
  }

  void conv(const Node& n) {
    const Tensor weight = constant_input(n, 1, "the weight");
    if (weight.dim() != 4) fail_node(n, "a weight of shape {} (scalpel runs 2-D convolutions only)", shape_str(weight.shape()));
    const int64_t groups = n.i("group", 1);
    const std::vector<int64_t> kernel = {weight.shape()[2], weight.shape()[3]};
    const std::vector<int64_t> stride = pair_attr(n, "strides", 1), dilation = pair_attr(n, "dilations", 1);
    const std::optional<Dims> in = dims_of(n, 0);
    const std::optional<std::vector<int64_t>> pads = window_pads(n, kernel, stride, dilation, in);
    Json attrs = Json::object();
    attrs["in_channels"] = weight.shape()[1] * groups;
    attrs["out_channels"] = weight.shape()[0];
    attrs["kernel"] = int_array(kernel);
    attrs["stride"] = int_array(stride);
    attrs["dilation"] = int_array(dilation);
    attrs["groups"] = groups;
    if (pads) attrs["pads"] = int_array(*pads); else attrs["same"] = true;
    NamedTensors params = {{"weight", weight}};
    attrs["bias"] = has_input(n, 2);
    if (has_input(n, 2)) params.emplace_back("bias", constant_input(n, 2, "the bias"));
    std::optional<Dims> out;
    if (in && in->size() == 4) {
      out = Dims{(*in)[0], Dim::of(weight.shape()[0])};
      for (size_t k = 0; k < 2; ++k) {
        out->push_back(window_out((*in)[2 + k], kernel[k], stride[k], dilation[k],
                                  pads ? (*pads)[k] + (*pads)[k + 2] : 0, !pads, false));
      }
    }
    emit(n, "conv2d", {dynamic(n, 0)}, attrs, out, params);
  }

  void conv_transpose(const Node& n) {
    const Tensor weight = constant_input(n, 1, "the weight");
    if (weight.dim() != 4) fail_node(n, "a weight of shape {} (scalpel runs 2-D convolutions only)", shape_str(weight.shape()));
    const int64_t groups = n.i("group", 1);
    const std::vector<int64_t> kernel = pair_attr(n, "kernel_shape", 0);
    const std::vector<int64_t> k = kernel[0] > 0 ? kernel : std::vector<int64_t>{weight.shape()[2], weight.shape()[3]};
    const std::vector<int64_t> stride = pair_attr(n, "strides", 1), dilation = pair_attr(n, "dilations", 1);
    std::vector<int64_t> output_padding = pair_attr(n, "output_padding", 0);
    const std::optional<Dims> in = dims_of(n, 0);
    std::vector<int64_t> pads = n.ints("pads", {0, 0, 0, 0});
    const std::string auto_pad = n.s("auto_pad", "NOTSET");
    const std::vector<int64_t> output_shape = n.ints("output_shape");
    if (!output_shape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      // The padding that gives the requested output size (input * stride for SAME).
      for (size_t a = 0; a < 2; ++a) {
        const int64_t extent = dilation[a] * (k[a] - 1) + 1;
        int64_t total = 0;
        if (!output_shape.empty()) {
          if (!in || !(*in)[2 + a].known()) fail_node(n, "output_shape on an input of run-time size");
          const int64_t target = output_shape[output_shape.size() - 2 + a];
          total = stride[a] * ((*in)[2 + a].size - 1) + output_padding[a] + extent - target;
        } else {
          total = output_padding[a] + extent - stride[a];
        }
        if (total < 0) {
          output_padding[a] -= total;  // the output grows by the missing rows
          total = 0;
        }
        const bool upper = auto_pad != "SAME_LOWER";
        pads[a] = upper ? total / 2 : total - total / 2;
        pads[a + 2] = total - pads[a];
      }
    } else if (auto_pad == "VALID") {
      pads = {0, 0, 0, 0};
    }
    SCALPEL_CHECK(pads.size() == 4, "{}: {}: pads {} (4 values for 2-D)", source_, where(n), shape_str(pads));
    Json attrs = Json::object();
    attrs["in_channels"] = weight.shape()[0];
    attrs["out_channels"] = weight.shape()[1] * groups;
    attrs["kernel"] = int_array(k);
    attrs["stride"] = int_array(stride);
    attrs["dilation"] = int_array(dilation);
    attrs["groups"] = groups;
    attrs["pads"] = int_array(pads);
    attrs["output_padding"] = int_array(output_padding);
    NamedTensors params = {{"weight", weight}};
    attrs["bias"] = has_input(n, 2);
    if (has_input(n, 2)) params.emplace_back("bias", constant_input(n, 2, "the bias"));
    std::optional<Dims> out;
    if (in && in->size() == 4) {
      out = Dims{(*in)[0], Dim::of(weight.shape()[1] * groups)};
      for (size_t a = 0; a < 2; ++a) {
        const Dim& d = (*in)[2 + a];
        out->push_back(d.known() ? Dim::of(stride[a] * (d.size - 1) + output_padding[a] + dilation[a] * (k[a] - 1) + 1 -
                                           pads[a] - pads[a + 2])
                                 : Dim{});
      }
    }
    emit(n, "conv_transpose2d", {dynamic(n, 0)}, attrs, out, params);
  }

  void batch_norm(const Node& n) {
    if (n.i("training_mode", 0) != 0 || (n.outputs.size() > 1 && !n.outputs[1].empty())) {
      fail_node(n, "training-mode BatchNormalization (running statistics as outputs) is not supported");
    }
    const Tensor scale = constant_input(n, 1, "the scale");
    Json attrs = Json::object();
    attrs["channels"] = scale.numel();
    attrs["eps"] = n.f("epsilon", 1e-5f);
    attrs["momentum"] = 1.0 - n.f("momentum", 0.9f);  // ONNX weighs the old statistics, PyTorch the new
    emit(n, "batch_norm", {dynamic(n, 0)}, attrs, dims_of(n, 0),
         {{"weight", scale.reshape({scale.numel()})},
          {"bias", constant_input(n, 2, "the bias").reshape({scale.numel()})},
          {"running_mean", constant_input(n, 3, "the mean").reshape({scale.numel()})},
          {"running_var", constant_input(n, 4, "the variance").reshape({scale.numel()})}});
  }

  void pool(const Node& n) {
    if (n.outputs.size() > 1 && !n.outputs[1].empty()) fail_node(n, "the Indices output is not supported");
    const std::vector<int64_t> kernel = n.ints("kernel_shape");
    if (kernel.size() != 2) fail_node(n, "kernel_shape {} (scalpel runs 2-D pooling only)", shape_str(kernel));
    const std::vector<int64_t> stride = pair_attr(n, "strides", 1), dilation = pair_attr(n, "dilations", 1);
    if (dilation != std::vector<int64_t>{1, 1}) fail_node(n, "dilated pooling is not supported");
    const std::optional<Dims> in = dims_of(n, 0);
    const std::optional<std::vector<int64_t>> pads = window_pads(n, kernel, stride, dilation, in);
    const bool ceil_mode = n.i("ceil_mode", 0) != 0;
    Json attrs = Json::object();
    attrs["kernel"] = int_array(kernel);
    attrs["stride"] = int_array(stride);
    if (pads) attrs["pads"] = int_array(*pads); else attrs["same"] = true;
    attrs["ceil_mode"] = ceil_mode;
    const bool max = n.op_type == "MaxPool";
    if (!max) attrs["count_include_pad"] = n.i("count_include_pad", 0) != 0;
    std::optional<Dims> out;
    if (in && in->size() == 4) {
      out = Dims{(*in)[0], (*in)[1]};
      for (size_t k = 0; k < 2; ++k) {
        out->push_back(window_out((*in)[2 + k], kernel[k], stride[k], 1, pads ? (*pads)[k] + (*pads)[k + 2] : 0, !pads,
                                  ceil_mode));
      }
    }
    emit(n, max ? "max_pool2d" : "avg_pool2d", {dynamic(n, 0)}, attrs, out);
  }

  void global_pool(const Node& n) {
    std::optional<Dims> out = dims_of(n, 0);
    if (out && out->size() == 4) {
      (*out)[2] = Dim::of(1);
      (*out)[3] = Dim::of(1);
    } else {
      out.reset();
    }
    emit(n, n.op_type == "GlobalAveragePool" ? "global_avg_pool" : "global_max_pool", {dynamic(n, 0)},
         obj({{"keepdims", true}}), out);
  }

  // ---- matrix products ----

  void gemm(const Node& n) {
    const bool trans_a = n.i("transA", 0) != 0, trans_b = n.i("transB", 0) != 0;
    const double alpha = n.f("alpha", 1.0f), beta = n.f("beta", 1.0f);
    std::optional<Dims> a_dims = dims_of(n, 0);
    std::string a = dynamic(n, 0);
    if (trans_a) {
      if (a_dims) std::swap((*a_dims)[0], (*a_dims)[1]);
      a = emit(n, "transpose", {a}, obj({{"perm", int_array({1, 0})}}), a_dims, {}, "a_t");
    }
    const Dim rows = a_dims ? (*a_dims)[0] : Dim{};
    std::string product;
    int64_t columns = -1;
    std::optional<Tensor> c = is_constant(n, 2) ? std::optional<Tensor>(constant_input(n, 2, "C")) : std::nullopt;
    bool c_done = !has_input(n, 2) || beta == 0;
    const bool last_is_product = c_done;
    if (is_constant(n, 1)) {
      Tensor b = constant_input(n, 1, "B");
      if (b.dim() != 2) fail_node(n, "B of shape {}", shape_str(b.shape()));
      Tensor weight = (trans_b ? b : b.transpose(0, 1)).contiguous();  // [out, in]
      if (alpha != 1) weight = ops::mul_scalar(weight.to(DType::F32), alpha);
      columns = weight.shape()[0];
      Json attrs = Json::object();
      attrs["in_features"] = weight.shape()[1];
      attrs["out_features"] = columns;
      NamedTensors params = {{"weight", weight}};
      // A bias of N values (shape [N], [1, N] or a scalar) is the linear's own.
      const bool bias_fits = c && !c_done && (c->numel() == columns || c->numel() == 1) &&
                             (c->dim() <= 1 || (c->dim() == 2 && c->shape()[0] == 1));
      attrs["bias"] = bias_fits;
      if (bias_fits) {
        params.emplace_back("bias", ops::mul_scalar(c->to(DType::F32).contiguous().reshape({c->numel()}), beta)
                                        .expand({columns}).contiguous());
        c_done = true;
      }
      product = emit(n, "linear", {a}, attrs, Dims{rows, Dim::of(columns)}, params, c_done ? "" : "product");
      if (c_done) return;
    } else {
      std::string b = dynamic(n, 1);
      if (trans_b) b = emit(n, "transpose", {b}, obj({{"perm", int_array({1, 0})}}), std::nullopt, {}, "b_t");
      product = emit(n, "matmul", {a, b}, Json::object(), std::nullopt, {}, alpha == 1 && last_is_product ? "" : "product");
      if (alpha != 1) {
        const std::string alpha_value = emit_constant(n, Tensor::scalar(alpha), "alpha");
        product = emit(n, "mul", {product, alpha_value}, Json::object(), std::nullopt, {}, last_is_product ? "" : "scaled");
      }
      if (c_done) return;
    }
    // The bias C as a separate addition (a [M, N] matrix or a computed tensor).
    std::string c_value;
    if (c) {
      c_value = emit_constant(n, ops::mul_scalar(c->to(DType::F32), beta), "c");
    } else {
      if (beta != 1) fail_node(n, "beta {} with a computed C", beta);
      c_value = dynamic(n, 2);
    }
    emit(n, "add", {product, c_value}, Json::object(), columns >= 0 ? std::optional<Dims>(Dims{rows, Dim::of(columns)}) : std::nullopt);
  }

  void matmul(const Node& n) {
    const std::optional<Dims> a_dims = dims_of(n, 0), b_dims = dims_of(n, 1);
    if (is_constant(n, 1) && input(n, 1).constant.dim() == 2 && !is_constant(n, 0)) {
      const Tensor b = input(n, 1).constant;
      Json attrs = Json::object();
      attrs["in_features"] = b.shape()[0];
      attrs["out_features"] = b.shape()[1];
      attrs["bias"] = false;
      std::optional<Dims> out = a_dims;
      if (out && !out->empty()) out->back() = Dim::of(b.shape()[1]);
      if (out && out->size() < 2) out.reset();  // a 1-D operand: let the runtime say
      emit(n, "linear", {dynamic(n, 0)}, attrs, out, {{"weight", b.transpose(0, 1).contiguous()}});
      return;
    }
    std::optional<Dims> out;
    if (a_dims && b_dims && a_dims->size() >= 2 && b_dims->size() >= 2) {
      const Dims batch = broadcast(Dims(a_dims->begin(), a_dims->end() - 2), Dims(b_dims->begin(), b_dims->end() - 2));
      out = batch;
      out->push_back((*a_dims)[a_dims->size() - 2]);
      out->push_back(b_dims->back());
    }
    emit(n, "matmul", {dynamic(n, 0), dynamic(n, 1)}, Json::object(), out);
  }

  // ---- padding and resampling ----

  void pad(const Node& n) {
    std::vector<int64_t> pads;
    double value = 0;
    if (opset_ < 11) {
      pads = n.ints("pads");
      value = n.f("value", 0.0f);
    } else {
      pads = int_values(constant_input(n, 1, "the pads"));
      if (has_input(n, 2)) value = constant_input(n, 2, "the constant value").contiguous().to_vector().at(0);
      if (has_input(n, 3)) fail_node(n, "the axes input is not supported");
    }
    std::string mode = n.s("mode", "constant");
    if (mode != "constant" && mode != "reflect" && mode != "edge") fail_node(n, "mode {} is not supported", mode);
    if (pads.size() != 8) fail_node(n, "pads {} (scalpel pads 4-D tensors over their last two axes)", shape_str(pads));
    if (pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0) {
      fail_node(n, "pads {} pad the batch or channel axis", shape_str(pads));
    }
    for (const int64_t p : pads) {
      if (p < 0) fail_node(n, "negative pads {} (cropping) are not supported", shape_str(pads));
      if (p > kMaxSpatialSize) fail_node(n, "absurd pads {}", shape_str(pads));
    }
    std::optional<Dims> out = dims_of(n, 0);
    if (out && out->size() == 4) {
      for (size_t k = 0; k < 2; ++k) {
        Dim& d = (*out)[2 + k];
        d = d.known() ? Dim::of(d.size + pads[2 + k] + pads[6 + k]) : Dim{};
      }
    }
    Json attrs = Json::object();
    attrs["pads"] = int_array({pads[2], pads[3], pads[6], pads[7]});
    attrs["value"] = value;
    attrs["mode"] = mode;
    emit(n, "pad", {dynamic(n, 0)}, attrs, out);
  }

  void resize(const Node& n) {
    std::string mode = n.s("mode", "nearest");
    std::vector<double> scales;
    std::vector<int64_t> sizes;
    std::string coordinates = "asymmetric";  // Upsample and Resize-10
    std::string nearest_mode = "floor";
    if (n.op_type == "Upsample" || opset_ < 11) {
      if (const Attr* a = n.find("scales")) {
        scales.assign(a->floats.begin(), a->floats.end());
      } else {
        scales = constant_input(n, 1, "the scales").to(DType::F64).contiguous().to_vector();
      }
    } else {
      coordinates = n.s("coordinate_transformation_mode", "half_pixel");
      nearest_mode = n.s("nearest_mode", "round_prefer_floor");
      if (n.i("antialias", 0) != 0) fail_node(n, "antialias is not supported");
      if (n.find("axes")) fail_node(n, "the axes attribute is not supported");
      if (has_input(n, 3)) {
        // Sizes built from Shape(x): the batch and channels may be run-time sizes (-1 here).
        const Value& v = input(n, 3);
        if (v.kind == Value::Kind::Dynamic) fail_node(n, "the sizes must be computable at import");
        if (v.kind == Value::Kind::Constant) {
          sizes = int_values(v.constant);
        } else {
          for (const Dim& d : *v.dims) sizes.push_back(d.size);
          if (sizes.size() != 4 || sizes[2] < 0 || sizes[3] < 0) fail_node(n, "output height and width only known at run time");
        }
      } else {
        scales = constant_input(n, 2, "the scales").to(DType::F64).contiguous().to_vector();
      }
    }
    if (mode == "bilinear") mode = "linear";
    if (mode != "nearest" && mode != "linear") fail_node(n, "mode {} is not supported", mode);
    const std::optional<Dims> in = dims_of(n, 0);
    if (!scales.empty()) {
      if (scales.size() != 4 || scales[0] != 1 || scales[1] != 1) {
        fail_node(n, "scales [{}] (scalpel resizes the last two axes of 4-D tensors)", fmt::join(scales, ", "));
      }
    }
    for (const double f : scales) {
      if (!(f > 0 && f <= 1024)) fail_node(n, "absurd scales [{}]", fmt::join(scales, ", "));
    }
    if (!sizes.empty()) {
      if (sizes.size() == 4 && (sizes[2] > kMaxSpatialSize || sizes[3] > kMaxSpatialSize || sizes[2] <= 0 || sizes[3] <= 0)) {
        fail_node(n, "absurd sizes {}", shape_str(sizes));
      }
      // The batch and channel entries must leave those axes alone.
      const bool fits = sizes.size() == 4 && in && in->size() == 4 &&
                        (!(*in)[0].known() || (*in)[0].size == sizes[0] || sizes[0] < 0) &&
                        (!(*in)[1].known() || (*in)[1].size == sizes[1] || sizes[1] < 0);
      if (!fits) fail_node(n, "sizes {} (scalpel resizes the last two axes of 4-D tensors)", shape_str(sizes));
    }
    // Each output pixel's source coordinate in ONNX terms, matched to one of the spec's modes.
    std::string spec_coordinates;
    auto integer_upscale = [&]() {
      if (!scales.empty()) {
        return std::floor(scales[2]) == scales[2] && std::floor(scales[3]) == scales[3] && scales[2] >= 1 && scales[3] >= 1;
      }
      for (size_t k = 0; k < 2; ++k) {
        const Dim& d = (*in)[2 + k];
        if (!d.known() || d.size == 0 || sizes[2 + k] % d.size != 0) return false;
      }
      return true;
    };
    if (mode == "nearest") {
      if (coordinates == "asymmetric" && nearest_mode == "floor") {
        spec_coordinates = "asymmetric";
      } else if ((coordinates == "half_pixel" || coordinates == "pytorch_half_pixel") &&
                 (nearest_mode == "round_prefer_floor" || nearest_mode == "round_prefer_ceil") && integer_upscale()) {
        spec_coordinates = "asymmetric";  // the same source pixels for integer factors, whatever the rounding
      } else if (coordinates == "asymmetric" && nearest_mode == "round_prefer_floor" && !scales.empty() &&
                 scales[2] <= 2 && scales[3] <= 2 && integer_upscale()) {
        spec_coordinates = "asymmetric";  // x/2 rounds down at .5 for factors 1 and 2
      } else {
        fail_node(n, "nearest resize with coordinate_transformation_mode {} and nearest_mode {} is not supported",
                  coordinates, nearest_mode);
      }
    } else {
      if (coordinates == "half_pixel" || coordinates == "pytorch_half_pixel") spec_coordinates = "half_pixel";
      else if (coordinates == "align_corners") spec_coordinates = "align_corners";
      else fail_node(n, "linear resize with coordinate_transformation_mode {} is not supported", coordinates);
      if (n.op_type == "Upsample" || opset_ < 11) fail_node(n, "linear {} (asymmetric coordinates) is not supported", n.op_type);
    }
    // ONNX maps coordinates with the scale it is given; scalpel with the ratio of the sizes:
    // the same when the scaled size is whole. pytorch_half_pixel differs for an output of 1.
    for (size_t k = 0; k < 2 && !scales.empty(); ++k) {
      const double scaled = in && (*in)[2 + k].known() ? (*in)[2 + k].size * scales[2 + k] : scales[2 + k];
      if (std::floor(scaled) != scaled) {
        fail_node(n, "scales [{}] give a fractional output size (ONNX then maps coordinates with the scale, scalpel with the size ratio)",
                  fmt::join(scales, ", "));
      }
    }
    if (coordinates == "pytorch_half_pixel" && !sizes.empty() && (sizes[2] == 1 || sizes[3] == 1)) {
      fail_node(n, "pytorch_half_pixel with an output size of 1 is not supported");
    }
    Json attrs = Json::object();
    attrs["mode"] = mode == "nearest" ? "nearest" : "bilinear";
    attrs["coordinates"] = spec_coordinates;
    std::optional<Dims> out;
    if (in && in->size() == 4) out = Dims{(*in)[0], (*in)[1], Dim{}, Dim{}};
    if (!sizes.empty()) {
      attrs["size"] = int_array({sizes[2], sizes[3]});
      if (out) {
        (*out)[2] = Dim::of(sizes[2]);
        (*out)[3] = Dim::of(sizes[3]);
      }
    } else {
      attrs["scale"] = float_array({scales[2], scales[3]});
      if (out) {
        for (size_t k = 0; k < 2; ++k) {
          const Dim& d = (*in)[2 + k];
          (*out)[2 + k] = d.known() ? Dim::of(static_cast<int64_t>(std::floor(d.size * scales[2 + k]))) : Dim{};
        }
      }
    }
    emit(n, "upsample", {dynamic(n, 0)}, attrs, out);
  }

  std::string source_;
  int64_t opset_;
  const Graph& graph_;
  const OnnxImportOptions& options_;
  ImportedGraph out_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::string> constant_nodes_;
  std::set<std::string> taken_nodes_, taken_values_;
  int64_t next_symbol_ = 0;
};

std::string folder_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string() : parent.string();
}

}  // namespace

ImportedGraph parse_onnx(std::string_view bytes, const std::string& source, const std::string& folder,
                         const OnnxImportOptions& options) {
  Parser parser(source, folder);
  const OnnxModel model = parser.model(bytes);
  SCALPEL_CHECK(model.has_graph, "{}: not an ONNX model (no graph)", source);
  return Translator(source, model, options).run();
}

ImportedGraph import_onnx(const std::string& path, const OnnxImportOptions& options) {
  const MappedFile file(path);
  return parse_onnx(file.bytes(), path, folder_of(path), options);
}

OnnxTensor parse_onnx_tensor(std::string_view bytes, const std::string& source, const std::string& folder) {
  Parser parser(source, folder);
  return parser.tensor(ProtoReader(bytes, source));
}

const std::vector<std::string>& onnx_supported_ops() {
  static const std::vector<std::string> ops = [] {
    std::vector<std::string> v = Translator::supported();
    std::sort(v.begin(), v.end());
    return v;
  }();
  return ops;
}

OnnxModelInfo read_onnx_info(std::string_view bytes, const std::string& source) {
  const OnnxModel model = Parser(source, "").model(bytes);
  SCALPEL_CHECK(model.has_graph, "{}: not an ONNX model (no graph)", source);
  OnnxModelInfo info;
  info.opset = model.opset;
  for (const Node& n : model.graph.nodes) {
    info.op_types.push_back(n.domain.empty() || n.domain == "ai.onnx" ? n.op_type : n.domain + ":" + n.op_type);
  }
  std::set<std::string> initializers;
  for (const auto& [name, tensor] : model.graph.initializers) initializers.insert(name);
  for (const ValueInfo& v : model.graph.inputs) {
    if (!initializers.count(v.name)) info.inputs.push_back(v.name);
  }
  for (const ValueInfo& v : model.graph.outputs) info.outputs.push_back(v.name);
  return info;
}

}  // namespace scalpel::models
