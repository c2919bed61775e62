// scalpel eval / gradcam / bench / data stats end to end through the CLI binary, on a tiny
// generated image folder and a small random-weight checkpoint.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/model_flags.h"
#include "apps/report/metrics.h"
#include "data/image.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "support/files.h"
#include "tensor/error.h"
#include "tensor/gemm_bf16.h"
#include "tensor/json.h"
#include "tensor/npy.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::slurp;

// A temporary folder with data/<class>/<i>.png (3 classes x 4 images, 32x32, a class-dependent
// colour plus noise), a 3-class mobilenet_v2 (width 0.25) checkpoint and a history.json beside it.
class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() / ("scalpel-eval-test-" + std::to_string(::getpid())));
    fs::create_directories(*root_);
    const char* classes[] = {"cyst", "normal", "tumor"};
    uint32_t seed = 1;
    for (int c = 0; c < 3; ++c) {
      fs::create_directories(*root_ / "data" / classes[c]);
      for (int i = 0; i < 4; ++i) {
        data::Image im(32, 32, 3);
        for (size_t k = 0; k < im.pixels.size(); ++k) {
          seed = seed * 1664525u + 1013904223u;
          im.pixels[k] = static_cast<uint8_t>((k % 3 == static_cast<size_t>(c) ? 160 : 40) + (seed >> 27));
        }
        data::save_image((*root_ / "data" / classes[c] / (std::to_string(i) + ".png")).string(), im);
      }
    }
    models::ModelOptions o;
    o.classes = 3;
    o.width = 0.25;
    const auto model = models::create_model("mobilenet_v2", o);
    models::save_checkpoint(weights(), *model, {"mobilenet_v2", o, {"cyst", "normal", "tumor"}, Json()});
    std::ofstream(*root_ / "history.json") << R"([{"epoch": 1, "train_loss": 1.2, "val_accuracy": 0.4},
                                                 {"epoch": 2, "train_loss": 0.9, "val_accuracy": 0.5}])";
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }
  static std::string weights() { return (*root_ / "model.safetensors").string(); }
  static std::string data_dir() { return (*root_ / "data").string(); }
  static std::string path(const std::string& name) { return (*root_ / name).string(); }
  // Exit status 1 and exactly one "error: " line naming `mentions` (notes may precede it,
  // e.g. about a replaced classifier head).
  static void expect_error(const test::CliResult& r, const std::string& mentions) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    std::istringstream lines(r.err);
    int errors = 0;
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("error: ")) continue;
      ++errors;
      EXPECT_NE(line.find(mentions), std::string::npos) << r.err;
    }
    EXPECT_EQ(errors, 1) << r.err;
  }
  static fs::path* root_;
};
fs::path* EvalCli::root_ = nullptr;

