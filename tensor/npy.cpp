#include "tensor/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tensor/atomic_file.h"
#include "tensor/io/zip.h"

namespace scalpel {
namespace {

// Finds `'key': value` in the header dict and returns the raw value text.
std::string header_value(const std::string& header, const std::string& key, const std::string& name) {
  std::string needle = "'" + key + "'";
  size_t at = header.find(needle);
  SCALPEL_CHECK(at != std::string::npos, "{}: .npy header has no '{}' entry", name, key);
  at = header.find(':', at + needle.size());
  SCALPEL_CHECK(at != std::string::npos, "{}: malformed .npy header", name);
  ++at;
  while (at < header.size() && header[at] == ' ') ++at;
  size_t end = at;
  if (at < header.size() && header[at] == '(') {
    end = header.find(')', at);
    SCALPEL_CHECK(end != std::string::npos, "{}: malformed shape in .npy header", name);
    return header.substr(at, end - at + 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  return header.substr(at, end - at);
}

DType parse_descr(std::string descr, const std::string& name) {
  if (descr.size() >= 2 && descr.front() == '\'' ) descr = descr.substr(1, descr.find('\'', 1) - 1);
  if (descr == "<f4") return DType::F32;
  if (descr == "<f8") return DType::F64;
  if (descr == "<i8") return DType::I64;
  if (descr == "|u1" || descr == "<u1") return DType::U8;
  fail("{}: unsupported .npy dtype '{}' (supported: <f4, <f8, <i8, |u1, little-endian)", name, descr);
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F64: return "<f8";
    case DType::I64: return "<i8";
    case DType::U8: return "|u1";
    default: fail(".npy cannot store dtype {}", dtype_name(t));
  }
}

Shape parse_shape(const std::string& text, const std::string& name) {
  Shape shape;
  std::string inner = text.substr(1, text.size() - 2);
  std::stringstream ss(inner);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t b = item.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    size_t e = item.find_last_not_of(' ');
    std::string digits = item.substr(b, e - b + 1);
    SCALPEL_CHECK(!digits.empty() && digits.size() < 19 && digits.find_first_not_of("0123456789") == std::string::npos,
                  "{}: bad dimension '{}' in .npy shape {}", name, digits, text);
    shape.push_back(std::stoll(digits));
  }
  return shape;
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& name) {
  SCALPEL_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0,
                "{}: not a .npy file (bad magic)", name);
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    SCALPEL_CHECK(bytes.size() >= 12, "{}: truncated .npy header", name);
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    fail("{}: unsupported .npy version {}", name, major);
  }
  SCALPEL_CHECK(header_start + header_len <= bytes.size(), "{}: truncated .npy header ({} bytes declared, {} present)",
                name, header_len, bytes.size() - header_start);
  std::string header = bytes.substr(header_start, header_len);
  DType dtype = parse_descr(header_value(header, "descr", name), name);
  std::string fortran = header_value(header, "fortran_order", name);
  SCALPEL_CHECK(fortran.find("False") != std::string::npos, "{}: Fortran-order .npy arrays are not supported", name);
  Shape shape = parse_shape(header_value(header, "shape", name), name);
  const size_t data_start = header_start + header_len;
  int64_t numel = 1;
  for (int64_t s : shape) {
    SCALPEL_CHECK(s >= 0 && (s == 0 || numel <= INT64_MAX / s), "{}: shape overflow", name);
    numel *= s;
  }
  const size_t need = static_cast<size_t>(numel) * dtype_size(dtype);
  SCALPEL_CHECK(numel >= 0 && bytes.size() - data_start >= need,
                "{}: truncated .npy data (shape {} needs {} bytes, {} present)", name, shape_str(shape), need,
                bytes.size() - data_start);
  Tensor t = Tensor::empty(shape, dtype);
  if (need) std::memcpy(t.raw_data(), bytes.data() + data_start, need);
  return t;
}

Tensor load_npy(const std::string& path) {
  return parse_npy(read_file(path), path);
}

std::map<std::string, Tensor> parse_npz(const std::string& bytes, const std::string& name) {
  const ZipReader zip(bytes, name);
  std::map<std::string, Tensor> arrays;
  for (const ZipReader::Entry& entry : zip.entries()) {
    if (!entry.name.ends_with(".npy")) continue;
    const std::string key = entry.name.substr(0, entry.name.size() - 4);
    arrays[key] = parse_npy(zip.extract(entry), name + ":" + entry.name);
  }
  return arrays;
}

std::map<std::string, Tensor> load_npz(const std::string& path) { return parse_npz(read_file(path), path); }

std::string serialize_npy(const Tensor& tensor) {
  Tensor t = tensor.to(Device::cpu()).contiguous();
  // Python tuple syntax: (), (n,), (a, b, c)
  std::string shape = "(" + fmt::format("{}", fmt::join(t.shape(), ", ")) + (t.dim() == 1 ? ",)" : ")");
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr_of(t.dtype()), shape);
  // Pad so that the data starts on a 64-byte boundary (header ends with '\n').
  const bool v2 = dict.size() + 11 > 65535;
  const size_t prefix = v2 ? 12 : 10;
  size_t total = prefix + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY", 6);
  out.push_back(v2 ? 2 : 1);
  out.push_back(0);
  const size_t len = dict.size();
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += dict;
  out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  return out;
}

void save_npy(const std::string& path, const Tensor& tensor) { write_file_atomic(path, serialize_npy(tensor)); }

}  // namespace scalpel
