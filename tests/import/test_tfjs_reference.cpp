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

#include <filesystem>

#include "data/image.h"
#include "import/tfjs_reference.h"
#include "layers/functional.h"
#include "models/import/import.h"
#include "tensor/npy.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;

using namespace reference;

const fs::path kNsfwjs = kSamples / "weights/tfjs/nsfwjs_mobilenet_v2/model.json";

// The imported model's logits on NHWC input (as tfjs takes it).
Tensor scalpel_logits(const std::string& model_json, const Tensor& nhwc) {
  const ImportedGraph g = import_graph_file(model_json);
  auto model = build_imported_model(g);
  EXPECT_TRUE(model->ends_in_softmax());
  return model->forward(nhwc.permute({0, 3, 1, 2}).contiguous());
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
