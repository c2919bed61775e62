#include "tensor/io/protobuf.h"

#include <gtest/gtest.h>

#include <random>

#include "io/io_test_util.h"
#include "support/protobuf_writer.h"

namespace scalpel {
namespace {

using io_test::error_of;
using test::ProtoWriter;

// Reads every field of a message, descending into each length-delimited field that parses as a
// message (as a schema-less dump would); returns the number of fields read.
size_t walk(const ProtoReader& message, int depth = 0) {
  ProtoReader r = message;
  size_t fields = 0;
  while (r.next()) {
    ++fields;
    if (r.wire_type() == WireType::Bytes && depth < 4) {
      try {
        fields += walk(r.message(), depth + 1);
      } catch (const Error&) {
      }
    }
  }
  return fields;
}

TEST(Protobuf, ReadsEveryWireType) {
  ProtoWriter inner;
  inner.varint(1, 42).string(2, "inner");
  ProtoWriter w;
  w.varint(1, 300)
      .varint(2, static_cast<uint64_t>(int64_t{-5}))  // negative int64 / int32: 10-byte varint
      .fixed64(3, 0x1122334455667788u)
      .float32(4, 1.5f)
      .string(5, "hello")
      .message(6, inner)
      .fixed32(7, 0xDEADBEEF);
  ProtoReader r(w.bytes(), "msg");
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.field(), 1u);
  EXPECT_EQ(r.varint(), 300u);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.int64(), -5);
  EXPECT_EQ(r.int32(), -5);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.fixed64(), 0x1122334455667788u);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.float32(), 1.5f);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.string(), "hello");
  ASSERT_TRUE(r.next());
  ProtoReader m = r.message();
  ASSERT_TRUE(m.next());
  EXPECT_EQ(m.int64(), 42);
  ASSERT_TRUE(m.next());
  EXPECT_EQ(m.string(), "inner");
  EXPECT_FALSE(m.next());
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.fixed32(), 0xDEADBEEFu);
  EXPECT_FALSE(r.next());
}

TEST(Protobuf, RepeatedFieldsPackedOrNot) {
  ProtoWriter w;
  w.packed_varints(1, {1, -2, 300}).varint(1, 7).packed_floats(2, {0.5f, -1.0f}).float32(2, 3.0f);
  ProtoReader r(w.bytes(), "msg");
  std::vector<int64_t> ints;
  std::vector<float> floats;
  while (r.next()) {
    if (r.field() == 1) r.append_int64s(ints);
    if (r.field() == 2) r.append_floats(floats);
  }
  EXPECT_EQ(ints, (std::vector<int64_t>{1, -2, 300, 7}));
  EXPECT_EQ(floats, (std::vector<float>{0.5f, -1.0f, 3.0f}));
  // An empty packed run appends nothing (found by fuzz_protobuf: a memcpy to null under UBSan).
  ProtoReader empty(ProtoWriter().string(1, "").string(2, "").bytes(), "msg");
  std::vector<float> no_floats;
  std::vector<double> no_doubles;
  ASSERT_TRUE(empty.next());
  empty.append_floats(no_floats);
  ASSERT_TRUE(empty.next());
  empty.append_doubles(no_doubles);
  EXPECT_TRUE(no_floats.empty() && no_doubles.empty());
}

