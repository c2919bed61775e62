#pragma once
// A read-only ZIP archive reader for PyTorch's zip checkpoints (torch.save since 1.6).
//
// Reads the central directory (ZIP64 records included, as PyTorch writes them for large
// archives) and returns stored entries as views into the archive bytes (what torch.save
// writes); extract() also inflates deflated entries (what np.savez_compressed writes). Every offset and size is bounds-checked and every entry's CRC-32 verified, so a
// truncated or corrupt archive throws Error naming the archive and the problem.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace scalpel {

class ZipReader {
 public:
  struct Entry {
    std::string name;
    uint64_t local_header_offset = 0;
    uint64_t compressed_size = 0;
    uint64_t uncompressed_size = 0;
    uint16_t method = 0;  // 0 = stored, 8 = deflate
    uint16_t flags = 0;
    uint32_t crc32 = 0;
  };

  // Parses the central directory of `bytes`, which must outlive the reader. `source` names the
  // archive in error messages (usually its path).
  ZipReader(std::string_view bytes, std::string source);

  const std::vector<Entry>& entries() const { return entries_; }
  // The entry with exactly this name, or null.
  const Entry* find(std::string_view name) const;
  // The contents of a stored entry (a view into the archive), after checking its local header
  // and CRC-32.
  // Error naming the entry when it is compressed.
  std::string_view read(const Entry& entry) const;
  // The contents of a stored or deflated entry, as a copy, after checking its size and CRC-32.
  std::string extract(const Entry& entry) const;
  const std::string& source() const { return source_; }

 private:
  // The entry's (possibly compressed) bytes after checking its local header.
  std::string_view entry_bytes(const Entry& entry) const;
  void check_crc(const Entry& entry, std::string_view data) const;

  std::string_view bytes_;
  std::string source_;
  std::vector<Entry> entries_;
};

// CRC-32 (ISO-HDLC, as in zip and zlib) of `bytes`.
uint32_t crc32(std::string_view bytes);

}  // namespace scalpel
