// Segmentation metrics (apps/report/segmentation_metrics.h) against values computed by hand
// and with scikit-learn, and `scalpel eval` of a U-Net end to end on a two-image case whose
// metrics are worked out by hand, plus masks that do not fit their images and data of the
// wrong kind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/model_flags.h"
#include "apps/report/evaluate_segmentation.h"
#include "apps/report/segmentation_metrics.h"
#include "apps/train/segmentation.h"
#include "data/image.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "support/files.h"
#include "tensor/json.h"

namespace scalpel {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::slurp;

TEST(SegmentationMetrics, ThreeClassesMatchSklearn) {
  // f1_score / jaccard_score(t, p, labels=[0, 1, 2], average=None, zero_division=1) give
  // [2/3, 0.75, 2/3] and [0.5, 0.6, 0.5]; accuracy_score 0.7.
  const std::vector<int64_t> t = {0, 0, 1, 1, 2, 2, 2, 0, 1, 1}, p = {0, 1, 1, 1, 2, 0, 2, 0, 2, 1};
  report::PixelConfusion m(3);
  m.add(t.data(), p.data(), t.size());
  EXPECT_NEAR(m.dice(0), 2.0 / 3, 1e-12);
  EXPECT_NEAR(m.dice(1), 0.75, 1e-12);
  EXPECT_NEAR(m.dice(2), 2.0 / 3, 1e-12);
  EXPECT_NEAR(m.iou(0), 0.5, 1e-12);
  EXPECT_NEAR(m.iou(1), 0.6, 1e-12);
  EXPECT_NEAR(m.iou(2), 0.5, 1e-12);
  EXPECT_NEAR(m.pixel_accuracy(), 0.7, 1e-12);
  EXPECT_NEAR(m.mean_dice(), (0.75 + 2.0 / 3) / 2, 1e-12);  // foreground classes 1 and 2
  EXPECT_NEAR(m.mean_iou(), 0.55, 1e-12);
  EXPECT_EQ(m.count(2, 0), 1);
  EXPECT_EQ(m.support(1), 4);
}

TEST(SegmentationMetrics, AnEmptyMaskPredictedEmptyScoresOneAndDatasetValuesSumPixelsFirst) {
  const std::vector<int64_t> zeros(4, 0), hit = {1, 1, 0, 0}, half = {1, 0, 0, 0};
  report::PixelConfusion empty(2), partial(2);
  empty.add(zeros.data(), zeros.data(), 4);
  partial.add(hit.data(), half.data(), 4);  // TP 1, FN 1: Dice 2/3, IoU 1/2
  EXPECT_EQ(empty.dice(1), 1.0);
  EXPECT_EQ(empty.iou(1), 1.0);
  const report::SegmentationMetrics m = report::segmentation_metrics({empty, partial}, {"background", "foreground"});
  EXPECT_NEAR(m.mean_dice, 2.0 / 3, 1e-12);           // pixels summed: the empty image adds nothing
  EXPECT_NEAR(m.mean_image_dice, (1 + 2.0 / 3) / 2, 1e-12);  // per image, then averaged
  EXPECT_NEAR(m.mean_image_iou, 0.75, 1e-12);
  EXPECT_NEAR(m.pixel_accuracy, 7.0 / 8, 1e-12);
  EXPECT_EQ(m.confusion, (std::vector<std::vector<int64_t>>{{6, 0}, {1, 1}}));
  const Json j = report::segmentation_metrics_to_json(m);
  EXPECT_EQ(j.at("per_class").at("foreground").at("support").as_int(), 2);
  EXPECT_NEAR(j.at("per_class").at("background").at("dice").as_number(), 12.0 / 13, 1e-12);
}

TEST(SegmentationMetrics, OutOfRangeClassIsAnError) {
  const std::vector<int64_t> t = {0, 2}, p = {0, 1};
  report::PixelConfusion m(2);
  EXPECT_THROW(m.add(t.data(), p.data(), 2), Error);
}

// root/seg: a.png with a 16x16 mask holding a 4x4 square (64 pixels once resized to 32x32) and
// b.png with an empty mask. A U-Net whose output conv has zero weights predicts its bias'
// sign everywhere, so every metric follows from the masks by hand.
class SegmentationEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() / ("scalpel-seg-eval-" + std::to_string(::getpid())));
    fs::create_directories(*root_ / "seg" / "images");
    fs::create_directories(*root_ / "seg" / "masks");
    data::Image image(32, 32, 3, 90), mask_a(16, 16, 1, 0), mask_b(32, 32, 1, 0);
    for (int y = 2; y < 6; ++y)
      for (int x = 2; x < 6; ++x) mask_a.at(y, x) = 255;
    data::save_image((*root_ / "seg" / "images" / "a.png").string(), image);
    data::save_image((*root_ / "seg" / "masks" / "a.png").string(), mask_a);
    data::save_image((*root_ / "seg" / "images" / "b.png").string(), image);
    data::save_image((*root_ / "seg" / "masks" / "b.png").string(), mask_b);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }

  // A binary U-Net checkpoint predicting foreground everywhere (bias > 0) or nowhere.
  static std::string constant_unet(double bias) {
    models::ModelOptions o;
    o.classes = 1;
    o.base_width = 4;
    const auto model = models::create_model("unet", o);
    for (auto p : model->named_parameters()) {
      if (p.name == "outc.conv.weight") p.tensor.fill_(0);
      if (p.name == "outc.conv.bias") p.tensor.fill_(bias);
    }
    data::Preprocess pre;
    pre.width = pre.height = 32;
    pre.norm = data::normalization_preset("unit");
    const std::string path = (*root_ / (bias > 0 ? "fg.safetensors" : "bg.safetensors")).string();
    models::save_checkpoint(path, *model, {"unet", o, train::mask_class_names(1), cli::preprocess_to_json(pre)});
    return path;
  }
  static fs::path* root_;
};
fs::path* SegmentationEval::root_ = nullptr;