TEST(Protobuf, ErrorsNameSourceAndOffset) {
  // A length of 10 with 3 bytes left.
  const std::string short_string = ProtoWriter::key(5, 2) + ProtoWriter::encode_varint(10) + "abc";
  EXPECT_EQ(error_of([&] { walk(ProtoReader(short_string, "m.onnx")); }),
            "m.onnx: truncated protobuf: field 5 at offset 0 declares 10 bytes, 3 left");
  // A varint cut short.
  const std::string cut = ProtoWriter().varint(1, 1).bytes() + ProtoWriter::key(2, 0) + "\xff";
  EXPECT_EQ(error_of([&] { walk(ProtoReader(cut, "m.onnx")); }),
            "m.onnx: truncated protobuf: field 2 at offset 3 runs past the end (4 bytes)");
  // Offsets inside a nested message count from the start of the outer buffer.
  const std::string nested = ProtoWriter().varint(1, 1).string(2, ProtoWriter::key(3, 1) + "1234").bytes();
  EXPECT_EQ(error_of([&] {
              ProtoReader r(nested, "m.onnx");
              r.next();
              r.next();
              r.message().next();
            }),
            "m.onnx: truncated protobuf: field 3 (64-bit) at offset 5 needs 8 bytes, 4 left");
  EXPECT_EQ(error_of([] { ProtoReader(std::string("\x0b", 1), "g").next(); }),
            "g: bad protobuf at offset 0: field 1 is a group (wire type 3), not supported");
  EXPECT_EQ(error_of([] { ProtoReader(std::string("\x07", 1), "w").next(); }),
            "w: bad protobuf at offset 0: field number 0 is out of range");
  EXPECT_EQ(error_of([] { ProtoReader(std::string(11, '\xff'), "v").next(); }),
            "v: bad protobuf at offset 0: field key is a varint longer than 10 bytes");
  EXPECT_EQ(error_of([] {
              ProtoReader r(ProtoWriter().varint(1, 1).bytes(), "t");
              r.next();
              r.string();
            }),
            "t: bad protobuf at offset 0: field 1 is varint, expected length-delimited (bytes, a string or a message)");
  EXPECT_EQ(error_of([] {
              ProtoReader r(ProtoWriter().string(1, "abcde").bytes(), "p");
              r.next();
              std::vector<float> out;
              r.append_floats(out);
            }),
            "p: bad protobuf at offset 2: packed floats of field 1 take 5 bytes, not a multiple of 4");
}

TEST(Protobuf, NestingDepthIsLimited) {
  std::string message = ProtoWriter().varint(1, 1).bytes();
  for (int k = 0; k < ProtoReader::kMaxDepth + 1; ++k) message = ProtoWriter().string(1, message).bytes();
  auto descend = [](const std::string& bytes) {
    ProtoReader r(bytes, "deep");
    while (r.next() && r.wire_type() == WireType::Bytes) r = r.message();
  };
  test::expect_error([&] { descend(message); }, {"deep: bad protobuf at offset", "nested deeper than 100 levels"});
  // One level less is fine.
  ProtoReader outer(message, "deep");
  ASSERT_TRUE(outer.next());
  const std::string one_level_less(outer.bytes());
  EXPECT_NO_THROW(descend(one_level_less));
}

// Cutting a message anywhere but between two top-level fields is an Error; corrupting any
// byte either parses or is an Error, never a crash (the fuzz harness tests/fuzz/fuzz_protobuf.cpp
// does the same at random for longer).
TEST(Protobuf, TruncatedAndCorruptMessages) {
  ProtoWriter inner;
  inner.varint(1, 123456789).string(2, "name").packed_varints(3, {1, 2, 3, -1}).float32(4, 2.0f);
  ProtoWriter w;
  w.varint(1, 8).message(2, inner).fixed64(3, 99).string(4, std::string(300, 'x')).message(5, inner);
  const std::string bytes = w.bytes();
  std::vector<size_t> boundaries = {0};
  ProtoReader top(bytes, "msg");
  size_t last = 0;
  while (top.next()) boundaries.push_back(last = top.field_offset()), (void)last;
  boundaries.push_back(bytes.size());
  for (size_t n = 0; n <= bytes.size(); ++n) {
    const bool boundary = std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
    const std::string prefix = bytes.substr(0, n);
    ProtoReader r(prefix, "msg");
    if (boundary) {
      EXPECT_NO_THROW(while (r.next()) {}) << "prefix of " << n << " bytes";
    } else {
      EXPECT_THROW(while (r.next()) {}, Error) << "prefix of " << n << " bytes";
    }
  }
  io_test::expect_corruptions_safe(bytes, [](const std::string& b) { walk(ProtoReader(b, "msg")); });
  std::mt19937 random(18);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string noise(random() % 64, '\0');
    for (char& c : noise) c = static_cast<char>(random());
    try {
      walk(ProtoReader(noise, "noise"));
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace scalpel