TEST_F(EvalCli, EvalWritesMetricsPredictionsAndReport) {
  const std::string out = path("report");
  const auto r = run_cli({"eval", "--weights", weights(), "--data", data_dir(), "--report", out, "--size", "32", "32",
                          "--gallery", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const Json m = Json::parse(slurp(fs::path(out) / "metrics.json"));
  ASSERT_EQ(m.at("classes").size(), 3u);
  EXPECT_EQ(m.at("classes")[2].as_string(), "tumor");
  int64_t total = 0;
  for (const Json& row : m.at("confusion_matrix").as_array())
    for (const Json& v : row.as_array()) total += v.as_int();
  EXPECT_EQ(total, 12);
  for (const char* key : {"precision", "recall", "specificity", "f1", "support", "auc"})
    EXPECT_TRUE(m.at("per_class").at("normal").contains(key)) << key;
  EXPECT_EQ(m.at("per_class").at("normal").at("support").as_int(), 4);

  // predictions.csv agrees with metrics.json.
  std::istringstream csv(slurp(fs::path(out) / "predictions.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "path,label,pred,p_cyst,p_normal,p_tumor");
  int rows = 0, correct = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::stringstream s(line);
    for (std::string cell; std::getline(s, cell, ',');) cells.push_back(cell);
    ASSERT_EQ(cells.size(), 6u) << line;
    correct += cells[1] == cells[2];
    const double sum = std::stod(cells[3]) + std::stod(cells[4]) + std::stod(cells[5]);
    EXPECT_NEAR(sum, 1.0, 1e-4);
    ++rows;
  }
  EXPECT_EQ(rows, 12);
  EXPECT_NEAR(m.at("accuracy").as_number(), correct / 12.0, 1e-12);

  const std::string html = slurp(fs::path(out) / "report.html");
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("ROC curves"), std::string::npos);
  EXPECT_NE(html.find("Training curves"), std::string::npos);  // history.json beside the weights
  if (correct < 12) {
    EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);  // the error gallery
  }
}

TEST_F(EvalCli, EvalBadInputIsOneErrorLine) {
  expect_error(run_cli({"eval", "--weights", weights(), "--data", path("absent"), "--report", path("r1")}), "absent");
  expect_error(run_cli({"eval", "--weights", path("absent.pt"), "--data", data_dir(), "--report", path("r2")}),
               "absent.pt");
  expect_error(run_cli({"eval", "--weights", weights(), "--data", data_dir(), "--report", path("r3"), "--bogus"}),
               "--bogus");
  // A 2-class model on 3-class data.
  expect_error(run_cli({"eval", "--weights", weights(), "--classes", "2", "--data", data_dir(), "--report",
                        path("r4"), "--size", "32", "32"}),
               "classes");
  EXPECT_FALSE(fs::exists(path("r4") + "/metrics.json"));
}

// The overlay and the raw map come at the image's own size (not the model's 224 x 224 input),
// and both files or neither: a --npy that cannot be written leaves no PNG either.
TEST_F(EvalCli, GradcamOutputsAreAtTheImagesSizeAndWrittenTogether) {
  const std::string image = path("wide.png"), png = path("wide_cam.png"), npy = path("wide_cam.npy");
  data::Image wide(48, 30, 3);
  for (size_t k = 0; k < wide.pixels.size(); ++k) wide.pixels[k] = static_cast<uint8_t>(k * 7 % 251);
  data::save_image(image, wide);
  auto r = run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", png, "--npy", npy});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const data::Image overlay = data::load_image(png);
  EXPECT_EQ(overlay.width, 48);
  EXPECT_EQ(overlay.height, 30);
  EXPECT_EQ(load_npy(npy).shape(), (Shape{30, 48}));

  const std::string lone_png = path("lone_cam.png");
  r = run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", lone_png, "--npy",
               path("no/such/folder/cam.npy")});
  expect_error(r, "no/such/folder/cam.npy");
  EXPECT_FALSE(fs::exists(lone_png));
}

// A report is published whole: when report.html cannot be written, metrics.json and
// predictions.csv are not left behind either.
TEST_F(EvalCli, EvalThatCannotWriteItsReportLeavesNoPartialReport) {
  const std::string out = path("blocked_report");
  fs::create_directories(fs::path(out) / "report.html");  // a folder where the page should go
  const auto r = run_cli({"eval", "--weights", weights(), "--data", data_dir(), "--report", out, "--size", "32", "32",
                          "--gallery", "0"});
  expect_error(r, "report.html");
  EXPECT_FALSE(fs::exists(fs::path(out) / "metrics.json"));
  EXPECT_FALSE(fs::exists(fs::path(out) / "predictions.csv"));
  for (const auto& entry : fs::directory_iterator(out))
    EXPECT_EQ(entry.path().filename(), "report.html") << "left behind: " << entry.path();
}

