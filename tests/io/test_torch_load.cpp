#include "tensor/io/torch_load.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/io_test_util.h"
#include "tensor/io/safetensors.h"
#include "tensor/io/weights.h"
#include "tensor/io/zip.h"
#include "tensor/npy.h"

namespace scalpel {
namespace {

using io_test::error_of;
using io_test::fixture;

std::vector<std::string> expected_names() {
  std::ifstream in(fixture("tiny_expected/names.txt"));
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) names.push_back(line);
  return names;
}

const Tensor& find(const NamedTensors& tensors, const std::string& name) {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  throw Error("no tensor " + name);
}

// Every tensor equals the value torch saved (exactly, after the documented conversions).
void expect_tiny_state_dict(const NamedTensors& tensors) {
  const std::vector<std::string> names = expected_names();
  ASSERT_EQ(names.size(), 11u);
  ASSERT_EQ(tensors.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    SCOPED_TRACE(names[i]);
    EXPECT_EQ(tensors[i].first, names[i]);
    const Tensor& got = tensors[i].second;
    const Tensor expected = load_npy(fixture("tiny_expected/" + names[i] + ".npy"));
    EXPECT_EQ(got.dtype(), expected.dtype());
    EXPECT_EQ(got.shape(), expected.shape());
    EXPECT_EQ(got.to_vector(), expected.to_vector());
  }
  // The three views keep sharing one storage, with torch's offsets and strides.
  const Tensor& rows = find(tensors, "shared.rows");
  const Tensor& transposed = find(tensors, "shared.transposed");
  const Tensor& column = find(tensors, "shared.column");
  EXPECT_TRUE(rows.shares_storage(transposed));
  EXPECT_TRUE(rows.shares_storage(column));
  EXPECT_EQ(rows.offset(), 6);
  EXPECT_EQ(transposed.strides(), (Shape{1, 6}));
  EXPECT_EQ(column.offset(), 2);
  EXPECT_EQ(column.strides(), (Shape{6}));
  EXPECT_FALSE(find(tensors, "conv.weight").shares_storage(rows));
  EXPECT_EQ(find(tensors, "bn.num_batches_tracked").dim(), 0);
}

TEST(TorchLoad, ZipFormat) { expect_tiny_state_dict(load_torch(fixture("tiny_zip.pt"))); }

TEST(TorchLoad, LegacyFormat) { expect_tiny_state_dict(load_torch(fixture("tiny_legacy.pt"))); }

TEST(TorchLoad, BareStateDict) { expect_tiny_state_dict(load_torch(fixture("tiny_bare.pt"))); }

TEST(TorchLoad, LoadWeightsFileSniffsTorchFormats) {
  for (const char* name : {"tiny_zip.pt", "tiny_legacy.pt"}) {
    const NamedTensors tensors = load_weights_file(fixture(name));
    ASSERT_EQ(tensors.size(), 11u) << name;
    EXPECT_EQ(find(tensors, "double").dtype(), DType::F32);
  }
}

TEST(TorchLoad, UnreadableFiles) {
  EXPECT_EQ(error_of([] { load_weights_file("/nonexistent/w.pt"); }),
            "cannot read /nonexistent/w.pt: No such file or directory");
  EXPECT_EQ(error_of([] { load_torch(SCALPEL_FIXTURES); }),
            std::string("cannot read ") + SCALPEL_FIXTURES + ": not a regular file (a directory)");
}

TEST(TorchLoad, MissingZipEntry) {
  const std::string path = fixture("tiny_missing_entry.pt");
  EXPECT_EQ(error_of([&] { load_torch(path); }),
            path + ": missing entry 'tiny_zip/data/1' for storage '1'");
}

TEST(TorchLoad, StorageSizeMustMatchItsEntry) {
  // 2**62 + 1 floats would be 4 bytes if the size computation wrapped around.
  const std::string path = fixture("huge_numel.pt");
  EXPECT_EQ(error_of([&] { load_torch(path); }),
            path + ": storage '0' has 4 bytes, expected 4611686018427387905 elements of "
                   "FloatStorage");
}

TEST(TorchLoad, RefusesCodeExecution) {
  const std::string marker = "/tmp/scalpel_pickle_pwned";  // what the evil pickle would create
  std::filesystem::remove(marker);
  for (const char* name : {"evil_zip.pt", "evil_legacy.pt"}) {
    const std::string message = error_of([&] { load_torch(fixture(name)); });
    EXPECT_NE(message.find("refers to global posix.system"), std::string::npos) << message;
    EXPECT_NE(message.find("loading never executes code"), std::string::npos) << message;
    EXPECT_THROW(load_weights_file(fixture(name)), Error);
  }
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(TorchLoad, RefusesPickledModules) {
  const std::string message = error_of([] { load_torch(fixture("module_legacy.pt")); });
  EXPECT_NE(message.find("refers to global torch.nn.modules.linear.Linear"), std::string::npos)
      << message;
}

TEST(TorchLoad, WrongContents) {
  const std::pair<std::string, std::string> cases[] = {
      {"not_state_dict.pt",
       ": entry 'epoch' is a int, not a tensor; expected a state dict (or a dict holding one "
       "under 'state_dict', 'model' or 'net')"},
      {"list.pt", ": holds a list, not a state dict (a dict of tensors)"},
      {"duplicate_names.pt", ": duplicate tensor name 'w'"},
  };
  for (const auto& [name, expected] : cases) {
    EXPECT_EQ(error_of([&] { load_torch(fixture(name)); }), fixture(name) + expected);
  }
  EXPECT_NE(error_of([] { load_torch(fixture("tiny.safetensors")); })
                .find("is a safetensors file, not a torch.save file"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_torch("GIF89a...", "x.gif"); }).find("unknown weights format"),
            std::string::npos);
  // A pickle of a dict whose values are not tensors.
  const std::string values = io_test::fixture_bytes("pickle_values_p2.pkl");
  EXPECT_EQ(error_of([&] { parse_torch(values, "values.pkl"); }),
            "values.pkl: not a PyTorch file (a pickle without torch's magic number)");
}

// Truncations at every offset must throw; corrupting any byte must throw or load, never crash.
TEST(TorchLoad, TruncatedAndCorruptFiles) {
  for (const char* name : {"tiny_zip.pt", "tiny_legacy.pt"}) {
    SCOPED_TRACE(name);
    const std::string bytes = io_test::fixture_bytes(name);
    auto parse = [&](const std::string& b) { parse_torch(b, name); };
    io_test::expect_truncations_fail(bytes, parse);
    io_test::expect_corruptions_safe(bytes, parse);
  }
}

TEST(TorchLoad, ZipCorruptionIsCaughtByCrc) {
  std::string bytes = io_test::fixture_bytes("tiny_zip.pt");
  const std::string_view data = ZipReader(bytes, "").read(*ZipReader(bytes, "").find("tiny_zip/data/1"));
  bytes[static_cast<size_t>(data.data() - bytes.data()) + 5] ^= 0x10;  // conv.weight's bytes
  EXPECT_NE(error_of([&] { parse_torch(bytes, "corrupt.pt"); })
                .find("corrupt.pt: entry 'tiny_zip/data/1' is corrupt (CRC-32"),
            std::string::npos);
}

TEST(TorchLoad, RealLegacyCheckpoint) {
  const std::string path =
      std::string(SCALPEL_SAMPLES) + "/weights/pytorch/mobilenetV1X0.25_pretrain.tar";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "samples absent: " << path;
  const NamedTensors tensors = load_weights_file(path);
  EXPECT_EQ(tensors.front().first, "stage1.0.0.weight");
  EXPECT_EQ(tensors.front().second.shape(), (Shape{8, 3, 3, 3}));
  EXPECT_EQ(tensors.back().first, "fc.bias");
  EXPECT_EQ(tensors.back().second.shape(), (Shape{1000}));
  EXPECT_EQ(find(tensors, "fc.weight").shape(), (Shape{1000, 256}));
  for (const auto& [name, t] : tensors) {
    EXPECT_FALSE(name.starts_with("module.")) << name;
    EXPECT_EQ(t.dtype(), name.ends_with("num_batches_tracked") ? DType::I64 : DType::F32) << name;
  }
}

}  // namespace
}  // namespace scalpel
