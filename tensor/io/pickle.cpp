#include "tensor/io/pickle.h"

#include <cstring>

#include "tensor/error.h"
#include "tensor/io/byte_reader.h"

namespace scalpel::pickle {

namespace {

// Opcodes (Python's Lib/pickle.py names).
enum Op : uint8_t {
  MARK = '(', STOP = '.', BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N',
  BINPERSID = 'Q', REDUCE = 'R', BINUNICODE = 'X', EMPTY_LIST = ']', APPEND = 'a', BUILD = 'b',
  GLOBAL = 'c', APPENDS = 'e', BINGET = 'h', LONG_BINGET = 'j', BINPUT = 'q', LONG_BINPUT = 'r',
  SETITEM = 's', TUPLE = 't', SETITEMS = 'u', EMPTY_DICT = '}', EMPTY_TUPLE = ')',
  BINFLOAT = 'G', BINBYTES = 'B', SHORT_BINBYTES = 'C',
  PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88,
  NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b, SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e, STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,
};

struct StorageClass {
  std::string_view name;
  StorageType type;
  size_t element_size;
};
constexpr StorageClass kStorageClasses[] = {
    {"FloatStorage", StorageType::Float, 4},   {"DoubleStorage", StorageType::Double, 8},
    {"HalfStorage", StorageType::Half, 2},     {"BFloat16Storage", StorageType::BFloat16, 2},
    {"LongStorage", StorageType::Long, 8},     {"IntStorage", StorageType::Int, 4},
    {"ShortStorage", StorageType::Short, 2},   {"CharStorage", StorageType::Char, 1},
    {"ByteStorage", StorageType::Byte, 1},     {"BoolStorage", StorageType::Bool, 1},
};

const StorageClass& storage_class(StorageType type) {
  for (const StorageClass& c : kStorageClasses) {
    if (c.type == type) return c;
  }
  fail("unknown storage type");
}

// Decodes UTF-8 text whose code points are all below 256 into Latin-1 bytes (how protocol 2
// pickles a bytes object: _codecs.encode(<str>, "latin1")).
std::string utf8_to_latin1(std::string_view text, const std::string& source) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if ((c & 0xFE) == 0xC2 && i + 1 < text.size() &&
               (static_cast<uint8_t>(text[i + 1]) & 0xC0) == 0x80) {
      out += static_cast<char>(((c & 0x03) << 6) | (static_cast<uint8_t>(text[i + 1]) & 0x3F));
      ++i;
    } else {
      fail("{}: _codecs.encode argument is not Latin-1 text", source);
    }
  }
  return out;
}

}  // namespace

std::string_view storage_type_name(StorageType type) { return storage_class(type).name; }
size_t storage_element_size(StorageType type) { return storage_class(type).element_size; }

std::string_view Value::kind_name() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

const Value* Value::get(std::string_view key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto& [k, v] : dict) {
    if (k->kind == Kind::String && k->text == key) return v;
  }
  return nullptr;
}

Unpickler::Unpickler(std::string_view bytes, std::string source)
    : bytes_(bytes), source_(std::move(source)) {}

Value* Unpickler::make(Value::Kind kind) {
  Value& value = arena_.emplace_back();
  value.kind = kind;
  return &value;
}

Value* Unpickler::resolve_global(const std::string& module, const std::string& name,
                                 size_t op_pos) {
  const std::string full = module + "." + name;
  const bool allowed =
      full == "collections.OrderedDict" || full == "torch._utils._rebuild_tensor_v2" ||
      full == "torch._utils._rebuild_tensor" || full == "torch._utils._rebuild_parameter" ||
      full == "torch._utils._rebuild_parameter_with_state" || full == "torch.Size" ||
      full == "_codecs.encode";
  Value* value = make(Value::Kind::Global);
  value->text = full;
  if (allowed) return value;
  if (module == "torch") {
    for (const StorageClass& c : kStorageClasses) {
      if (c.name == name) {
        value->storage_type = c.type;
        return value;
      }
    }
  }
  fail("{}: the pickle at byte {} refers to global {}; scalpel's weights loader refuses it: "
       "loading never executes code, and only the globals of a state dict are accepted",
       source_, op_pos, full);
}

