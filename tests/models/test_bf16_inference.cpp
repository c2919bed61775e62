// The accuracy gate of `--precision bf16` (tensor/gemm_bf16.h): the same eval-mode forward in
// fp32 and with every float GEMM in bf16, on the real images of ../shared/samples, for the
// real MobileNet V1 x0.25 checkpoint and for a torchvision-layout resnet18 with seeded random
// weights (its Winograd and im2col convs and linear head all run in bf16). The top-1 class
// must agree wherever fp32's top-1 wins by more than the bf16 deviation could move it, and
// the largest logit deviation stays small against the logits' range; both are reported as
// test properties (docs/performance.md quotes them). Skips without AVX512_BF16 or samples.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "data/preprocess.h"
#include "models/fuse.h"
#include "models/registry.h"
#include "models/weights.h"
#include "tensor/gemm_bf16.h"
#include "tensor/io/torch_load.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel::models {
namespace {

namespace fs = std::filesystem;

// Every image of the samples (the photos and the medical ones), sorted.
std::vector<std::string> sample_images(const fs::path& samples) {
  std::vector<std::string> paths;
  for (const fs::path dir : {samples / "images", samples / "medical"}) {
    if (!fs::exists(dir)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      const std::string ext = entry.path().extension().string();
      if (entry.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".bmp")) paths.push_back(entry.path());
    }
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// The images as one batch: short side 256, centre crop 224, ImageNet normalization.
Tensor batch_of(const std::vector<std::string>& paths) {
  data::Preprocess p;
  p.fit = data::Fit::crop;
  p.norm = data::normalization_preset("imagenet");
  std::vector<Tensor> images;
  for (const std::string& path : paths) images.push_back(data::preprocess_file(path, p));
  return concat(images, 0);
}

struct Comparison {
  int64_t images = 0, agree = 0, decided = 0;  // decided: fp32's margin above twice the deviation
  double max_abs_dev = 0, logit_range = 0;
};

// The forward in fp32 and in bf16 (then fp32 again: the switch is process-wide).
Comparison compare(nn::Module& model, const Tensor& x) {
  NoGradGuard no_grad;
  const std::vector<double> fp32 = model(x).contiguous().to_vector();
  set_float32_matmul_precision(MatmulPrecision::bf16);
  const std::vector<double> bf16 = model(x).contiguous().to_vector();
  set_float32_matmul_precision(MatmulPrecision::fp32);
  Comparison c;
  c.images = x.size(0);
  const int64_t classes = static_cast<int64_t>(fp32.size()) / c.images;
  for (int64_t n = 0; n < c.images; ++n) {
    const double* f = fp32.data() + n * classes;
    const double* b = bf16.data() + n * classes;
    double dev = 0;
    for (int64_t k = 0; k < classes; ++k) dev = std::max(dev, std::fabs(f[k] - b[k]));
    c.max_abs_dev = std::max(c.max_abs_dev, dev);
    const auto [lo, hi] = std::minmax_element(f, f + classes);
    c.logit_range = std::max(c.logit_range, *hi - *lo);
    const int64_t top_f = std::max_element(f, f + classes) - f, top_b = std::max_element(b, b + classes) - b;
    double second = -1e300;
    for (int64_t k = 0; k < classes; ++k)
      if (k != top_f) second = std::max(second, f[k]);
    const bool decided = f[top_f] - second > 2 * dev;  // no deviation of this size could swap them
    c.decided += decided;
    c.agree += top_f == top_b;
    if (decided) EXPECT_EQ(top_f, top_b) << "image " << n << ": fp32 margin " << f[top_f] - second;
  }
  return c;
}

void report(const std::string& what, const Comparison& c) {
  const std::string line = fmt::format("{}: top-1 agrees on {}/{} images ({} decided), max |logit fp32 - bf16| {:.4g} "
                                       "(logit range {:.4g}, {:.2g} of it)",
                                       what, c.agree, c.images, c.decided, c.max_abs_dev, c.logit_range,
                                       c.max_abs_dev / c.logit_range);
  std::printf("%s\n", line.c_str());
  testing::Test::RecordProperty(what, line);
}

class Bf16Inference : public testing::Test {
 protected:
  void SetUp() override {
    if (!bf16_gemm_supported()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
    paths_ = sample_images(SCALPEL_SAMPLES);
    if (paths_.empty()) GTEST_SKIP() << "shared samples absent (" << SCALPEL_SAMPLES << ")";
  }
  void TearDown() override { set_float32_matmul_precision(MatmulPrecision::fp32); }
  std::vector<std::string> paths_;
};

TEST_F(Bf16Inference, RealMobileNetV1AgreesWithFp32) {
  const fs::path weights = fs::path(SCALPEL_SAMPLES) / "weights" / "pytorch" / "mobilenetV1X0.25_pretrain.tar";
  if (!fs::exists(weights)) GTEST_SKIP() << weights << " absent";
  ModelOptions o;
  o.width = 0.25;
  o.padding = "torch";
  o.activation = "leaky_relu:0.1";
  auto model = create_model("mobilenet_v1", o);
  load_weights(*model, load_torch(weights.string()), weights.string());
  model->eval();
  const Tensor x = batch_of(paths_);
  fuse_for_inference(*model, {1, 3, 224, 224});
  const Comparison c = compare(*model, x);
  report("mobilenet_v1_0.25", c);
  EXPECT_EQ(c.agree, c.images);
  EXPECT_LT(c.max_abs_dev, 0.05 * c.logit_range);
}

TEST_F(Bf16Inference, RandomResnet18AgreesWithFp32) {
  manual_seed(21);
  auto model = create_model("resnet18", ModelOptions{});
  model->eval();
  const Tensor x = batch_of(paths_);
  fuse_for_inference(*model, {1, 3, 224, 224});
  const Comparison c = compare(*model, x);
  report("resnet18_random", c);
  EXPECT_GT(c.decided, 0);
  EXPECT_LT(c.max_abs_dev, 0.05 * c.logit_range);
}

}  // namespace
}  // namespace scalpel::models
