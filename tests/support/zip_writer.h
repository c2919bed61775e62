#pragma once
// A stored (uncompressed) zip archive built in memory, as Python's zipfile writes by default
// (Keras 3 .keras files), for tests of readers of zip containers.
//
//   std::string zip = test::stored_zip({{"config.json", json}, {"model.weights.h5", h5}});
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensor/io/zip.h"

namespace scalpel::test {

inline std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& files) {
  const auto put16 = [](std::string& out, uint16_t v) { out.append({char(v & 0xFF), char(v >> 8)}); };
  const auto put32 = [&](std::string& out, uint32_t v) {
    put16(out, static_cast<uint16_t>(v & 0xFFFF));
    put16(out, static_cast<uint16_t>(v >> 16));
  };
  std::string archive, directory;
  for (const auto& [name, data] : files) {
    const uint32_t crc = crc32(data);
    const auto offset = static_cast<uint32_t>(archive.size());
    const auto common = [&](std::string& out) {  // version .. name length, shared by both headers
      put16(out, 20);  // version needed
      put16(out, 0);   // flags
      put16(out, 0);   // stored
      put32(out, 0);   // time, date
      put32(out, crc);
      put32(out, static_cast<uint32_t>(data.size()));
      put32(out, static_cast<uint32_t>(data.size()));
      put16(out, static_cast<uint16_t>(name.size()));
      put16(out, 0);  // extra length
    };
    put32(archive, 0x04034b50);
    common(archive);
    archive += name + data;
    put32(directory, 0x02014b50);
    put16(directory, 20);  // version made by
    common(directory);
    put16(directory, 0);  // comment length
    put16(directory, 0);  // disk
    put16(directory, 0);  // internal attributes
    put32(directory, 0);  // external attributes
    put32(directory, offset);
    directory += name;
  }
  const auto directory_offset = static_cast<uint32_t>(archive.size());
  archive += directory;
  put32(archive, 0x06054b50);
  put16(archive, 0);
  put16(archive, 0);
  put16(archive, static_cast<uint16_t>(files.size()));
  put16(archive, static_cast<uint16_t>(files.size()));
  put32(archive, static_cast<uint32_t>(directory.size()));
  put32(archive, directory_offset);
  put16(archive, 0);  // comment length
  return archive;
}

}  // namespace scalpel::test
