// .npz archives: np.savez (stored) and np.savez_compressed (deflated) through the zip reader.
#include <gtest/gtest.h>

#include "io/io_test_util.h"
#include "tensor/io/zip.h"
#include "tensor/npy.h"

namespace scalpel {
namespace {

using io_test::error_of;

void expect_fixture_arrays(const std::map<std::string, Tensor>& arrays) {
  ASSERT_EQ(arrays.size(), 3u);  // notes.txt (not an array) is left out
  const Tensor& a = arrays.at("a");
  EXPECT_EQ(a.dtype(), DType::F32);
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_EQ(a.to_vector(), (std::vector<double>{0, 0.25, 0.5, 0.75, 1, 1.25}));
  EXPECT_EQ(arrays.at("b").dtype(), DType::U8);
  EXPECT_EQ(arrays.at("b").to_vector(), (std::vector<double>{0, 1, 127, 128, 255}));
  EXPECT_EQ(arrays.at("c").dtype(), DType::I64);
  EXPECT_EQ(arrays.at("c").shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(arrays.at("c").to_vector(), (std::vector<double>{-3, -2, -1, 0, 1, 2, 3, 4}));
}

TEST(Npz, ReadsStoredAndCompressedArchives) {
  expect_fixture_arrays(load_npz(io_test::fixture("savez_compressed.npz")));
  const auto stored = load_npz(io_test::fixture("savez_stored.npz"));
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored.at("a").to_vector(), (std::vector<double>{0, 0.25, 0.5, 0.75, 1, 1.25}));
}

TEST(Zip, ExtractInflatesDeflatedEntries) {
  const std::string bytes = io_test::fixture_bytes("savez_compressed.npz");
  const ZipReader zip(bytes, "savez_compressed.npz");
  const ZipReader::Entry& notes = *zip.find("notes.txt");
  EXPECT_EQ(notes.method, 8);
  EXPECT_EQ(zip.extract(notes), "not an array");
  // read() still gives views only, so it refuses what would need a copy.
  EXPECT_NE(error_of([&] { zip.read(notes); }).find("is compressed (method 8)"), std::string::npos);
  const std::string stored = io_test::fixture_bytes("zip64.zip");
  EXPECT_EQ(ZipReader(stored, "zip64.zip").extract(ZipReader(stored, "zip64.zip").entries()[0]),
            "zip64 entry contents");
}

TEST(Npz, CorruptAndTruncatedArchivesThrow) {
  const std::string bytes = io_test::fixture_bytes("savez_compressed.npz");
  const auto parse = [](const std::string& b) { parse_npz(b, "x.npz"); };
  io_test::expect_truncations_fail(bytes, parse);
  io_test::expect_corruptions_safe(bytes, parse);
  // A flipped bit inside the first deflate stream: the inflater or the CRC-32 check notices.
  std::string corrupt = bytes;
  const ZipReader zip(bytes, "x.npz");
  const size_t header = static_cast<size_t>(zip.find("a.npy")->local_header_offset);
  const auto u16 = [&](size_t at) { return static_cast<uint8_t>(bytes[at]) | static_cast<uint8_t>(bytes[at + 1]) << 8; };
  const size_t data_start = header + 30 + u16(header + 26) + u16(header + 28);  // after name and extra field
  corrupt[data_start + 20] = static_cast<char>(corrupt[data_start + 20] ^ 0x10);
  const std::string message = error_of([&] { parse(corrupt); });
  EXPECT_NE(message.find("x.npz: entry 'a.npy' "), std::string::npos) << message;
}

}  // namespace
}  // namespace scalpel
