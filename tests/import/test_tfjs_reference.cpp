// Imported TF.js models against @tensorflow/tfjs 4.22 itself (CPU backend, run by node through
// tests/reference/tfjs_predict.js), on the same float input:
//  - nsfwjs' MobileNetV2 (shared samples: a real Keras 2.2.4 model, uint8-quantized): logits
//    within 1e-4 relative on a random batch; on chelsea.png (tfjs's own bilinear resize with
//    align_corners) the README's reference probabilities within 1e-3
//  - two models written by tfjs here (tests/reference/tfjs_make_models.js) that use every
//    layer the importer reads: TF "same" padding on odd sizes with strides, transposed and
//    separable convs, pooling, merges, Flatten into Dense, Reshape back into an image
// Skipped with a message where node, the npm modules (`make reference`) or the samples are absent.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "data/image.h"
#include "layers/functional.h"
#include "models/import/import.h"
#include "tensor/npy.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;

const fs::path kScripts = SCALPEL_REFERENCE_SCRIPTS;
const fs::path kNodeModules = SCALPEL_REFERENCE_NODE_MODULES;
const fs::path kSamples = SCALPEL_SAMPLES;
const fs::path kNsfwjs = kSamples / "weights/tfjs/nsfwjs_mobilenet_v2/model.json";

// Why the reference cannot run here, or "" when it can.
std::string reference_missing() {
  const std::string node = SCALPEL_NODE;
  if (node.empty()) return "node not found at configure time";
  if (!fs::exists(kNodeModules / "@tensorflow/tfjs/package.json")) {
    return "@tensorflow/tfjs not installed in " + kNodeModules.string() + " (run `make reference`)";
  }
  return "";
}

#define SKIP_WITHOUT_REFERENCE()                                          \
  do {                                                                    \
    const std::string missing = reference_missing();                     \
    if (!missing.empty()) GTEST_SKIP() << "tfjs reference: " << missing;  \
  } while (0)

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "scalpel-tfjsref-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a script of tests/reference with node; fails the test (returns false) when it fails.
bool run_node(const std::string& script, const std::vector<std::string>& args) {
  std::string command = "NODE_PATH=" + quoted(kNodeModules.string()) + " " + quoted(SCALPEL_NODE) + " " +
                        quoted((kScripts / script).string());
  for (const std::string& a : args) command += " " + quoted(a);
  command += " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return false;
  }
  std::string output;
  std::array<char, 4096> buffer;
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) output += buffer.data();
  const int status = pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << script << " failed (status " << status << "):\n" << output;
    return false;
  }
  return true;
}

// The imported model's logits on NHWC input (as tfjs takes it).
Tensor scalpel_logits(const std::string& model_json, const Tensor& nhwc) {
  const ImportedGraph g = import_graph_file(model_json);
  auto model = build_imported_model(g);
  EXPECT_TRUE(model->ends_in_softmax());
  return model->forward(nhwc.permute({0, 3, 1, 2}).contiguous());
}

// max |a - b| <= tolerance * max(1, max |b|).
void expect_close(const Tensor& actual, const Tensor& expected, double tolerance, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  const std::vector<double> a = actual.to_vector();
  const std::vector<double> b = expected.to_vector();
  double scale = 1;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(b[i]));
    worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  EXPECT_LE(worst, tolerance * scale) << what << ": max abs difference " << worst << " (scale " << scale << ")";
}

Tensor softmax_rows(const Tensor& logits) { return nn::softmax(logits, 1); }

TEST(TfjsReference, NsfwjsMatchesTfjsOnTheSameInput) {
  SKIP_WITHOUT_REFERENCE();
  if (!fs::exists(kNsfwjs)) GTEST_SKIP() << "shared samples absent: " << kNsfwjs;
  TempDir dir;
  Generator gen(17);
  const Tensor x = rand({2, 224, 224, 3}, gen);  // RGB / 255, as the model takes it
  save_npy(dir / "x.npy", x);
  ASSERT_TRUE(run_node("tfjs_predict.js", {"--model", kNsfwjs.string(), "--input", dir / "x.npy", "--output",
                                           dir / "logits.npy", "--logits"}));
  expect_close(scalpel_logits(kNsfwjs.string(), x), load_npy(dir / "logits.npy"), 1e-4, "nsfwjs logits");
}

TEST(TfjsReference, NsfwjsChelseaGivesTheReadmeProbabilities) {
  SKIP_WITHOUT_REFERENCE();
  const fs::path chelsea = kSamples / "images/chelsea.png";
  if (!fs::exists(kNsfwjs) || !fs::exists(chelsea)) GTEST_SKIP() << "shared samples absent: " << kSamples;
  TempDir dir;
  const data::ImageF image = data::load_image_float(chelsea.string());
  ASSERT_EQ(image.channels, 3);
  save_npy(dir / "chelsea.npy", Tensor::from_data(image.pixels.data(), {1, image.height, image.width, 3}));
  // tfjs resizes (bilinear, align_corners) and scales; scalpel gets the very input tfjs used.
  ASSERT_TRUE(run_node("tfjs_predict.js", {"--model", kNsfwjs.string(), "--input", dir / "chelsea.npy", "--output",
                                           dir / "p.npy", "--resize", "224", "224", "--scale", "0.00392156862745098",
                                           "--save-input", dir / "input.npy"}));
  const Tensor tfjs_p = load_npy(dir / "p.npy");
  // README: Drawing 0.001292, Hentai 0.000779, Neutral 0.930835, Porn 0.062888, Sexy 0.004207.
  const Tensor readme = Tensor::from_vector({0.001292, 0.000779, 0.930835, 0.062888, 0.004207}, {1, 5});
  expect_close(tfjs_p, readme, 1e-3, "tfjs vs README");
  const Tensor ours = softmax_rows(scalpel_logits(kNsfwjs.string(), load_npy(dir / "input.npy")));
  expect_close(ours, readme, 1e-3, "scalpel vs README");
  expect_close(ours, tfjs_p, 1e-4, "scalpel vs tfjs");
}

class TfjsLayerModels : public ::testing::TestWithParam<const char*> {};

TEST_P(TfjsLayerModels, MatchTfjs) {
  SKIP_WITHOUT_REFERENCE();
  TempDir dir;
  ASSERT_TRUE(run_node("tfjs_make_models.js", {dir / "models"}));
  const std::string model = dir / (std::string("models/") + GetParam() + "/model.json");
  const ImportedGraph g = import_graph_file(model);
  Shape nhwc = {3, g.spec.input_shape[1], g.spec.input_shape[2], g.spec.input_shape[0]};
  Generator gen(5);
  const Tensor x = randn(nhwc, gen);
  save_npy(dir / "x.npy", x);
  ASSERT_TRUE(run_node("tfjs_predict.js", {"--model", model, "--input", dir / "x.npy", "--output",
                                           dir / "logits.npy", "--logits"}));
  expect_close(scalpel_logits(model, x), load_npy(dir / "logits.npy"), 1e-4, GetParam());
}

INSTANTIATE_TEST_SUITE_P(TfjsReference, TfjsLayerModels, ::testing::Values("convs", "dense"));

}  // namespace
}  // namespace scalpel::models