Value* Unpickler::persistent_load(const Value& pid, size_t op_pos) {
  auto bad = [&](std::string_view why) {
    fail("{}: persistent id at byte {} is not a torch storage reference: {}", source_, op_pos,
         why);
  };
  if (pid.kind != Value::Kind::Tuple || pid.items.empty()) bad("expected a tuple");
  const auto& f = pid.items;
  if (f[0]->kind == Value::Kind::String && f[0]->text == "module") {
    fail("{}: the file holds a pickled nn.Module, not a state dict; save model.state_dict() "
         "instead",
         source_);
  }
  if (f[0]->kind != Value::Kind::String || f[0]->text != "storage") bad("tag is not 'storage'");
  // Zip format: 5 fields. Legacy format: a 6th, view metadata, which torch >= 1.0 leaves None.
  if (f.size() != 5 && f.size() != 6) bad("expected 5 or 6 fields");
  if (f[1]->kind != Value::Kind::Global || f[1]->text.rfind("torch.", 0) != 0 ||
      !f[1]->text.ends_with("Storage")) {
    bad("field 1 is not a storage type");
  }
  if (f[2]->kind != Value::Kind::String) bad("key is not a string");
  if (f[3]->kind != Value::Kind::String) bad("location is not a string");
  if (f[4]->kind != Value::Kind::Int || f[4]->integer < 0) bad("numel is not a non-negative int");
  if (f.size() == 6 && f[5]->kind != Value::Kind::None) {
    fail("{}: storage '{}' is a view of another storage (pre-1.0 PyTorch files); re-save it "
         "with a recent PyTorch",
         source_, f[2]->text);
  }
  Value* storage = make(Value::Kind::Storage);
  storage->storage_type = f[1]->storage_type;
  storage->text = f[2]->text;
  storage->location = f[3]->text;
  storage->integer = f[4]->integer;
  auto [it, inserted] = storages_.emplace(storage->text, storage);
  SCALPEL_CHECK(inserted || (it->second->storage_type == storage->storage_type &&
                             it->second->integer == storage->integer),
                "{}: storage '{}' is referenced with different types or sizes", source_,
                storage->text);
  return storage;
}

