// The weights-related commands through the binary, as a user runs them (tests/support/cli_runner.h):
//  - logits parity with torchvision (resnet18, resnet50, mobilenet_v2, efficientnet_b0, vgg16;
//    random weights and BatchNorm statistics; zip and legacy torch.save files) through
//    `scalpel predict --input-npy --output-npy`: within 1e-4 of max |logit|, same argmax.
//    Needs /usr/bin/python3 with torch (skips otherwise); files cached in
//    $SCALPEL_WEIGHTS_FIXTURES (default /tmp/scalpel-weights-fixtures).
//  - our checkpoint back into PyTorch: `convert`, then the fixture script parses the
//    safetensors bytes and load_state_dict(strict=True)s them into torchvision.
//  - the real MobileNet V1 x0.25 checkpoint ranks a cat class first on chelsea.png, and a
//    grayscale chest X-ray runs through the same path (skip without ../shared/samples).
//  - errors: `error:` on stderr, exit 1, nothing written: missing/truncated files, NaN weights,
//    wrong model/weights pair, strictness lists, bad flags; head replacement and
//    --weights-map order messages; summary totals and the models list.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/image.h"
#include "models/registry.h"
#include "support/cli_runner.h"
#include "support/hostile_inputs.h"
#include "tensor/io/safetensors.h"
#include "tensor/json.h"
#include "tensor/npy.h"
#include "tensor/random.h"

