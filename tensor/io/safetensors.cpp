#include "tensor/io/safetensors.h"

#include <algorithm>
#include <cstring>

#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/io/byte_reader.h"
#include "tensor/io/element_convert.h"
#include "tensor/io/mapped_file.h"
#include "tensor/json.h"

namespace scalpel {

namespace {

// The reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct StoredType {
  std::string_view name;
  size_t size;
  DType loaded;  // the dtype it loads as
};
constexpr StoredType kStoredTypes[] = {
    {"F64", 8, DType::F64}, {"F32", 4, DType::F32}, {"F16", 2, DType::F32},
    {"BF16", 2, DType::F32}, {"I64", 8, DType::I64}, {"I32", 4, DType::I64},
    {"I16", 2, DType::I64}, {"I8", 1, DType::I64}, {"U8", 1, DType::U8},
    {"BOOL", 1, DType::U8},
};

const StoredType* find_stored_type(std::string_view name) {
  for (const StoredType& t : kStoredTypes) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string_view stored_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
  }
  return "?";
}

// Fills `out` (contiguous, of type.loaded) from raw little-endian bytes of `type`.
void decode(const StoredType& type, std::string_view raw, Tensor& out) {
  using io_detail::load_unaligned;
  const int64_t n = out.numel();
  const char* p = raw.data();
  if (dtype_size(type.loaded) == type.size) {  // stored as loaded (BOOL is normalized below)
    if (n > 0) std::memcpy(out.raw_data(), p, raw.size());
    if (type.name == "BOOL") {
      uint8_t* b = out.data<uint8_t>();
      for (int64_t i = 0; i < n; ++i) b[i] = b[i] != 0;
    }
    return;
  }
  if (type.name == "F16" || type.name == "BF16") {
    float* f = out.data<float>();
    const bool half = type.name == "F16";
    for (int64_t i = 0; i < n; ++i) {
      const auto bits = load_unaligned<uint16_t>(p + 2 * i);
      f[i] = half ? io_detail::half_to_float(bits) : io_detail::bf16_to_float(bits);
    }
    return;
  }
  int64_t* v = out.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (type.name == "I32") v[i] = load_unaligned<int32_t>(p + 4 * i);
    if (type.name == "I16") v[i] = load_unaligned<int16_t>(p + 2 * i);
    if (type.name == "I8") v[i] = load_unaligned<int8_t>(p + i);
  }
}

struct HeaderEntry {
  std::string name;
  const StoredType* type;
  Shape shape;
  uint64_t begin, end;
};

}  // namespace

