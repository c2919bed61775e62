#include "tensor/io/flatbuffer.h"

#include <gtest/gtest.h>

#include "io/io_test_util.h"
#include "support/flatbuffer_builder.h"

namespace scalpel {
namespace {

using flatbuffers::FlatBuffer;
using flatbuffers::Table;
using flatbuffers::Vector;
using io_test::error_of;
namespace fb = fbtest;

// A root table with one field of every kind the readers use.
std::string sample_buffer() {
  return fb::serialize(
      fb::table({fb::scalar<uint32_t>(0, 7), fb::child(1, fb::str("hello")),
                 fb::child(2, fb::vec<int32_t>({1, -2, 3})),
                 fb::child(3, fb::list({fb::table({fb::scalar<float>(0, 1.5f)}),
                                        fb::table({fb::scalar<int8_t>(1, -4)})})),
                 fb::child(4, fb::list({fb::str("a"), fb::str("bc")})),
                 fb::scalar<int64_t>(5, -123456789012LL), fb::child(6, fb::bytes("\x01\x02\x03"))}),
      "TEST");
}

// Reads every field of sample_buffer() (what a parse of that format would do).
void read_all(const std::string& bytes) {
  const FlatBuffer buffer(bytes, "sample");
  const Table root = buffer.root();
  root.scalar<uint32_t>(0, 0, "count");
  root.string(1, "name");
  const Vector ints = root.vector(2, "ints");
  for (size_t i = 0; i < ints.size(); ++i) ints.scalar<int32_t>(i);
  const Vector tables = root.vector(3, "tables");
  for (size_t i = 0; i < tables.size(); ++i) {
    const Table t = tables.table(i);
    t.scalar<float>(0, 0.0f, "value");
    t.scalar<int8_t>(1, 0, "small");
  }
  const Vector strings = root.vector(4, "strings");
  for (size_t i = 0; i < strings.size(); ++i) strings.string(i);
  root.scalar<int64_t>(5, 0, "big");
  root.vector(6, "data", 1).bytes();
}

TEST(FlatBuffer, ReadsTablesVectorsStringsAndDefaults) {
  const std::string bytes = sample_buffer();
  const FlatBuffer buffer(bytes, "sample");
  EXPECT_TRUE(buffer.has_identifier("TEST"));
  EXPECT_FALSE(buffer.has_identifier("TFL3"));
  const Table root = buffer.root();
  EXPECT_EQ(root.scalar<uint32_t>(0, 0, "count"), 7u);
  EXPECT_EQ(root.string(1, "name"), "hello");
  const Vector ints = root.vector(2, "ints");
  ASSERT_EQ(ints.size(), 3u);
  EXPECT_EQ(ints.scalar<int32_t>(1), -2);
  const Vector tables = root.vector(3, "tables");
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables.table(0).scalar<float>(0, 0.0f, "value"), 1.5f);
  // Absent fields give the default: field 0 of the second table, a field id beyond the vtable.
  EXPECT_EQ(tables.table(1).scalar<float>(0, 9.0f, "value"), 9.0f);
  EXPECT_EQ(tables.table(1).scalar<int8_t>(1, 0, "small"), -4);
  EXPECT_EQ(root.scalar<int32_t>(40, 5, "newer"), 5);
  EXPECT_FALSE(root.table(40, "newer").valid());
  EXPECT_TRUE(root.vector(40, "newer").empty());
  EXPECT_EQ(root.vector(4, "strings").string(1), "bc");
  EXPECT_EQ(root.scalar<int64_t>(5, 0, "big"), -123456789012LL);
  EXPECT_EQ(root.vector(6, "data", 1).bytes(), "\x01\x02\x03");
  // Reading out of range or with the wrong element size is an Error, not a stray read.
  EXPECT_NE(error_of([&] { ints.scalar<int32_t>(3); }).find("index 3 is beyond the 3 elements"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ints.scalar<int64_t>(0); }).find("read as 8-byte elements"), std::string::npos);
}

TEST(FlatBuffer, TruncatedAndCorruptBuffersThrowErrors) {
  const std::string bytes = sample_buffer();
  read_all(bytes);
  io_test::expect_truncations_fail(bytes, read_all);
  io_test::expect_corruptions_safe(bytes, read_all);
}

TEST(FlatBuffer, ErrorsNameTheSourceThePathAndTheOffset) {
  // A vector claiming a billion elements in a 40-byte buffer.
  std::string bytes = fb::serialize(fb::table({fb::child(0, fb::list({fb::table({fb::child(
                                        0, fb::vec<int32_t>({1, 2}))})}))}));
  const size_t length_at = bytes.size() - 12;  // the int vector: length, then two elements
  const uint32_t absurd = 1000000000;
  std::memcpy(bytes.data() + length_at, &absurd, 4);
  const std::string message = error_of([&] {
    const FlatBuffer buffer(bytes, "model.bin");
    buffer.root().vector(0, "subgraphs").table(0).vector(0, "shape");
  });
  EXPECT_NE(message.find("model.bin: flatbuffer: subgraphs[0].shape at offset " +
                         std::to_string(length_at) + ": vector claims 1000000000 elements"),
            std::string::npos)
      << message;

  EXPECT_NE(error_of([] { FlatBuffer("abc", "tiny.bin"); }).find("tiny.bin: flatbuffer: 3 bytes is too short"),
            std::string::npos);
  // A root offset past the end.
  std::string bad_root = sample_buffer();
  const uint32_t far = 1u << 30;
  std::memcpy(bad_root.data(), &far, 4);
  EXPECT_NE(error_of([&] { FlatBuffer(bad_root, "s").root(); }).find("points outside"), std::string::npos);
}

TEST(FlatBuffer, NestingDeeperThanTheLimitIsRefused) {
  fb::ObjPtr t = fb::table({fb::scalar<int32_t>(0, 1)});
  for (int i = 0; i < flatbuffers::kMaxDepth + 4; ++i) t = fb::table({fb::child(0, t)});
  const std::string bytes = fb::serialize(t);
  const FlatBuffer buffer(bytes, "deep");
  const std::string message = error_of([&] {
    Table cur = buffer.root();
    while (cur.valid()) cur = cur.table(0, "next");
  });
  EXPECT_NE(message.find("nested more than"), std::string::npos) << message;
}

}  // namespace
}  // namespace scalpel
