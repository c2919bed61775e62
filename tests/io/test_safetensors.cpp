#include "tensor/io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "io/io_test_util.h"
#include "tensor/npy.h"

namespace scalpel {
namespace {

using io_test::error_of;
using io_test::fixture;

// A safetensors file with this header text and `data_size` zero bytes of data.
std::string file_with_header(const std::string& header, size_t data_size) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + std::string(data_size, '\0');
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("scalpel_io_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

TEST(Safetensors, ReadsEveryDtype) {
  const SafetensorsContents contents = read_safetensors(fixture("tiny.safetensors"));
  // Data order (the header lists them in reverse).
  const std::vector<std::string> names = {"b.f16", "a.f32", "c.bf16", "d.f64", "e.i64",
                                          "f.i32", "g.u8",  "h.bool", "i.scalar"};
  ASSERT_EQ(contents.tensors.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    SCOPED_TRACE(names[i]);
    EXPECT_EQ(contents.tensors[i].first, names[i]);
    const Tensor& got = contents.tensors[i].second;
    const Tensor expected = load_npy(fixture("safetensors_expected/" + names[i] + ".npy"));
    EXPECT_EQ(got.dtype(), expected.dtype());
    EXPECT_EQ(got.shape(), expected.shape());
    EXPECT_EQ(got.to_vector(), expected.to_vector());
  }
  EXPECT_EQ(contents.metadata,
            (StringMap{{"format", "pt"}, {"note", "written by make_io_fixtures.py"}}));
}

TEST(Safetensors, RoundTrip) {
  const Tensor base = Tensor::arange(0, 12).view({3, 4});
  NamedTensors tensors = {
      {"transposed", base.transpose(0, 1)},  // written contiguous
      {"double", Tensor::from_vector({0.1, -2.5e300}, {2}, DType::F64)},
      {"labels", Tensor::from_vector({-3, 1e15}, {2}, DType::I64)},
      {"bytes", Tensor::from_vector({0, 255, 7}, {3}, DType::U8)},
      {"scalar", Tensor::scalar(4.5)},
      {"empty", Tensor::zeros({0, 5})},
  };
  const StringMap metadata = {{"epoch", "3"}, {"classes", "[\"cat\", \"dog\"]"}};
  const std::string path = temp_path("roundtrip.safetensors");
  save_safetensors(path, tensors, metadata);
  const std::string bytes = read_file(path);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]) % 8, 0) << "header padded to 8 bytes: data aligned";
  const SafetensorsContents back = read_safetensors(path);
  std::filesystem::remove(path);
  EXPECT_EQ(back.metadata, metadata);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].first);
    EXPECT_EQ(back.tensors[i].first, tensors[i].first);
    EXPECT_EQ(back.tensors[i].second.dtype(), tensors[i].second.dtype());
    EXPECT_EQ(back.tensors[i].second.shape(), tensors[i].second.shape());
    EXPECT_EQ(back.tensors[i].second.to_vector(), tensors[i].second.to_vector());
  }
}

TEST(Safetensors, WriteErrorsLeaveNoFile) {
  const std::string path = temp_path("dup.safetensors");
  const NamedTensors dup = {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({1})}};
  EXPECT_EQ(error_of([&] { save_safetensors(path, dup); }),
            "safetensors: duplicate or reserved tensor name 'a'");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_THROW(save_safetensors("/nonexistent-dir/x.safetensors", {{"a", Tensor::zeros({1})}}),
               Error);
}

TEST(Safetensors, BadHeadersNameTheProblem) {
  const std::pair<std::string, std::string> cases[] = {
      {file_with_header(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4),
       "x: tensor 'w': data_offsets [0, 8] lie outside the 4 data bytes"},
      {file_with_header(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4),
       "x: tensor 'w': data_offsets [0, 4] hold 4 bytes, but F32 [2] needs 8"},
      {file_with_header(R"({"w": {"dtype": "Q8", "shape": [2], "data_offsets": [0, 2]}})", 2),
       "x: tensor 'w': unknown dtype 'Q8'"},
      {file_with_header(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
       "x: tensor 'w': negative dimension -1"},
      {file_with_header(R"({"w": {"dtype": "U8", "shape": [4000000000, 4000000000, 4000000000],)"
                        R"( "data_offsets": [0, 0]}})", 0),
       "x: tensor 'w': shape [4000000000, 4000000000, 4000000000] is larger than the 0 data bytes"},
      {file_with_header(R"({"w": {"dtype": "U8", "shape": [2]}})", 2),
       "x: tensor 'w': JSON: missing key \"data_offsets\""},
      {file_with_header(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
                        R"( "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})", 6),
       "x: tensor 'b' data starts at 2, expected 4 (regions overlap or leave a hole)"},
      {file_with_header(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}})", 4),
       "x: tensor 'a' data starts at 2, expected 0 (regions overlap or leave a hole)"},
      {file_with_header(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})", 3),
       "x: the tensors cover 2 data bytes but the file holds 3 (trailing bytes?)"},
      {file_with_header(R"({"__metadata__": {"epoch": 3}})", 0),
       "x: __metadata__ value for 'epoch' is not a string"},
      {file_with_header(R"([1, 2])", 0), "x: safetensors header is a JSON array, not an object"},
      {file_with_header(R"({"a": 1,})", 0), "x header: invalid JSON at line 1, column 9"},
      {std::string("\xff\xff\xff\xff\0\0\0\0{}", 10), "x: safetensors header length 4294967295 exceeds"},
      {std::string("\x10\0\0\0\0\0\0\0{}", 10),
       "x: safetensors header length 16 is beyond the end of the file (10 bytes; truncated?)"},
      {"abc", "x: truncated: safetensors header length needs 8 bytes at offset 0, only 3 left"},
  };
  for (const auto& [bytes, expected] : cases) {
    const std::string message = error_of([&] { parse_safetensors(bytes, "x"); });
    EXPECT_EQ(message.substr(0, expected.size()), expected);
  }
}

TEST(Safetensors, TruncatedAndCorruptFiles) {
  const std::string bytes = io_test::fixture_bytes("tiny.safetensors");
  auto parse = [](const std::string& b) { parse_safetensors(b, "tiny.safetensors"); };
  io_test::expect_truncations_fail(bytes, parse);
  io_test::expect_corruptions_safe(bytes, parse);
}

TEST(Safetensors, LoadWeightsFileConvertsAndRefusesNaN) {
  const NamedTensors tensors = load_weights_file(fixture("tiny.safetensors"));
  for (const auto& [name, t] : tensors) {
    EXPECT_TRUE(t.dtype() == DType::F32 || t.dtype() == DType::I64 || t.dtype() == DType::U8)
        << name;
  }
  const std::string path = temp_path("nan.safetensors");
  save_safetensors(path, {{"ok", Tensor::ones({2})},
                          {"fc.weight", Tensor::from_vector({1, NAN, 3}, {3})}});
  EXPECT_EQ(error_of([&] { load_weights_file(path); }),
            path + ": tensor 'fc.weight' holds nan at element 1");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace scalpel