SafetensorsContents parse_safetensors(std::string_view bytes, const std::string& source) {
  ByteReader in(bytes, source);
  const uint64_t header_size = in.u64("safetensors header length");
  SCALPEL_CHECK(header_size <= kMaxHeaderSize, "{}: safetensors header length {} exceeds {} bytes",
                source, header_size, kMaxHeaderSize);
  SCALPEL_CHECK(header_size <= in.remaining(),
                "{}: safetensors header length {} is beyond the end of the file ({} bytes; "
                "truncated?)",
                source, header_size, bytes.size());
  const Json header = Json::parse(in.take(header_size, "header"), source + " header");
  const std::string_view data = bytes.substr(in.pos());
  SCALPEL_CHECK(header.is_object(), "{}: safetensors header is a JSON {}, not an object", source,
                header.type_name());

  SafetensorsContents contents;
  std::vector<HeaderEntry> entries;
  for (const auto& [name, info] : header.as_object()) {
    if (name == "__metadata__") {
      SCALPEL_CHECK(info.is_object(), "{}: __metadata__ is not an object", source);
      for (const auto& [key, value] : info.as_object()) {
        SCALPEL_CHECK(value.is_string(), "{}: __metadata__ value for '{}' is not a string",
                      source, key);
        contents.metadata.emplace_back(key, value.as_string());
      }
      continue;
    }
    try {
      HeaderEntry entry{name, find_stored_type(info.at("dtype").as_string()), {}, 0, 0};
      SCALPEL_CHECK(entry.type != nullptr, "unknown dtype '{}'", info.at("dtype").as_string());
      // numel saturates above the data size (a zero dimension still makes it 0), so that
      // numel * element size cannot overflow.
      uint64_t numel = 1;
      bool has_zero = false;
      for (const Json& dim : info.at("shape").as_array()) {
        const int64_t d = dim.as_int();
        SCALPEL_CHECK(d >= 0, "negative dimension {}", d);
        entry.shape.push_back(d);
        has_zero = has_zero || d == 0;
        if (d > 0) numel = numel > data.size() / d ? data.size() + 1 : numel * d;
      }
      if (has_zero) numel = 0;
      SCALPEL_CHECK(numel <= data.size(), "shape {} is larger than the {} data bytes",
                    shape_str(entry.shape), data.size());
      const Json& offsets = info.at("data_offsets");
      SCALPEL_CHECK(offsets.size() == 2, "data_offsets must hold [begin, end]");
      const int64_t begin = offsets[0].as_int(), end = offsets[1].as_int();
      SCALPEL_CHECK(0 <= begin && begin <= end && static_cast<uint64_t>(end) <= data.size(),
                    "data_offsets [{}, {}] lie outside the {} data bytes", begin, end, data.size());
      entry.begin = static_cast<uint64_t>(begin);
      entry.end = static_cast<uint64_t>(end);
      SCALPEL_CHECK(entry.end - entry.begin == numel * entry.type->size,
                    "data_offsets [{}, {}] hold {} bytes, but {} {} needs {}", begin, end,
                    end - begin, entry.type->name, shape_str(entry.shape),
                    numel * entry.type->size);
      entries.push_back(std::move(entry));
    } catch (const Error& e) {
      fail("{}: tensor '{}': {}", source, name, e.what());
    }
  }

  // The data regions must tile the data bytes exactly, in some order.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const HeaderEntry& a, const HeaderEntry& b) { return a.begin < b.begin; });
  uint64_t covered = 0;
  for (const HeaderEntry& entry : entries) {
    SCALPEL_CHECK(entry.begin == covered,
                  "{}: tensor '{}' data starts at {}, expected {} (regions overlap or leave a hole)",
                  source, entry.name, entry.begin, covered);
    covered = entry.end;
  }
  SCALPEL_CHECK(covered == data.size(),
                "{}: the tensors cover {} data bytes but the file holds {} (trailing bytes?)",
                source, covered, data.size());

  for (const HeaderEntry& entry : entries) {
    Tensor t = Tensor::empty(entry.shape, entry.type->loaded);
    decode(*entry.type, data.substr(entry.begin, entry.end - entry.begin), t);
    contents.tensors.emplace_back(entry.name, std::move(t));
  }
  return contents;
}

SafetensorsContents read_safetensors(const std::string& path) {
  const MappedFile file(path);
  return parse_safetensors(file.bytes(), path);
}

std::string serialize_safetensors(const NamedTensors& tensors, const StringMap& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json& meta = header["__metadata__"];
    meta = Json::object();
    for (const auto& [key, value] : metadata) {
      SCALPEL_CHECK(!meta.contains(key), "safetensors: duplicate metadata key '{}'", key);
      meta[key] = value;
    }
  }
  std::vector<Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    SCALPEL_CHECK(name != "__metadata__" && !header.contains(name),
                  "safetensors: duplicate or reserved tensor name '{}'", name);
    SCALPEL_CHECK(tensor.defined(), "safetensors: tensor '{}' is undefined", name);
    Tensor cpu = tensor.to(Device::cpu()).contiguous();
    Json shape = Json::array();
    for (const int64_t d : cpu.shape()) shape.push_back(d);
    Json& info = header[name];
    info["dtype"] = stored_name(cpu.dtype());
    info["shape"] = std::move(shape);
    info["data_offsets"] = Json::array({offset, offset + cpu.nbytes()});
    offset += cpu.nbytes();
    contiguous.push_back(std::move(cpu));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned in the file

  std::string out;
  out.reserve(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) out += static_cast<char>((uint64_t{text.size()} >> (8 * i)) & 0xFF);
  out += text;
  for (const Tensor& t : contiguous) {
    out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  }
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const StringMap& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace scalpel