namespace scalpel::test {
namespace {

namespace fs = std::filesystem;

constexpr double kRelativeTolerance = 1e-4;
const fs::path kRepo = fs::path(SCALPEL_FIXTURES).parent_path().parent_path();
const fs::path kSamples = SCALPEL_SAMPLES;

bool torch_available() {
  static const bool available =
      std::system("/usr/bin/python3 -c 'import torch, torchvision' > /dev/null 2>&1") == 0;
  return available;
}

fs::path fixture_root() {
  const char* env = std::getenv("SCALPEL_WEIGHTS_FIXTURES");
  return env && *env ? fs::path(env) : fs::path("/tmp/scalpel-weights-fixtures");
}

// The folder of `model` written by scripts/make_weights_fixtures.py (cached between runs).
fs::path model_fixture(const std::string& model) {
  const fs::path dir = fixture_root() / model;
  if (fs::exists(dir / "meta.json") && fs::exists(dir / "weights_legacy.pt")) return dir;
  const CliResult r = run_cli({(kRepo / "scripts" / "make_weights_fixtures.py").string(), "models", "--model-dir",
                               fixture_root().string(), "--models", model},
                              "/usr/bin/python3");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return dir;
}

// A per-test scratch folder, removed at the end.
class Scratch {
 public:
  Scratch() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("scalpel-cli-{}-{}-{}", getpid(), info->test_suite_name(), info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  std::string operator/(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

double relative_error(const Tensor& ours, const Tensor& ref) {
  const auto a = ours.to_vector(), b = ref.to_vector();
  double err = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

std::vector<int64_t> argmax_rows(const Tensor& t) {
  const auto v = t.to_vector();
  const int64_t n = t.shape()[0], c = t.shape()[1];
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(std::max_element(v.begin() + i * c, v.begin() + (i + 1) * c) - (v.begin() + i * c));
  return out;
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void expect_error(const CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.first_err_line().find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

// ---------------------------------------------------------------- torchvision parity

class TorchvisionParity : public testing::TestWithParam<std::string> {};

TEST_P(TorchvisionParity, PredictMatchesTorchForZipAndLegacyFiles) {
  const std::string model = GetParam();
  if (!torch_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch and torchvision: no " << model << " fixture";
  const fs::path dir = model_fixture(model);
  ASSERT_TRUE(fs::exists(dir / "weights_legacy.pt")) << "fixture script did not write " << dir;
  const Tensor ref = load_npy((dir / "logits.npy").string());
  Scratch scratch;
  for (const std::string file : {"weights.pt", "weights_legacy.pt"}) {
    const std::string out = scratch / "logits.npy";
    const CliResult r = run_cli({"predict", "--model", model, "--weights", (dir / file).string(), "--input-npy",
                                 (dir / "input.npy").string(), "--output-npy", out});
    ASSERT_EQ(r.exit_code, 0) << file << ": " << r.err;
    const Tensor ours = load_npy(out);
    ASSERT_EQ(ours.shape(), ref.shape()) << file;
    const double err = relative_error(ours, ref);
    EXPECT_LT(err, kRelativeTolerance) << model << " " << file;
    EXPECT_EQ(argmax_rows(ours), argmax_rows(ref)) << model << " " << file;
    RecordProperty(file == "weights.pt" ? "relative_error_zip" : "relative_error_legacy", fmt::format("{:.3g}", err));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TorchvisionParity,
                         testing::Values("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "vgg16"),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(Checkpoint, ConvertedFileLoadsStrictlyIntoPyTorch) {
  if (!torch_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch and torchvision";
  const fs::path dir = model_fixture("resnet18");
  Scratch scratch;
  const std::string ckpt = scratch / "resnet18.safetensors", out = scratch / "logits.npy";
  CliResult r = run_cli({"convert", "--model", "resnet18", "--weights", (dir / "weights.pt").string(), "--out", ckpt});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Our own checkpoint needs neither --model nor --classes.
  r = run_cli({"predict", "--weights", ckpt, "--input-npy", (dir / "input.npy").string(), "--output-npy", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(relative_error(load_npy(out), load_npy((dir / "logits.npy").string())), kRelativeTolerance);
  r = run_cli({(kRepo / "scripts" / "make_weights_fixtures.py").string(), "roundtrip", "--checkpoint", ckpt, "--model",
               "resnet18", "--input", (dir / "input.npy").string(), "--logits", out},
              "/usr/bin/python3");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("loaded strictly"), std::string::npos) << r.out;
}

// ---------------------------------------------------------------- the real checkpoint

std::vector<std::string> real_mobilenet_flags() {
  return {"--model", "mobilenet_v1", "--width", "0.25", "--activation", "leaky_relu:0.1", "--padding", "torch",
          "--weights", (kSamples / "weights" / "pytorch" / "mobilenetV1X0.25_pretrain.tar").string()};
}

TEST(RealCheckpoint, MobileNetV1RanksACatFirst) {
  const fs::path image = kSamples / "images" / "chelsea.png";
  if (!fs::exists(image) || !fs::exists(real_mobilenet_flags().back()))
    GTEST_SKIP() << "shared samples absent (" << kSamples << ")";
  const CliResult r = run_cli(cat(cat({"predict"}, real_mobilenet_flags()),
                                  {"--image", image.string(), "--labels",
                                   (kSamples / "labels" / "imagenet_1000.txt").string(), "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = Json::parse(r.out, "predict --json");
  ASSERT_EQ(j.size(), 1u);
  const Json& prediction = j.at("predictions").at(0);
  EXPECT_EQ(prediction.at("image").as_string(), image.string());
  const Json& top = prediction.at("top");
  ASSERT_EQ(top.size(), 5u);
  const int64_t first = top.at(0).at("index").as_int();
  EXPECT_TRUE(first == 281 || first == 282 || first == 285) << r.out;
  double previous = 1;
  for (const Json& t : top.as_array()) {
    EXPECT_EQ(t.size(), 3u);  // index, class, p
    EXPECT_LE(t.at("p").as_number(), previous);
    previous = t.at("p").as_number();
    std::printf("  %3lld  %.4f  %s\n", static_cast<long long>(t.at("index").as_int()), t.at("p").as_number(),
                t.at("class").as_string().c_str());
  }
  EXPECT_EQ(top.at(0).at("class").as_string().find("cat") != std::string::npos, true) << r.out;
}

TEST(RealCheckpoint, GrayscaleXrayIsReplicatedToRgb) {
  const fs::path xray = kSamples / "medical" / "chest-xray" / "00000001_000.png";
  if (!fs::exists(xray) || !fs::exists(real_mobilenet_flags().back()))
    GTEST_SKIP() << "shared samples absent (" << kSamples << ")";
  const CliResult r = run_cli(cat(cat({"predict"}, real_mobilenet_flags()), {"--image", xray.string(), "--topk", "3"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(xray.string() + "\n", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 4) << r.out;  // the path and 3 classes
}

// ---------------------------------------------------------------- files we make here

// A small model (mobilenet_v1 x0.25, torch padding) with random weights, as a state dict.
const std::vector<std::string> kSmall = {"--model", "mobilenet_v1", "--width", "0.25", "--padding", "torch"};

NamedTensors small_state(int64_t classes = 1000) {
  models::ModelOptions o;
  o.width = 0.25;
  o.padding = "torch";
  o.classes = classes;
  manual_seed(5);
  auto model = models::create_model("mobilenet_v1", o);
  NamedTensors out;
  for (const auto& nt : model->state_dict()) out.push_back({nt.name, nt.tensor});
  return out;
}

std::string small_input(const Scratch& scratch) {
  Generator g(11);
  const std::string path = scratch / "x.npy";
  save_npy(path, randn({2, 3, 64, 80}, g));
  return path;
}

TEST(Predict, OwnSafetensorsAndCheckpointGiveTheSameLogits) {
  Scratch scratch;
  const std::string weights = scratch / "w.safetensors", ckpt = scratch / "ck.safetensors", x = small_input(scratch);
  save_safetensors(weights, small_state());
  CliResult r = run_cli(
      cat(cat({"predict"}, kSmall), {"--weights", weights, "--input-npy", x, "--output-npy", scratch / "a.npy"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli(cat(cat({"convert"}, kSmall), {"--weights", weights, "--out", ckpt}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"predict", "--weights", ckpt, "--input-npy", x, "--output-npy", scratch / "b.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // float64 weights are converted to float32 on load.
  NamedTensors wide = small_state();
  for (auto& [name, t] : wide)
    if (t.dtype() == DType::F32) t = t.to(DType::F64);
  save_safetensors(scratch / "w64.safetensors", wide);
  r = run_cli(cat(cat({"predict"}, kSmall),
                  {"--weights", scratch / "w64.safetensors", "--input-npy", x, "--output-npy", scratch / "d.npy"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Tensor a = load_npy(scratch / "a.npy"), b = load_npy(scratch / "b.npy");
  EXPECT_EQ(a.shape(), (Shape{2, 1000}));
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_EQ(a.to_vector(), load_npy(scratch / "d.npy").to_vector());
  // --model must agree with the checkpoint's.
  expect_error(run_cli({"predict", "--model", "resnet18", "--weights", ckpt, "--input-npy", x, "--output-npy",
                        scratch / "c.npy"}),
               "holds a mobilenet_v1");
}

TEST(Predict, ImagesUseTheCheckpointsClassNames) {
  Scratch scratch;
  const std::string weights = scratch / "w.safetensors", ckpt = scratch / "ck.safetensors",
                    labels = scratch / "labels.txt", rgb = scratch / "rgb.png", gray = scratch / "gray.png";
  save_safetensors(weights, small_state(3));
  std::ofstream(labels) << "normal\npneumonia\ncovid\n";
  Generator g(2);
  data::Image color(90, 70, 3), mono(50, 60, 1);
  for (auto& v : color.pixels) v = static_cast<uint8_t>(g.below(256));
  for (auto& v : mono.pixels) v = static_cast<uint8_t>(g.below(256));
  data::save_image(rgb, color);
  data::save_image(gray, mono);
  CliResult r = run_cli(cat(cat({"convert"}, kSmall), {"--classes", "3", "--weights", weights, "--labels", labels,
                                                       "--out", ckpt}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"predict", "--weights", ckpt, "--image", rgb, gray, "--topk", "9", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = Json::parse(r.out, "predict --json");
  ASSERT_EQ(j.at("predictions").size(), 2u);
  EXPECT_EQ(j.at("predictions").at(1).at("image").as_string(), gray);
  for (const Json& prediction : j.at("predictions").as_array()) {
    const Json& top = prediction.at("top");
    ASSERT_EQ(top.size(), 3u);  // --topk is capped at the class count
    std::set<std::string> names;
    double total = 0;
    for (const Json& t : top.as_array()) {
      names.insert(t.at("class").as_string());
      total += t.at("p").as_number();
    }
    EXPECT_EQ(names, (std::set<std::string>{"normal", "pneumonia", "covid"}));
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  const std::string two = scratch / "two.txt";
  std::ofstream(two) << "normal\nabnormal\n";
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", rgb, "--labels", two}), "2 names for a model with 3 classes");
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", scratch / "absent.png"}), "absent.png");
}

// A 3-class checkpoint of the small model for the --image tests.
std::string small_checkpoint(const Scratch& scratch) {
  const std::string weights = scratch / "w.safetensors", ckpt = scratch / "ck.safetensors";
  save_safetensors(weights, small_state(3));
  const CliResult r = run_cli(cat(cat({"convert"}, kSmall), {"--classes", "3", "--weights", weights, "--out", ckpt}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return ckpt;
}

std::vector<std::string> predicted_images(const CliResult& r) {
  std::vector<std::string> images;
  if (r.exit_code != 0) return images;
  const Json out = Json::parse(r.out, "predict --json");
  for (const Json& p : out.at("predictions").as_array()) images.push_back(p.at("image").as_string());
  return images;
}

TEST(Predict, FoldersAndCsvListsOfImages) {
  Scratch scratch;
  const std::string ckpt = small_checkpoint(scratch), dir = scratch / "images";
  fs::create_directories(fs::path(dir) / "sub");
  fs::create_directories(fs::path(dir) / ".cache");
  Generator g(3);
  data::Image image(40, 30, 3);
  for (auto& v : image.pixels) v = static_cast<uint8_t>(g.below(256));
  for (const char* name : {"b.png", "a.jpg", "sub/c.bmp", ".hidden.png", ".cache/d.png"})
    data::save_image((fs::path(dir) / name).string(), image);
  std::ofstream(fs::path(dir) / "notes.txt") << "not an image";

  // A folder: its images and those of its subfolders, sorted; hidden files and others left out.
  CliResult r = run_cli({"predict", "--weights", ckpt, "--image", dir, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> sorted = {dir + "/a.jpg", dir + "/b.png", dir + "/sub/c.bmp"};
  EXPECT_EQ(predicted_images(r), sorted);

  // A CSV: the `path` column in file order (as split.csv and predictions.csv have it), mixed
  // with plain files.
  const std::string list = scratch / "list.csv";
  std::ofstream(list) << "label,path\nx," << dir << "/sub/c.bmp\ny,\"" << dir << "/a.jpg\"\n";
  r = run_cli({"predict", "--weights", ckpt, "--image", list, dir + "/b.png", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(predicted_images(r), (std::vector<std::string>{dir + "/sub/c.bmp", dir + "/a.jpg", dir + "/b.png"}));

  const std::string no_column = scratch / "nocolumn.csv", empty_list = scratch / "empty.csv",
                    empty_dir = scratch / "nothing";
  std::ofstream(no_column) << "file\n" << dir << "/a.jpg\n";
  std::ofstream(empty_list) << "path\n";
  fs::create_directories(empty_dir);
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", no_column}), "no 'path' column");
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", empty_list}), "empty.csv");
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", empty_dir}), "no image files");
  const CliResult help = run_cli({"predict", "--help"});
  EXPECT_NE(help.out.find("'path' column"), std::string::npos) << help.out;
}

TEST(Predict, RefusesFifosAndDevicesAtOnce) {
  // Before, a FIFO blocked predict until a writer came and /dev/zero was read until memory
  // ran out: only regular files are read.
  Scratch scratch;
  const std::string ckpt = small_checkpoint(scratch);
  {
    test::FifoTrap fifo(scratch / "pipe.png", std::chrono::seconds(10));
    const CliResult r = run_cli({"predict", "--weights", ckpt, "--image", fifo.path()});
    ASSERT_FALSE(fifo.released_a_reader()) << "predict blocked on a FIFO; then: " << r.err;
    expect_error(r, fifo.path() + ": not a regular file (a FIFO)");
  }
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", "/dev/zero"}),
               "/dev/zero: not a regular file (a character device)");
  {
    test::FifoTrap fifo(scratch / "labels.txt", std::chrono::seconds(10));
    const CliResult r = run_cli({"predict", "--weights", ckpt, "--image", scratch / "w.safetensors", "--labels",
                                 fifo.path()});
    ASSERT_FALSE(fifo.released_a_reader()) << "--labels blocked on a FIFO; then: " << r.err;
    expect_error(r, "not a regular file (a FIFO)");
  }
  {
    test::FifoTrap fifo(scratch / "weights.safetensors", std::chrono::seconds(10));
    const CliResult r = run_cli({"predict", "--weights", fifo.path(), "--image", "/dev/null"});
    ASSERT_FALSE(fifo.released_a_reader()) << "--weights blocked on a FIFO; then: " << r.err;
    expect_error(r, "not a regular file (a FIFO)");
  }
}

TEST(Predict, MaxPixelsRefusesDeclaredSizesAboveIt) {
  Scratch scratch;
  const std::string ckpt = small_checkpoint(scratch), bomb = scratch / "bomb.png", small = scratch / "small.png";
  std::ofstream(bomb, std::ios::binary) << test::png_declaring(20000, 20000);
  data::save_image(small, data::Image(40, 30, 3, 128));
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", bomb}),
               "image '" + bomb + "' declares 20000x20000 = 400000000 pixels, above the limit of 50000000");
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", small, "--max-pixels", "1199"}),
               "declares 40x30 = 1200 pixels, above the limit of 1199 (--max-pixels)");
  EXPECT_EQ(run_cli({"predict", "--weights", ckpt, "--image", small, "--max-pixels", "1200"}).exit_code, 0);
  expect_error(run_cli({"predict", "--weights", ckpt, "--image", small, "--max-pixels", "-3"}), "--max-pixels");
}

// Outside training a replaced head would be a random classifier: refused (train replaces it).
TEST(Predict, OtherClassCountIsAnErrorOutsideTraining) {
  Scratch scratch;
  const std::string weights = scratch / "w.safetensors", x = small_input(scratch), out = scratch / "y.npy";
  save_safetensors(weights, small_state(1000));
  const CliResult r = run_cli(cat({"predict"}, cat(kSmall, {"--classes", "4", "--weights", weights, "--input-npy", x,
                                                            "--output-npy", out})));
  expect_error(r, "--classes 4: " + weights + " has a 1000-class head; only train replaces a head");
  EXPECT_FALSE(fs::exists(out));
}

TEST(Predict, WeightsMapOrderLoadsRenamedTensorsAndPrintsTheMapping) {
  Scratch scratch;
  const std::string named = scratch / "named.safetensors", renamed = scratch / "renamed.safetensors",
                    x = small_input(scratch);
  NamedTensors state = small_state();
  save_safetensors(named, state);
  for (size_t i = 0; i < state.size(); ++i) state[i].first = fmt::format("layer_{}", i);
  save_safetensors(renamed, state);
  const auto base = cat({"predict"}, cat(kSmall, {"--input-npy", x}));
  expect_error(run_cli(cat(base, {"--weights", renamed, "--output-npy", scratch / "n.npy"})), "no name matches");
  EXPECT_FALSE(fs::exists(scratch / "n.npy"));
  CliResult r = run_cli(cat(base, {"--weights", renamed, "--weights-map", "order", "--output-npy", scratch / "o.npy"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("layer_0 -> stage1.0.0.weight"), std::string::npos) << r.err;
  r = run_cli(cat(base, {"--weights", named, "--output-npy", scratch / "r.npy"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_npy(scratch / "o.npy").to_vector(), load_npy(scratch / "r.npy").to_vector());
}

TEST(Predict, CudaEmuRunsOrSaysWhyNot) {
  Scratch scratch;
  const std::string weights = scratch / "w.safetensors", x = small_input(scratch);
  save_safetensors(weights, small_state());
  const auto base = cat({"predict"}, cat(kSmall, {"--weights", weights, "--input-npy", x}));
  ASSERT_EQ(run_cli(cat(base, {"--output-npy", scratch / "cpu.npy"})).exit_code, 0);
  const CliResult r = run_cli(cat(base, {"--device", "cuda-emu", "--output-npy", scratch / "emu.npy"}));
  if (r.exit_code == 0) {
    EXPECT_LT(relative_error(load_npy(scratch / "emu.npy"), load_npy(scratch / "cpu.npy")), kRelativeTolerance);
  } else {
    expect_error(r, "");
    EXPECT_FALSE(fs::exists(scratch / "emu.npy"));
  }
}

// ---------------------------------------------------------------- errors

TEST(Errors, StrictnessListsMissingUnexpectedAndMismatchedKeys) {
  Scratch scratch;
  NamedTensors state = small_state();
  state.erase(state.begin());
  state.push_back({"extra.bias", Tensor::zeros({2})});
  for (auto& [name, t] : state)
    if (name == "stage3.1.3.weight") t = Tensor::zeros({256, 3, 1, 1});
  const std::string weights = scratch / "w.safetensors";
  save_safetensors(weights, state);
  const CliResult r = run_cli(cat({"predict"}, cat(kSmall, {"--weights", weights, "--input-npy", small_input(scratch),
                                                            "--output-npy", scratch / "y.npy"})));
  expect_error(r, weights);
  for (const std::string needle : {"1 missing key(s): stage1.0.0.weight", "1 unexpected key(s): extra.bias",
                                   "stage3.1.3.weight: model [256, 256, 1, 1], file [256, 3, 1, 1]"})
    EXPECT_NE(r.err.find(needle), std::string::npos) << needle << " in " << r.err;
  EXPECT_FALSE(fs::exists(scratch / "y.npy"));
}

TEST(Errors, WrongModelForTheWeights) {
  Scratch scratch;
  const std::string weights = scratch / "w.safetensors";
  save_safetensors(weights, small_state());
  const CliResult r = run_cli({"predict", "--model", "resnet18", "--weights", weights, "--input-npy",
                               small_input(scratch), "--output-npy", scratch / "y.npy"});
  expect_error(r, "does not fit resnet18");
  EXPECT_NE(r.err.find("missing key(s): conv1.weight"), std::string::npos) << r.err;
}

TEST(Errors, NaNWeightsNameTheTensor) {
  Scratch scratch;
  NamedTensors state = small_state();
  for (auto& [name, t] : state)
    if (name == "stage2.0.3.weight") {
      t = t.clone();
      t.data<float>()[5] = std::nanf("");
    }
  const std::string weights = scratch / "nan.safetensors";
  save_safetensors(weights, state);
  expect_error(run_cli(cat({"predict"}, cat(kSmall, {"--weights", weights, "--input-npy", small_input(scratch),
                                                     "--output-npy", scratch / "y.npy"}))),
               "stage2.0.3.weight");
}

TEST(Errors, MissingTruncatedAndUnknownFiles) {
  Scratch scratch;
  const std::string x = small_input(scratch), y = scratch / "y.npy";
  const auto base = cat({"predict"}, cat(kSmall, {"--input-npy", x, "--output-npy", y}));
  expect_error(run_cli(cat(base, {"--weights", scratch / "absent.pt"})), "absent.pt");

  const std::string whole = scratch / "w.safetensors", cut = scratch / "cut.safetensors";
  save_safetensors(whole, small_state());
  const std::string bytes = [&] {
    std::ifstream in(whole, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_error(run_cli(cat(base, {"--weights", cut})), "cut.safetensors");
  const std::string text = scratch / "notes.txt";
  std::ofstream(text) << "not weights at all";
  expect_error(run_cli(cat(base, {"--weights", text})), "notes.txt");
  expect_error(run_cli(cat(cat({"predict"}, kSmall), {"--weights", whole, "--input-npy", scratch / "absent.npy",
                                                      "--output-npy", y})),
               "absent.npy");
  EXPECT_FALSE(fs::exists(y));
  // The output folder does not exist: error, no partial file anywhere.
  expect_error(run_cli(cat(cat({"predict"}, kSmall), {"--weights", whole, "--input-npy", x, "--output-npy",
                                                      scratch / "no/such/dir/y.npy"})),
               "no/such/dir");
}

TEST(Errors, FlagsAndShapes) {
  Scratch scratch;
  const std::string weights = scratch / "w.safetensors";
  save_safetensors(weights, small_state());
  expect_error(run_cli({"predict", "--bogus", "1"}), "--bogus");
  expect_error(run_cli({"predict", "--model", "resnet7", "--weights", weights, "--input-npy", "x", "--output-npy", "y"}),
               "resnet7");
  expect_error(run_cli(cat(cat({"predict"}, kSmall), {"--weights", weights})), "--input-npy or --image");
  expect_error(run_cli(cat(cat({"predict"}, kSmall), {"--input-npy", "x.npy", "--output-npy", "y.npy"})), "--weights");
  expect_error(run_cli(cat(cat({"predict"}, kSmall), {"--weights", weights, "--weights-map", "shape", "--input-npy",
                                                      "x.npy", "--output-npy", "y.npy"})),
               "--weights-map");
  const std::string x3 = scratch / "x3.npy";
  save_npy(x3, Tensor::zeros({3, 64, 64}));
  expect_error(run_cli(cat(cat({"predict"}, kSmall), {"--weights", weights, "--input-npy", x3, "--output-npy",
                                                      scratch / "y.npy"})),
               "[3, 64, 64]");
  expect_error(run_cli({"convert", "--model", "mobilenet_v1", "--weights", weights}), "--out");
}

// ---------------------------------------------------------------- summary and models

std::string line_value(const std::string& out, const std::string& label) {
  const size_t at = out.find("\n" + label + ": ");
  if (at == std::string::npos) return "";
  const size_t begin = at + label.size() + 3;
  return out.substr(begin, out.find('\n', begin) - begin);
}

int64_t number(std::string text) {
  text.erase(std::remove(text.begin(), text.end(), ','), text.end());
  return std::stoll(text);
}

TEST(Summary, ResNet18Totals) {
  CliResult r = run_cli({"summary", "--model", "resnet18"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // torchvision resnet18: 11,689,512 parameters; 4,800 BatchNorm channels x (mean, var).
  EXPECT_EQ(line_value(r.out, "Total params"), "11,699,112") << r.out;
  EXPECT_EQ(line_value(r.out, "Trainable params"), "11,689,512");
  EXPECT_EQ(line_value(r.out, "Non-trainable params"), "9,600");
  const int64_t macs224 = number(line_value(r.out, "MACs"));
  EXPECT_NEAR(static_cast<double>(macs224), 1.81e9, 0.02e9);
  EXPECT_EQ(r.out.substr(r.out.rfind("\nMACs: ") + 1, 5), "MACs:");  // the last line

  r = run_cli({"summary", "--model", "resnet18", "--classes", "4", "--size", "112", "112"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(line_value(r.out, "Trainable params"), "11,178,564");  // fc 512x4 + 4 instead of 513,000
  EXPECT_LT(number(line_value(r.out, "MACs")), macs224 / 3);
  expect_error(run_cli({"summary", "--model", "resnet18", "--size", "a", "3"}), "--size");
  expect_error(run_cli({"summary", "--model", "vgg16", "--size", "8", "8"}), "vgg16");
}

TEST(Summary, NewModelsAndKerasNames) {
  // DenseNet201 and Xception by their Keras names; sizes small (the counts do not depend on them).
  CliResult r = run_cli({"summary", "--model", "DenseNet201", "--size", "29", "29"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("densenet201 (torchvision layout)", 0), 0u) << r.out;
  EXPECT_EQ(line_value(r.out, "Trainable params"), "20,013,928");
  EXPECT_EQ(line_value(r.out, "Non-trainable params"), "229,056");
  r = run_cli({"summary", "--model", "Xception", "--size", "71", "71"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(line_value(r.out, "Total params"), "22,910,480");  // Keras' Xception().summary()
  r = run_cli({"summary", "--model", "inception_v3", "--aux-logits", "false", "--size", "75", "75"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(line_value(r.out, "Trainable params"), "23,834,568");
  expect_error(run_cli({"summary", "--model", "densnet121"}), "did you mean 'densenet121'?");
  expect_error(run_cli({"summary", "--model", "inception_v3", "--aux-logits", "maybe"}), "--aux-logits");
  expect_error(run_cli({"summary", "--model", "resnet18", "--aux-logits", "true"}), "aux_logits");
}

TEST(Models, ListsEveryName) {
  const CliResult r = run_cli({"models"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string& name : models::model_names())
    EXPECT_NE(r.out.find("\n" + name + " "), std::string::npos) << name;
}

}  // namespace
}  // namespace scalpel::test
