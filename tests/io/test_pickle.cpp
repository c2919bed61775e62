#include "tensor/io/pickle.h"

#include <gtest/gtest.h>

#include "io/io_test_util.h"

namespace scalpel {
namespace {

using io_test::error_of;
using pickle::Unpickler;
using pickle::Value;
using Kind = Value::Kind;
using namespace std::string_literals;

std::vector<int64_t> ints_of(const Value& list) {
  std::vector<int64_t> out;
  for (const Value* v : list.items) {
    EXPECT_EQ(v->kind, Kind::Int);
    out.push_back(v->integer);
  }
  return out;
}

// pickle_values_p*.pkl hold the same Python values (see scripts/make_io_fixtures.py).
class PickleValues : public testing::TestWithParam<int> {};

TEST_P(PickleValues, DecodeAsPythonWrote) {
  const std::string bytes =
      io_test::fixture_bytes("pickle_values_p" + std::to_string(GetParam()) + ".pkl");
  Unpickler unpickler(bytes, "values");
  const Value& root = unpickler.load();
  EXPECT_EQ(unpickler.position(), bytes.size());
  ASSERT_EQ(root.kind, Kind::Dict);
  ASSERT_EQ(root.dict.size(), 10u);

  EXPECT_EQ(ints_of(*root.get("ints")),
            (std::vector<int64_t>{0, 1, -1, 255, 256, 65535, 65536, -(int64_t{1} << 31),
                                  (int64_t{1} << 31) - 1, int64_t{1} << 31, int64_t{1} << 62,
                                  INT64_MIN}));
  const Value& big = *root.get("big");  // 2**70: little-endian two's complement, 9 bytes
  EXPECT_EQ(big.kind, Kind::BigInt);
  EXPECT_EQ(big.text, "\0\0\0\0\0\0\0\0\x40"s);

  const Value& floats = *root.get("floats");
  ASSERT_EQ(floats.items.size(), 3u);
  EXPECT_EQ(floats.items[0]->real, 0.5);
  EXPECT_EQ(floats.items[1]->real, -1e300);
  EXPECT_EQ(floats.items[2]->real, 1.0 / 3.0);

  const Value& strings = *root.get("strings");
  ASSERT_EQ(strings.items.size(), 4u);
  EXPECT_EQ(strings.items[0]->text, "");
  EXPECT_EQ(strings.items[1]->text, "abc");
  EXPECT_EQ(strings.items[2]->text, "caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(strings.items[3]->text, std::string(300, 'x'));

  EXPECT_EQ(root.get("bytes")->kind, Kind::Bytes);  // protocol 2: via _codecs.encode
  EXPECT_EQ(root.get("bytes")->text, "\x00\xff\x80" "abc"s);

  const Value& tuples = *root.get("tuples");
  ASSERT_EQ(tuples.items.size(), 5u);
  for (size_t n = 0; n < 5; ++n) {
    EXPECT_EQ(tuples.items[n]->kind, Kind::Tuple);
    std::vector<int64_t> expected;
    for (size_t i = 1; i <= n; ++i) expected.push_back(static_cast<int64_t>(i));
    EXPECT_EQ(ints_of(*tuples.items[n]), expected);
  }

  const Value& consts = *root.get("consts");
  EXPECT_TRUE(consts.items[0]->kind == Kind::Bool && consts.items[0]->boolean);
  EXPECT_TRUE(consts.items[1]->kind == Kind::Bool && !consts.items[1]->boolean);
  EXPECT_EQ(consts.items[2]->kind, Kind::None);

  const Value& nested = *root.get("nested");
  const Value& b = *nested.get("a")->get("b");
  EXPECT_EQ(b.items[0]->integer, 1);
  EXPECT_EQ(b.items[1]->items[0]->integer, 2);
  EXPECT_EQ(nested.dict[1].first->integer, 5);  // an int key
  EXPECT_EQ(nested.dict[1].second->text, "int key");

  // The same list twice: the memo makes both entries one object.
  const Value& shared = *root.get("shared");
  EXPECT_EQ(shared.items[0], shared.items[1]);

  const Value& ordered = *root.get("ordered");
  ASSERT_EQ(ordered.kind, Kind::Dict);
  EXPECT_EQ(ordered.dict[0].first->text, "z");
  EXPECT_EQ(ordered.dict[1].first->text, "y");
}

TEST_P(PickleValues, TruncationsAndCorruptionsAreErrors) {
  const std::string bytes =
      io_test::fixture_bytes("pickle_values_p" + std::to_string(GetParam()) + ".pkl");
  auto parse = [](const std::string& b) { Unpickler(b, "values").load(); };
  io_test::expect_truncations_fail(bytes, parse);
  io_test::expect_corruptions_safe(bytes, parse);
}

INSTANTIATE_TEST_SUITE_P(Protocols, PickleValues, testing::Values(2, 4, 5));

TEST(Pickle, RefusesUnknownGlobals) {
  for (const std::string& bytes : {"\x80\x02" "cos\nsystem\nX\x02\0\0\0ls\x85R."s,
                                   "\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93."s,
                                   "\x80\x02" "ctorch\nload\n."s}) {
    const std::string message = error_of([&] { Unpickler(bytes, "evil.pkl").load(); });
    EXPECT_NE(message.find("refuses it: loading never executes code"), std::string::npos)
        << message;
  }
  EXPECT_EQ(error_of([] { Unpickler("\x80\x02" "cos\nsystem\n."s, "evil.pkl").load(); }),
            "evil.pkl: the pickle at byte 2 refers to global os.system; scalpel's weights loader "
            "refuses it: loading never executes code, and only the globals of a state dict are "
            "accepted");
}

TEST(Pickle, UnsupportedOpcodeIsNamed) {
  // Protocol 0's text INT opcode.
  EXPECT_EQ(error_of([] { Unpickler("\x80\x02I1\n."s, "old.pkl").load(); }),
            "old.pkl: unsupported pickle opcode 0x49 ('I') at byte 2");
  EXPECT_NE(error_of([] { Unpickler("\x80\x01N."s, "p1.pkl").load(); })
                .find("unsupported pickle protocol 1"),
            std::string::npos);
}

TEST(Pickle, MalformedStreamsAreErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {"\x80\x02."s, "STOP at byte 2 with 0 values"},
      {"\x80\x02NN."s, "STOP at byte 4 with 2 values"},
      {"\x80\x02t."s, "needs a MARK"},
      {"\x80\x02(N\x86."s, "stack underflow"},  // TUPLE2 cannot reach below the MARK
      {"\x80\x02h\x05."s, "memo entry 5 missing"},
      {"\x80\x02NNNs."s, "SETITEM(S) at byte 5 on a None"},
      {"\x80\x02X\xff\xff\xff\x7f"s, "string needs 2147483647 bytes"},
      {"\x80\x04\x95\x10\0\0\0\0\0\0\0N."s, "pickle frame at byte 2 needs 16 bytes"},
      {"\x80\x02K\x01K\x02R."s, "REDUCE at byte 6 calls a int"},
      {"\x80\x02N\x85Q."s, "persistent id at byte 4 is not a torch storage reference"},
      {"\x80\x02]Nb."s, "BUILD at byte 4 on a list"},
  };
  for (const auto& [bytes, expected] : cases) {
    const std::string message = error_of([&] { Unpickler(bytes, "bad.pkl").load(); });
    EXPECT_NE(message.find(expected), std::string::npos) << message << " / wanted: " << expected;
  }
}

// An int as LONG1 with 8 bytes.
std::string long1(int64_t value) {
  std::string p = "\x8a\x08";
  for (int i = 0; i < 8; ++i) p += static_cast<char>((static_cast<uint64_t>(value) >> (8 * i)) & 0xFF);
  return p;
}

// A _rebuild_tensor_v2 call on a FloatStorage of `numel` elements.
std::string tensor_pickle(int64_t numel, const std::vector<int64_t>& size,
                          const std::vector<int64_t>& stride, int64_t offset) {
  std::string p = "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n("s;
  p += "(X\x07\0\0\0storage" "ctorch\nFloatStorage\n" "X\x01\0\0\0" "0" "X\x03\0\0\0cpu"s;
  p += long1(numel) + "tQ" + long1(offset) + "(";
  for (const int64_t s : size) p += long1(s);
  p += "t(";
  for (const int64_t s : stride) p += long1(s);
  p += "t\x89" "ccollections\nOrderedDict\n)RtR."s;
  return p;
}

TEST(Pickle, RebuildsTensorReferences) {
  const std::string bytes = tensor_pickle(10, {3}, {2}, 4);
  Unpickler unpickler(bytes, "t.pkl");
  const Value& t = unpickler.load();
  ASSERT_EQ(t.kind, Kind::Tensor);
  EXPECT_EQ(t.integer, 4);
  EXPECT_EQ(t.size, (std::vector<int64_t>{3}));
  EXPECT_EQ(t.stride, (std::vector<int64_t>{2}));
  EXPECT_EQ(t.items[0]->kind, Kind::Storage);
  EXPECT_EQ(t.items[0]->text, "0");
  EXPECT_EQ(t.items[0]->location, "cpu");
  EXPECT_EQ(t.items[0]->storage_type, pickle::StorageType::Float);
  EXPECT_EQ(unpickler.storages().size(), 1u);
}

TEST(Pickle, TensorsMustLieInsideTheirStorage) {
  // offset 4 + (3-1)*3 = 10 is one past the last of 10 elements.
  const std::string message =
      error_of([] { Unpickler(tensor_pickle(10, {3}, {3}, 4), "t.pkl").load(); });
  EXPECT_NE(message.find("reaches element 10 of storage '0', which has 10"), std::string::npos)
      << message;
  EXPECT_NO_THROW(Unpickler(tensor_pickle(10, {3}, {3}, 3), "t.pkl").load());
  EXPECT_NO_THROW(Unpickler(tensor_pickle(0, {0}, {1}, 0), "t.pkl").load());  // empty tensor
  EXPECT_NO_THROW(Unpickler(tensor_pickle(1, {5, 4}, {0, 0}, 0), "t.pkl").load());  // expanded
}

TEST(Pickle, TensorSizesAreBounded) {
  const std::string expected = "expected non-negative offset, sizes and strides, and at most 2^40";
  // Zero strides keep the first inside a one-element storage; its 2^60 elements are refused.
  const std::vector<std::string> cases = {
      tensor_pickle(1, {int64_t{1} << 30, int64_t{1} << 30}, {0, 0}, 0),
      tensor_pickle(10, {-1}, {1}, 0),
      tensor_pickle(10, {1}, {-1}, 0),
      tensor_pickle(10, {1}, {1}, -1),
      tensor_pickle(int64_t{1} << 62, {int64_t{1} << 41}, {1}, 0),
  };
  for (const std::string& bytes : cases) {
    const std::string message = error_of([&] { Unpickler(bytes, "t.pkl").load(); });
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace scalpel
