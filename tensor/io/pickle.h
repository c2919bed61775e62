#pragma once
// A restricted unpickler for the pickles torch.save writes (protocol 2, and the protocol-2..5
// opcodes found in torch's zip checkpoints).
//
// Loading never executes code. Like PyTorch's `weights_only=True` loader, only the globals a
// state dict needs are accepted, and each is interpreted here, not called:
//   collections.OrderedDict                      -> an empty Dict (items follow as SETITEMS)
//   torch._utils._rebuild_tensor_v2 / _rebuild_tensor -> a TensorRef (storage, offset, size,
//                                                    stride), checked to lie inside the storage
//   torch._utils._rebuild_parameter(_with_state) -> its tensor argument
//   torch.Size                                   -> its tuple argument
//   torch.<Type>Storage (Float, Double, Half, BFloat16, Long, Int, Short, Char, Byte, Bool)
//                                                -> a storage type, used in persistent ids
//   _codecs.encode(str, "latin1")                -> Bytes (how protocol 2 pickles bytes)
// Any other global (os.system, builtins.eval, ...) throws Error; so does an opcode outside the
// supported set (named with its byte offset), a truncated stream or an ill-typed argument.
//
// Persistent ids (BINPERSID) must be torch storages: ('storage', <Type>Storage, key, location,
// numel[, view_metadata]) and become Storage values; the bytes are loaded by the caller
// (tensor/io/torch_load.h), which knows the container format.
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>


namespace scalpel::pickle {

// Element type of a torch storage, as named by its storage class.
enum class StorageType { Float, Double, Half, BFloat16, Long, Int, Short, Char, Byte, Bool };
std::string_view storage_type_name(StorageType type);  // "FloatStorage", ...
size_t storage_element_size(StorageType type);

struct Value {
  enum class Kind {
    None, Bool, Int, BigInt, Float, String, Bytes, Tuple, List, Dict,
    Global,       // a whitelisted global, not yet applied (e.g. a storage type)
    Storage,      // a persistent id naming a torch storage
    Tensor,       // the result of _rebuild_tensor(_v2)
  };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;  // Int; Storage: numel; Tensor: storage offset (elements)
  double real = 0;
  // String (UTF-8), Bytes, Global ("module.name"), Storage (key), BigInt (two's complement,
  // little-endian bytes, more than 8 of them).
  std::string text;
  std::vector<const Value*> items;  // Tuple, List; Tensor: {storage}
  std::vector<std::pair<const Value*, const Value*>> dict;  // Dict, in insertion order
  StorageType storage_type = StorageType::Float;  // Storage, and Global storage types
  std::string location;                           // Storage: e.g. "cpu", "cuda:0"
  std::vector<int64_t> size, stride;              // Tensor

  std::string_view kind_name() const;
  // Dict lookup of a string key; null when absent (or not a dict).
  const Value* get(std::string_view key) const;
};

// Reads pickles from an in-memory buffer. Values are owned by the Unpickler and live as long
// as it does (they may be shared and even form cycles, as in Python).
class Unpickler {
 public:
  // `bytes` must outlive the Unpickler; `source` names it in error messages.
  Unpickler(std::string_view bytes, std::string source);
  // Reads one pickle starting at position(), up to and including its STOP opcode.
  const Value& load();
  size_t position() const { return pos_; }
  // Every storage met so far (by key), with its type and numel as the persistent id said.
  const std::unordered_map<std::string, const Value*>& storages() const { return storages_; }

 private:
  Value* make(Value::Kind kind);
  Value* reduce(const Value& callable, const Value& args, size_t op_pos);
  Value* persistent_load(const Value& pid, size_t op_pos);
  Value* resolve_global(const std::string& module, const std::string& name, size_t op_pos);

  std::string_view bytes_;
  std::string source_;
  size_t pos_ = 0;
  std::deque<Value> arena_;
  std::unordered_map<std::string, const Value*> storages_;
};

}  // namespace scalpel::pickle