TEST_F(EvalCli, GradcamWritesOverlayAndRawMap) {
  const std::string png = path("cam.png"), npy = path("cam.npy");
  const std::string image = data_dir() + "/tumor/0.png";
  const auto r = run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", png, "--npy", npy,
                          "--class", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const data::Image im = data::load_image(png);
  const Tensor heat = load_npy(npy);
  ASSERT_EQ(heat.dim(), 2);
  EXPECT_EQ(heat.size(0), im.height);
  EXPECT_EQ(heat.size(1), im.width);
  EXPECT_EQ(im.channels, 3);

  std::ofstream(path("broken.png")) << "not an image";
  expect_error(run_cli({"gradcam", "--weights", weights(), "--image", path("broken.png"), "--out", png}), "broken.png");
  expect_error(run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", png, "--layer", "nope"}), "nope");
  expect_error(run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", png, "--class", "7"}), "7");
}

TEST_F(EvalCli, GradcamClassMustBeAClassIndex) {
  // Before, a negative --class silently meant "the predicted class".
  const std::string png = path("cam_class.png"), image = data_dir() + "/tumor/0.png";
  for (const char* bad : {"-5", "-1", "3", "1e30", "nan", "1.5"})
    expect_error(run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", png, "--class", bad}), bad);
  EXPECT_FALSE(fs::exists(png));
}

TEST_F(EvalCli, MaxPixelsIsCheckedBeforeDecoding) {
  // The data images are 32x32 = 1024 pixels.
  const std::string png = path("cam_limit.png"), image = data_dir() + "/tumor/0.png";
  expect_error(run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", png, "--max-pixels", "1000"}),
               "declares 32x32 = 1024 pixels, above the limit of 1000 (--max-pixels)");
  expect_error(run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", png, "--max-pixels", "0"}),
               "--max-pixels");
  EXPECT_FALSE(fs::exists(png));
  ASSERT_EQ(run_cli({"gradcam", "--weights", weights(), "--image", image, "--out", png, "--max-pixels", "1024"})
                .exit_code,
            0);
  // data stats counts such images as unreadable, naming the limit.
  const auto r = run_cli({"data", "stats", data_dir(), "--no-duplicates", "--max-pixels", "1000"});
  EXPECT_NE(r.err.find("declares 32x32 = 1024 pixels"), std::string::npos) << r.out << r.err;
}

TEST_F(EvalCli, BenchPrintsOneJsonObject) {
  for (bool train : {false, true}) {
    std::vector<std::string> argv = {"bench", "--model", "mobilenet_v2", "--width", "0.25", "--classes", "3",
                                     "--batch", "2", "--size", "32", "32", "--iters", "2", "--warmup", "1", "--json"};
    if (train) argv.push_back("--train");
    const auto r = run_cli(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Json j = Json::parse(r.out);
    EXPECT_EQ(j.at("model").as_string(), "mobilenet_v2");
    EXPECT_EQ(j.at("batch").as_int(), 2);
    EXPECT_EQ(j.at("mode").as_string(), train ? "train" : "eval");
    EXPECT_LE(j.at("ms_min").as_number(), j.at("ms_median").as_number());
    EXPECT_GT(j.at("images_per_s").as_number(), 0);
    EXPECT_GT(j.at("peak_rss_mib").as_number(), 0);
  }
  expect_error(run_cli({"bench", "--model", "nonet", "--json"}), "nonet");
  expect_error(run_cli({"bench", "--model", "resnet18", "--iters", "0"}), "--iters");
}

// --precision bf16 (tensor/gemm_bf16.h): on a CPU with AVX512_BF16 the logits move by bf16
// rounding and bench says bf16; without it the command runs fp32 and says so on stderr.
TEST_F(EvalCli, PrecisionBf16RunsOrSaysWhyNot) {
  const bool bf16 = bf16_gemm_supported();
  const auto b = run_cli({"bench", "--model", "mobilenet_v2", "--width", "0.25", "--size", "32", "32", "--iters", "1",
                          "--warmup", "0", "--precision", "bf16", "--json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(Json::parse(b.out).at("precision").as_string(), bf16 ? "bf16" : "fp32");
  EXPECT_EQ(b.err.find("no AVX512_BF16") != std::string::npos, !bf16) << b.err;

  const Tensor x = randn({2, 3, 32, 32});
  save_npy(path("x.npy"), x);
  std::vector<std::vector<double>> logits;
  for (const char* precision : {"fp32", "bf16"}) {
    const std::string out = path(std::string("y_") + precision + ".npy");
    const auto r = run_cli({"predict", "--weights", weights(), "--input-npy", path("x.npy"), "--output-npy", out,
                            "--precision", precision});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    logits.push_back(load_npy(out).to_vector());
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  double deviation = 0, range = 0;
  for (size_t i = 0; i < logits[0].size(); ++i) {
    deviation = std::max(deviation, std::abs(logits[0][i] - logits[1][i]));
    range = std::max(range, std::abs(logits[0][i]));
  }
  if (bf16) EXPECT_GT(deviation, 0.0) << "--precision bf16 changed nothing";
  else EXPECT_EQ(deviation, 0.0);
  EXPECT_LT(deviation, 0.05 * range);

  expect_error(run_cli({"predict", "--weights", weights(), "--input-npy", path("x.npy"), "--output-npy",
                        path("y.npy"), "--precision", "fp16"}),
               "--precision");
  expect_error(run_cli({"bench", "--model", "resnet18", "--device", "cuda-emu", "--precision", "bf16", "--json"}),
               "--device cpu");
}

TEST(PrecisionFlag, FallsBackToFp32WithANoteWithoutBf16) {
  const cli::PrecisionChoice none = cli::choose_precision("bf16", Device::cpu(), /*cpu_has_bf16=*/false);
  EXPECT_EQ(none.precision, MatmulPrecision::fp32);
  EXPECT_NE(none.note.find("no AVX512_BF16"), std::string::npos) << none.note;
  const cli::PrecisionChoice has = cli::choose_precision("bf16", Device::cpu(), /*cpu_has_bf16=*/true);
  EXPECT_EQ(has.precision, MatmulPrecision::bf16);
  EXPECT_TRUE(has.note.empty());
  EXPECT_EQ(cli::choose_precision("fp32", Device::cpu(), true).precision, MatmulPrecision::fp32);
  EXPECT_THROW(cli::choose_precision("bf16", parse_device("cuda-emu"), true), Error);
  EXPECT_THROW(cli::choose_precision("half", Device::cpu(), true), Error);
}

// A copy of the data with two unreadable images: one truncated after its header, one empty.
// eval leaves both out and names both on stderr (the empty one when reading the folder, the
// truncated one in metrics.json "skipped" too), as training does; data stats counts both.
std::string data_with_unreadable_images(const fs::path& root, const std::string& source) {
  const fs::path dir = root / "data_unreadable";
  fs::remove_all(dir);
  fs::copy(source, dir, fs::copy_options::recursive);
  const std::string png = slurp(dir / "tumor" / "0.png");
  std::ofstream(dir / "tumor" / "truncated.png", std::ios::binary) << png.substr(0, png.size() / 2);
  std::ofstream(dir / "normal" / "empty.png", std::ios::binary);
  return dir.string();
}

TEST_F(EvalCli, EvalSkipsAndListsUnreadableImages) {
  const std::string data = data_with_unreadable_images(*root_, data_dir());
  const std::string out = path("report_unreadable");
  const auto r = run_cli({"eval", "--weights", weights(), "--data", data, "--report", out, "--size", "32", "32",
                          "--gallery", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name : {"truncated.png", "empty.png"}) {
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
  }
  const Json m = Json::parse(slurp(fs::path(out) / "metrics.json"));
  ASSERT_EQ(m.at("skipped").size(), 1u);
  EXPECT_NE(m.at("skipped")[0].as_string().find("truncated.png"), std::string::npos) << m.at("skipped").dump();
  EXPECT_EQ(m.at("samples").as_int(), 12);
}

TEST_F(EvalCli, DataStatsCountsEveryUnreadableImage) {
  const std::string data = data_with_unreadable_images(*root_, data_dir());
  const auto r = run_cli({"data", "stats", data, "--no-duplicates"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("unreadable: 2 "), std::string::npos) << r.out;
}

TEST_F(EvalCli, DataStats) {
  const auto r = run_cli({"data", "stats", data_dir(), "--no-duplicates"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tumor"), std::string::npos) << r.out;
  expect_error(run_cli({"data", "stats", path("absent")}), "absent");
  expect_error(run_cli({"data", "nope"}), "nope");
}

}  // namespace
}  // namespace scalpel
