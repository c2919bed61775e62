#include "tensor/io/zip.h"

#include <gtest/gtest.h>

#include "io/io_test_util.h"

namespace scalpel {
namespace {

using io_test::error_of;

TEST(Zip, Crc32KnownValues) {
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);  // the CRC-32 check value
  std::string long_input;
  for (int i = 0; i < 1024; ++i) long_input += static_cast<char>(i % 256);
  EXPECT_EQ(crc32(long_input + "tail"), 0x361FCFFFu);  // Python: zlib.crc32(bytes(range(256))*4+b"tail")
}

TEST(Zip, ListsAndReadsTorchArchive) {
  const std::string bytes = io_test::fixture_bytes("tiny_zip.pt");
  const ZipReader zip(bytes, "tiny_zip.pt");  // ZIP64 end records, as torch writes them
  ASSERT_NE(zip.find("tiny_zip/data.pkl"), nullptr);
  EXPECT_EQ(zip.find("tiny_zip/absent"), nullptr);
  EXPECT_EQ(zip.read(*zip.find("tiny_zip/version")), "3\n");
  const ZipReader::Entry& weights = *zip.find("tiny_zip/data/1");  // conv.weight, 3x2x3x3 floats
  EXPECT_EQ(zip.read(weights).size(), 3u * 2 * 3 * 3 * 4);
  EXPECT_EQ(zip.entries().size(), 12u);
}

TEST(Zip, Zip64ExtraFields) {
  const std::string bytes = io_test::fixture_bytes("zip64.zip");
  const ZipReader zip(bytes, "zip64.zip");
  ASSERT_EQ(zip.entries().size(), 1u);
  EXPECT_EQ(zip.read(zip.entries()[0]), "zip64 entry contents");
}

TEST(Zip, RefusesCompressedEntries) {
  const std::string bytes = io_test::fixture_bytes("deflated.zip");
  const ZipReader zip(bytes, "deflated.zip");
  EXPECT_EQ(error_of([&] { zip.read(zip.entries()[0]); }),
            "deflated.zip: entry 'archive/data.pkl' is compressed (method 8); only stored "
            "entries are supported, as written by torch.save");
}

TEST(Zip, NotAZip) {
  EXPECT_EQ(error_of([] { ZipReader("short", "a.bin"); }),
            "a.bin: not a zip archive (5 bytes is too short for the end record)");
  EXPECT_EQ(error_of([] { ZipReader(std::string(100, 'x'), "b.bin"); }),
            "b.bin: not a zip archive (no end-of-central-directory record; truncated?)");
}

// Parses the archive and reads every entry.
void read_all(const std::string& bytes) {
  const ZipReader zip(bytes, "archive");
  for (const ZipReader::Entry& entry : zip.entries()) zip.read(entry);
}

TEST(Zip, TruncatedAndCorruptArchives) {
  for (const char* name : {"tiny_zip.pt", "zip64.zip"}) {
    SCOPED_TRACE(name);
    const std::string bytes = io_test::fixture_bytes(name);
    io_test::expect_truncations_fail(bytes, read_all);
    // Every entry is CRC-checked, so any flipped byte outside unused header fields throws.
    io_test::expect_corruptions_safe(bytes, read_all);
  }
}

}  // namespace
}  // namespace scalpel