TEST_F(SegmentationEval, MetricsOfAConstantPredictionEqualTheHandComputedOnes) {
  const std::string out = (*root_ / "report_fg").string();
  const auto r = run_cli({"eval", "--weights", constant_unet(2.0), "--data", (*root_ / "seg").string(), "--report",
                          out, "--gallery", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json m = Json::parse(slurp(fs::path(out) / "metrics.json"));
  // a: TP 64, FP 960 -> Dice 128/1088, IoU 64/1024; b: TP 0, FP 1024 -> 0, 0.
  // All pixels: foreground TP 64, FP 1984; background TP 0, FN 1984.
  EXPECT_EQ(m.at("task").as_string(), "segmentation");
  EXPECT_EQ(m.at("images").as_int(), 2);
  EXPECT_EQ(m.at("pixels").as_int(), 2048);
  EXPECT_NEAR(m.at("mean_dice").as_number(), 128.0 / 2112, 1e-12);
  EXPECT_NEAR(m.at("mean_iou").as_number(), 64.0 / 2048, 1e-12);
  EXPECT_NEAR(m.at("pixel_accuracy").as_number(), 64.0 / 2048, 1e-12);
  EXPECT_NEAR(m.at("mean_image_dice").as_number(), 128.0 / 1088 / 2, 1e-12);
  EXPECT_NEAR(m.at("mean_image_iou").as_number(), 0.0625 / 2, 1e-12);
  EXPECT_EQ(m.at("per_class").at("background").at("dice").as_number(), 0.0);
  EXPECT_EQ(m.at("per_class").at("foreground").at("support").as_int(), 64);
  EXPECT_EQ(m.at("confusion_matrix").dump(), Json::parse("[[0, 1984], [0, 64]]").dump());

  const std::string csv = slurp(fs::path(out) / "predictions.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "path,mask,dice,iou");
  EXPECT_NE(csv.find("a.png,"), std::string::npos);
  EXPECT_NE(csv.find(",0.117647,0.0625\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",0,0\n"), std::string::npos) << csv;

  const std::string html = slurp(fs::path(out) / "report.html");
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_NE(html.find("Dice per image"), std::string::npos);
  // The Dice histogram's x axis has its ticks, 0.0 to 1.0, and the thumbnails enlarge on a click.
  const size_t x_axis = html.find("<g class='x-axis'>");
  ASSERT_NE(x_axis, std::string::npos);
  const std::string ticks = html.substr(x_axis, html.find("</g>", x_axis) - x_axis);
  EXPECT_NE(ticks.find(">0.0<"), std::string::npos) << ticks;
  EXPECT_NE(ticks.find(">0.5<"), std::string::npos) << ticks;
  EXPECT_NE(ticks.find(">1.0<"), std::string::npos) << ticks;
  EXPECT_NE(html.find("<label class='zoom'"), std::string::npos);
  size_t images = 0;
  for (size_t at = 0; (at = html.find("data:image/png;base64,", at)) != std::string::npos; ++at) ++images;
  EXPECT_EQ(images, 2u);  // --gallery 2
  EXPECT_EQ(html.substr(html.size() - 15), "</body></html>\n");
}

TEST_F(SegmentationEval, AnEmptyPredictionOfAnEmptyMaskIsPerfect) {
  const std::string out = (*root_ / "report_bg").string();
  const auto r =
      run_cli({"eval", "--weights", constant_unet(-2.0), "--data", (*root_ / "seg").string(), "--report", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json m = Json::parse(slurp(fs::path(out) / "metrics.json"));
  // a: FN 64 -> Dice 0; b: nothing to find, nothing found -> 1. Background: TP 1984, FP 64.
  EXPECT_EQ(m.at("mean_dice").as_number(), 0.0);
  EXPECT_NEAR(m.at("mean_image_dice").as_number(), 0.5, 1e-12);
  EXPECT_NEAR(m.at("pixel_accuracy").as_number(), 1984.0 / 2048, 1e-12);
  EXPECT_NEAR(m.at("per_class").at("background").at("dice").as_number(), 3968.0 / 4032, 1e-12);
  EXPECT_NE(r.out.find("2 images, Dice 0.0000"), std::string::npos) << r.out;
}

TEST_F(SegmentationEval, AMaskOfAnotherShapeIsNamed) {
  const fs::path data = *root_ / "bad";
  fs::create_directories(data / "images");
  fs::create_directories(data / "masks");
  data::save_image((data / "images" / "a.png").string(), data::Image(32, 32, 3, 90));
  data::save_image((data / "masks" / "a.png").string(), data::Image(32, 32, 1, 0));
  data::save_image((data / "images" / "c.png").string(), data::Image(32, 32, 3, 90));
  data::save_image((data / "masks" / "c.png").string(), data::Image(32, 16, 1, 0));
  // Reading the dataset leaves the pair out with a warning (data/dataset.h), so the CLI scores
  // the other image and says why it has one image only.
  const auto r = run_cli({"eval", "--weights", constant_unet(2.0), "--data", data.string(), "--report",
                          (*root_ / "report_bad").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("c.png' is 32x16 but its image"), std::string::npos) << r.err;
  EXPECT_EQ(Json::parse(slurp(*root_ / "report_bad" / "metrics.json")).at("images").as_int(), 1);
  // Given the pair anyway, evaluation stops with an Error naming both files.
  data::Dataset pairs;
  pairs.root = data.string();
  pairs.samples.push_back({.path = (data / "images" / "c.png").string(), .mask_path = (data / "masks" / "c.png").string()});
  models::ModelOptions o;
  o.classes = 1;
  o.base_width = 4;
  const auto model = models::create_model("unet", o);
  data::Preprocess pre;
  pre.width = pre.height = 32;
  try {
    report::evaluate_segmentation(*model, pairs, pre);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.png' is 32x16 but its image '"), std::string::npos) << e.what();
  }
}

TEST_F(SegmentationEval, TestTimeAugmentationOfClassifiersIsRefused) {
  const auto r = run_cli({"eval", "--weights", constant_unet(2.0), "--data", (*root_ / "seg").string(), "--report",
                          (*root_ / "report_tta").string(), "--tta", "flip"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.first_err_line().find("--tta and --group-tta"), std::string::npos) << r.err;
}

TEST_F(SegmentationEval, AClassifierOnMasksWithoutClassesIsNamed) {
  models::ModelOptions o;
  o.classes = 2;
  o.width = 0.25;
  const std::string weights = (*root_ / "cls.safetensors").string();
  models::save_checkpoint(weights, *models::create_model("mobilenet_v2", o), {"mobilenet_v2", o, {"x", "y"}, Json()});
  const auto r = run_cli({"eval", "--weights", weights, "--data", (*root_ / "seg").string(), "--report",
                          (*root_ / "report_cls").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.first_err_line().find("mobilenet_v2 is a classifier, but --data"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace scalpel