Value* Unpickler::reduce(const Value& callable, const Value& args, size_t op_pos) {
  auto fail_args = [&](std::string_view expected) {
    fail("{}: bad arguments for {} at byte {}: expected {}", source_, callable.text, op_pos,
         expected);
  };
  if (callable.kind != Value::Kind::Global) {
    fail("{}: REDUCE at byte {} calls a {}, not a global", source_, op_pos, callable.kind_name());
  }
  if (args.kind != Value::Kind::Tuple) fail_args("a tuple of arguments");
  const auto& a = args.items;
  const std::string& name = callable.text;

  if (name == "collections.OrderedDict") {
    if (!a.empty()) fail_args("no arguments");
    return make(Value::Kind::Dict);
  }
  if (name == "torch.Size") {
    if (a.size() != 1 || a[0]->kind != Value::Kind::Tuple) fail_args("(tuple,)");
    return const_cast<Value*>(a[0]);
  }
  if (name == "_codecs.encode") {
    if (a.size() != 2 || a[0]->kind != Value::Kind::String || a[1]->kind != Value::Kind::String ||
        a[1]->text != "latin1") {
      fail_args("(str, 'latin1')");
    }
    Value* bytes = make(Value::Kind::Bytes);
    bytes->text = utf8_to_latin1(a[0]->text, source_);
    return bytes;
  }
  if (name == "torch._utils._rebuild_parameter" ||
      name == "torch._utils._rebuild_parameter_with_state") {
    const size_t n = name.ends_with("_with_state") ? 4 : 3;
    if (a.size() != n || a[0]->kind != Value::Kind::Tensor) fail_args("a tensor and its flags");
    return const_cast<Value*>(a[0]);
  }
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
    const bool v2 = name.ends_with("_v2");
    if ((v2 && a.size() != 6 && a.size() != 7) || (!v2 && a.size() != 4)) {
      fail_args(v2 ? "6 or 7 arguments" : "4 arguments");
    }
    if (a[0]->kind != Value::Kind::Storage || a[1]->kind != Value::Kind::Int ||
        a[2]->kind != Value::Kind::Tuple || a[3]->kind != Value::Kind::Tuple ||
        a[2]->items.size() != a[3]->items.size()) {
      fail_args("(storage, offset, size tuple, stride tuple of the same length)");
    }
    Value* tensor = make(Value::Kind::Tensor);
    tensor->items = {a[0]};
    tensor->integer = a[1]->integer;
    // The tensor must lie inside its storage: offset + sum((size-1)*stride) < numel. Offset,
    // sizes, strides and the element count are bounded so that no product can overflow.
    constexpr int64_t kLimit = int64_t{1} << 40;
    bool ok = tensor->integer >= 0 && tensor->integer < kLimit;
    int64_t last = tensor->integer, numel = 1;
    for (size_t i = 0; i < a[2]->items.size() && ok; ++i) {
      const Value* s = a[2]->items[i];
      const Value* st = a[3]->items[i];
      ok = s->kind == Value::Kind::Int && st->kind == Value::Kind::Int && s->integer >= 0 &&
           s->integer < kLimit && st->integer >= 0 && st->integer < kLimit;
      if (!ok) break;
      tensor->size.push_back(s->integer);
      tensor->stride.push_back(st->integer);
      numel = s->integer == 0 ? 0 : numel;
      if (s->integer > 0) {
        ok = numel <= kLimit / s->integer &&
             (s->integer - 1) <= (kLimit - last) / std::max<int64_t>(st->integer, 1);
        numel *= s->integer;
        last += (s->integer - 1) * st->integer;
      }
    }
    if (!ok) fail_args("non-negative offset, sizes and strides, and at most 2^40 elements");
    SCALPEL_CHECK(numel == 0 || last < a[0]->integer,
                  "{}: tensor at byte {} (offset {}, size {}, stride {}) reaches element {} of "
                  "storage '{}', which has {}",
                  source_, op_pos, tensor->integer, tensor->size, tensor->stride, last,
                  a[0]->text, a[0]->integer);
    return tensor;
  }
  fail("{}: {} at byte {} cannot be called", source_, name, op_pos);
}

