#include "tensor/io/torch_load.h"

#include <functional>
#include <map>
#include <unordered_set>

#include "tensor/error.h"
#include "tensor/io/byte_reader.h"
#include "tensor/io/element_convert.h"
#include "tensor/io/mapped_file.h"
#include "tensor/io/pickle.h"
#include "tensor/io/zip.h"

namespace scalpel {

namespace {

using pickle::StorageType;
using pickle::Value;

// The legacy format's magic number 0x1950a86a20f9469cfc6c as pickle's LONG1 bytes.
constexpr std::string_view kLegacyMagic = "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
constexpr int64_t kLegacyProtocolVersion = 1001;

// Converts a storage's raw bytes into a new CPU storage of the working dtype.
std::pair<DType, std::shared_ptr<Storage>> convert_storage(std::string_view raw, StorageType type,
                                                           int64_t numel) {
  using io_detail::load_unaligned;
  auto convert = [&]<typename Out>(Out, auto&& element) {
    Tensor t = Tensor::empty({numel}, dtype_of<Out>);
    Out* out = t.data<Out>();
    for (int64_t i = 0; i < numel; ++i) out[i] = element(i);
    return std::make_pair(dtype_of<Out>, t.storage());
  };
  const char* p = raw.data();
  const size_t size = pickle::storage_element_size(type);
  auto at = [&](int64_t i) { return p + static_cast<size_t>(i) * size; };
  switch (type) {
    case StorageType::Float:
      return convert(float{}, [&](int64_t i) { return load_unaligned<float>(at(i)); });
    case StorageType::Double:
      return convert(float{}, [&](int64_t i) {
        return static_cast<float>(load_unaligned<double>(at(i)));
      });
    case StorageType::Half:
      return convert(float{}, [&](int64_t i) {
        return io_detail::half_to_float(load_unaligned<uint16_t>(at(i)));
      });
    case StorageType::BFloat16:
      return convert(float{}, [&](int64_t i) {
        return io_detail::bf16_to_float(load_unaligned<uint16_t>(at(i)));
      });
    case StorageType::Long:
      return convert(int64_t{}, [&](int64_t i) { return load_unaligned<int64_t>(at(i)); });
    case StorageType::Int:
      return convert(int64_t{}, [&](int64_t i) { return int64_t{load_unaligned<int32_t>(at(i))}; });
    case StorageType::Short:
      return convert(int64_t{}, [&](int64_t i) { return int64_t{load_unaligned<int16_t>(at(i))}; });
    case StorageType::Char:
      return convert(int64_t{}, [&](int64_t i) { return int64_t{load_unaligned<int8_t>(at(i))}; });
    case StorageType::Byte:
      return convert(uint8_t{}, [&](int64_t i) { return load_unaligned<uint8_t>(at(i)); });
    case StorageType::Bool:
      return convert(uint8_t{}, [&](int64_t i) { return uint8_t{load_unaligned<uint8_t>(at(i)) != 0}; });
  }
  fail("unknown storage type");
}

// The state dict inside the unpickled object (see the header for the accepted containers).
const Value& find_state_dict(const Value& root, const std::string& source) {
  SCALPEL_CHECK(root.kind == Value::Kind::Dict,
                "{}: holds a {}, not a state dict (a dict of tensors)", source, root.kind_name());
  for (const char* key : {"state_dict", "model", "net"}) {
    const Value* inner = root.get(key);
    if (inner && inner->kind == Value::Kind::Dict) return *inner;
  }
  return root;
}

// Builds the named tensors of a state dict; `raw_storage(key)` returns a storage's bytes.
NamedTensors build_tensors(const Value& root,
                           const std::function<std::string_view(const std::string&)>& raw_storage,
                           const std::string& source) {
  const Value& state = find_state_dict(root, source);
  std::map<std::string, std::pair<DType, std::shared_ptr<Storage>>> converted;
  std::unordered_set<std::string> names;
  NamedTensors out;
  for (const auto& [key, value] : state.dict) {
    SCALPEL_CHECK(key->kind == Value::Kind::String, "{}: state dict has a {} key, not a string",
                  source, key->kind_name());
    SCALPEL_CHECK(value->kind == Value::Kind::Tensor,
                  "{}: entry '{}' is a {}, not a tensor; expected a state dict (or a dict holding "
                  "one under 'state_dict', 'model' or 'net')",
                  source, key->text, value->kind_name());
    std::string name = key->text;
    if (name.starts_with("module.")) name.erase(0, 7);
    SCALPEL_CHECK(names.insert(name).second, "{}: duplicate tensor name '{}'", source, name);

    const Value& storage = *value->items[0];
    auto it = converted.find(storage.text);
    if (it == converted.end()) {
      const std::string_view raw = raw_storage(storage.text);
      const size_t element_size = pickle::storage_element_size(storage.storage_type);
      SCALPEL_CHECK(raw.size() % element_size == 0 &&
                        raw.size() / element_size == static_cast<uint64_t>(storage.integer),
                    "{}: storage '{}' has {} bytes, expected {} elements of {}", source,
                    storage.text, raw.size(), storage.integer,
                    pickle::storage_type_name(storage.storage_type));
      it = converted.emplace(storage.text,
                             convert_storage(raw, storage.storage_type, storage.integer)).first;
    }
    auto impl = std::make_shared<TensorImpl>();
    impl->dtype = it->second.first;
    impl->storage = it->second.second;
    impl->shape = value->size;
    impl->strides = value->stride;
    impl->offset = value->integer;
    out.emplace_back(std::move(name), Tensor(std::move(impl)));
  }
  return out;
}

NamedTensors parse_zip(std::string_view bytes, const std::string& source) {
  ZipReader zip(bytes, source);
  // The pickle is "<prefix>/data.pkl"; torch names the prefix after the file ("archive" in
  // recent versions), so any single top-level folder is accepted.
  const ZipReader::Entry* pkl = nullptr;
  for (const ZipReader::Entry& entry : zip.entries()) {
    const size_t slash = entry.name.find('/');
    if (slash != std::string::npos && entry.name.substr(slash) == "/data.pkl") {
      SCALPEL_CHECK(pkl == nullptr, "{}: more than one data.pkl ('{}' and '{}')", source,
                    pkl ? pkl->name : "", entry.name);
      pkl = &entry;
    }
  }
  SCALPEL_CHECK(pkl != nullptr, "{}: zip archive without a '<name>/data.pkl' entry; not a "
                "torch.save file", source);
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - std::string("data.pkl").size());
  if (const ZipReader::Entry* order = zip.find(prefix + "byteorder")) {
    SCALPEL_CHECK(zip.read(*order) == "little", "{}: big-endian checkpoints are not supported",
                  source);
  }
  pickle::Unpickler unpickler(zip.read(*pkl), source + ":" + pkl->name);
  const Value& root = unpickler.load();
  return build_tensors(
      root,
      [&](const std::string& key) {
        const ZipReader::Entry* entry = zip.find(prefix + "data/" + key);
        SCALPEL_CHECK(entry != nullptr, "{}: missing entry '{}data/{}' for storage '{}'", source,
                      prefix, key, key);
        return zip.read(*entry);
      },
      source);
}

NamedTensors parse_legacy(std::string_view bytes, const std::string& source) {
  pickle::Unpickler unpickler(bytes, source);
  const Value& magic = unpickler.load();
  SCALPEL_CHECK(magic.kind == Value::Kind::BigInt && magic.text == kLegacyMagic,
                "{}: not a PyTorch file (a pickle without torch's magic number)", source);
  const Value& protocol = unpickler.load();
  SCALPEL_CHECK(protocol.kind == Value::Kind::Int && protocol.integer == kLegacyProtocolVersion,
                "{}: unsupported legacy torch.save protocol (expected {})", source,
                kLegacyProtocolVersion);
  const Value& sys_info = unpickler.load();
  const Value* little_endian = sys_info.get("little_endian");
  SCALPEL_CHECK(little_endian && little_endian->kind == Value::Kind::Bool && little_endian->boolean,
                "{}: only little-endian legacy checkpoints are supported", source);
  const Value& root = unpickler.load();
  const Value& keys = unpickler.load();
  SCALPEL_CHECK(keys.kind == Value::Kind::List, "{}: storage key list is a {}, not a list",
                source, keys.kind_name());

  // The storages follow the pickles, in key-list order: int64 element count, then the bytes.
  std::map<std::string, std::string_view> raw;
  ByteReader in(bytes, source, unpickler.position());
  for (const Value* key : keys.items) {
    SCALPEL_CHECK(key->kind == Value::Kind::String, "{}: storage key is a {}, not a string",
                  source, key->kind_name());
    auto found = unpickler.storages().find(key->text);
    SCALPEL_CHECK(found != unpickler.storages().end(),
                  "{}: storage '{}' is listed but never referenced", source, key->text);
    const Value& storage = *found->second;
    const uint64_t numel = in.u64("storage element count");
    SCALPEL_CHECK(numel == static_cast<uint64_t>(storage.integer),
                  "{}: storage '{}' has {} elements in the data, {} in the pickle", source,
                  key->text, numel, storage.integer);
    const size_t element_size = pickle::storage_element_size(storage.storage_type);
    SCALPEL_CHECK(numel <= in.remaining() / element_size,
                  "{}: truncated: storage '{}' needs {} bytes at offset {}, only {} left", source,
                  key->text, numel * element_size, in.pos(), in.remaining());
    SCALPEL_CHECK(raw.emplace(key->text, in.take(numel * element_size, "storage")).second,
                  "{}: storage '{}' is listed twice", source, key->text);
  }
  return build_tensors(
      root,
      [&](const std::string& key) {
        auto it = raw.find(key);
        SCALPEL_CHECK(it != raw.end(), "{}: storage '{}' is missing from the file", source, key);
        return it->second;
      },
      source);
}

}  // namespace

NamedTensors parse_torch(std::string_view bytes, const std::string& source) {
  const WeightsFormat format = sniff_weights_format(bytes.substr(0, 16), source);
  SCALPEL_CHECK(format != WeightsFormat::Safetensors,
                "{}: is a safetensors file, not a torch.save file", source);
  return format == WeightsFormat::TorchZip ? parse_zip(bytes, source) : parse_legacy(bytes, source);
}

NamedTensors load_torch(const std::string& path) {
  const MappedFile file(path);
  return parse_torch(file.bytes(), path);
}

}  // namespace scalpel