const Value& Unpickler::load() {
  ByteReader in(bytes_, source_, pos_);
  std::vector<Value*> stack;
  std::vector<size_t> marks;
  std::unordered_map<uint64_t, Value*> memo;
  size_t op_pos = 0;

  auto pop = [&]() -> Value* {
    SCALPEL_CHECK(stack.size() > (marks.empty() ? 0 : marks.back()),
                  "{}: pickle stack underflow at byte {}", source_, op_pos);
    Value* v = stack.back();
    stack.pop_back();
    return v;
  };
  auto top = [&]() -> Value* {
    SCALPEL_CHECK(stack.size() > (marks.empty() ? 0 : marks.back()),
                  "{}: pickle stack underflow at byte {}", source_, op_pos);
    return stack.back();
  };
  // Pops everything above the last MARK, and the mark.
  auto pop_mark = [&]() {
    SCALPEL_CHECK(!marks.empty(), "{}: pickle opcode at byte {} needs a MARK", source_, op_pos);
    std::vector<Value*> items(stack.begin() + static_cast<ptrdiff_t>(marks.back()), stack.end());
    stack.resize(marks.back());
    marks.pop_back();
    return items;
  };
  auto push_string = [&](Value::Kind kind, uint64_t length) {
    Value* v = make(kind);
    v->text = std::string(in.take(length, "string"));
    stack.push_back(v);
  };
  auto push_int = [&](int64_t value) {
    Value* v = make(Value::Kind::Int);
    v->integer = value;
    stack.push_back(v);
  };
  auto push_long = [&](uint64_t length) {
    const std::string_view raw = in.take(length, "long integer");
    if (length > 8) {
      Value* v = make(Value::Kind::BigInt);
      v->text = std::string(raw);
      stack.push_back(v);
      return;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < length; ++i) value |= uint64_t{static_cast<uint8_t>(raw[i])} << (8 * i);
    if (length > 0 && length < 8 && (static_cast<uint8_t>(raw[length - 1]) & 0x80)) {
      value |= ~uint64_t{0} << (8 * length);  // sign-extend
    }
    push_int(static_cast<int64_t>(value));
  };
  auto push_tuple = [&](std::vector<Value*> items) {
    Value* t = make(Value::Kind::Tuple);
    t->items.assign(items.begin(), items.end());
    stack.push_back(t);
  };
  auto memo_get = [&](uint64_t index) {
    auto it = memo.find(index);
    SCALPEL_CHECK(it != memo.end(), "{}: pickle memo entry {} missing at byte {}", source_, index,
                  op_pos);
    stack.push_back(it->second);
  };
  auto set_items = [&](Value* dict, const std::vector<Value*>& kv) {
    SCALPEL_CHECK(dict->kind == Value::Kind::Dict && kv.size() % 2 == 0,
                  "{}: SETITEM(S) at byte {} on a {} with {} values", source_, op_pos,
                  dict->kind_name(), kv.size());
    for (size_t i = 0; i < kv.size(); i += 2) dict->dict.emplace_back(kv[i], kv[i + 1]);
  };
  auto append = [&](Value* list, const std::vector<Value*>& items) {
    SCALPEL_CHECK(list->kind == Value::Kind::List, "{}: APPEND(S) at byte {} on a {}", source_,
                  op_pos, list->kind_name());
    list->items.insert(list->items.end(), items.begin(), items.end());
  };

  for (;;) {
    op_pos = in.pos();
    const uint8_t op = in.u8("pickle opcode");
    switch (op) {
      case PROTO: {
        const uint8_t version = in.u8("protocol version");
        SCALPEL_CHECK(version >= 2 && version <= 5, "{}: unsupported pickle protocol {} at byte {}",
                      source_, version, op_pos);
        break;
      }
      case FRAME: {
        // Frames only group opcodes for buffered reading; the length just has to fit.
        const uint64_t length = in.u64("frame length");
        SCALPEL_CHECK(length <= in.remaining(), "{}: truncated: pickle frame at byte {} needs {} "
                      "bytes, only {} left", source_, op_pos, length, in.remaining());
        break;
      }
      case STOP: {
        SCALPEL_CHECK(stack.size() == 1 && marks.empty(),
                      "{}: malformed pickle: STOP at byte {} with {} values on the stack", source_,
                      op_pos, stack.size());
        pos_ = in.pos();
        return *stack.back();
      }
      case MARK: marks.push_back(stack.size()); break;
      case NONE: stack.push_back(make(Value::Kind::None)); break;
      case NEWTRUE:
      case NEWFALSE: {
        Value* v = make(Value::Kind::Bool);
        v->boolean = op == NEWTRUE;
        stack.push_back(v);
        break;
      }
      case BININT: push_int(static_cast<int32_t>(in.u32("BININT"))); break;
      case BININT1: push_int(in.u8("BININT1")); break;
      case BININT2: push_int(in.u16("BININT2")); break;
      case LONG1: push_long(in.u8("LONG1 length")); break;
      case LONG4: push_long(in.u32("LONG4 length")); break;
      case BINFLOAT: {
        const uint64_t big_endian = in.read_le<uint64_t>("BINFLOAT");
        const uint64_t bits = __builtin_bswap64(big_endian);
        Value* v = make(Value::Kind::Float);
        std::memcpy(&v->real, &bits, sizeof bits);
        stack.push_back(v);
        break;
      }
      case SHORT_BINUNICODE: push_string(Value::Kind::String, in.u8("string length")); break;
      case BINUNICODE: push_string(Value::Kind::String, in.u32("string length")); break;
      case BINUNICODE8: push_string(Value::Kind::String, in.u64("string length")); break;
      case SHORT_BINBYTES: push_string(Value::Kind::Bytes, in.u8("bytes length")); break;
      case BINBYTES: push_string(Value::Kind::Bytes, in.u32("bytes length")); break;
      case BINBYTES8: push_string(Value::Kind::Bytes, in.u64("bytes length")); break;
      case EMPTY_DICT: stack.push_back(make(Value::Kind::Dict)); break;
      case EMPTY_LIST: stack.push_back(make(Value::Kind::List)); break;
      case EMPTY_TUPLE: push_tuple({}); break;
      case TUPLE: push_tuple(pop_mark()); break;
      case TUPLE1: {
        Value* a = pop();
        push_tuple({a});
        break;
      }
      case TUPLE2: {
        Value* b = pop();
        Value* a = pop();
        push_tuple({a, b});
        break;
      }
      case TUPLE3: {
        Value* c = pop();
        Value* b = pop();
        Value* a = pop();
        push_tuple({a, b, c});
        break;
      }
      case APPEND: {
        Value* item = pop();
        append(top(), {item});
        break;
      }
      case APPENDS: {
        std::vector<Value*> items = pop_mark();
        append(top(), items);
        break;
      }
      case SETITEM: {
        Value* value = pop();
        Value* key = pop();
        set_items(top(), {key, value});
        break;
      }
      case SETITEMS: {
        std::vector<Value*> kv = pop_mark();
        set_items(top(), kv);
        break;
      }
      case BINPUT: memo[in.u8("BINPUT index")] = top(); break;
      case LONG_BINPUT: memo[in.u32("LONG_BINPUT index")] = top(); break;
      case MEMOIZE: memo[memo.size()] = top(); break;
      case BINGET: memo_get(in.u8("BINGET index")); break;
      case LONG_BINGET: memo_get(in.u32("LONG_BINGET index")); break;
      case GLOBAL: {
        // "module\nname\n"
        auto line = [&](std::string_view what) {
          const size_t start = in.pos();
          while (in.take(1, what) != "\n") {
          }
          return std::string(bytes_.substr(start, in.pos() - start - 1));
        };
        const std::string module = line("GLOBAL module");
        const std::string name = line("GLOBAL name");
        stack.push_back(resolve_global(module, name, op_pos));
        break;
      }
      case STACK_GLOBAL: {
        Value* name = pop();
        Value* module = pop();
        SCALPEL_CHECK(module->kind == Value::Kind::String && name->kind == Value::Kind::String,
                      "{}: STACK_GLOBAL at byte {} needs two strings", source_, op_pos);
        stack.push_back(resolve_global(module->text, name->text, op_pos));
        break;
      }
      case REDUCE:
      case NEWOBJ: {
        Value* args = pop();
        Value* callable = pop();
        stack.push_back(reduce(*callable, *args, op_pos));
        break;
      }
      case BUILD: {
        // Sets instance state. torch uses it for a state dict's `_metadata` attribute, which
        // loading does not need; any other target is refused.
        pop();
        const Value* target = top();
        SCALPEL_CHECK(target->kind == Value::Kind::Dict,
                      "{}: BUILD at byte {} on a {} (only dict state is accepted)", source_, op_pos,
                      target->kind_name());
        break;
      }
      case BINPERSID: {
        Value* pid = pop();
        stack.push_back(persistent_load(*pid, op_pos));
        break;
      }
      default:
        fail("{}: unsupported pickle opcode 0x{:02x} ('{}') at byte {}", source_, op,
             op >= 0x20 && op < 0x7f ? static_cast<char>(op) : '?', op_pos);
    }
  }
}

}  // namespace scalpel::pickle
