// Test-time augmentation of report::evaluate (apps/report/evaluate.h): a mirror-blind model
// gives the same probabilities with and without flips; otherwise the probabilities are the
// mean of the manual passes over the mirrored / cropped images; --group-tta averages groups.
#include <gtest/gtest.h>

#include <filesystem>

#include <fmt/format.h>

#include "apps/report/evaluate.h"
#include "autograd/autograd.h"
#include "data/image.h"
#include "data/transforms.h"
#include "layers/functional.h"
#include "layers/modules.h"
#include "tensor/random.h"

namespace scalpel::report {
namespace {

namespace fs = std::filesystem;

// logits = fc(mean of each channel over the image, or over its top-left quarter only): the
// first is blind to mirroring by construction, the second sees every mirror and crop differently.
class ChannelMeans : public models::Model {
 public:
  explicit ChannelMeans(bool top_left_quarter)
      : Model("ChannelMeans", "channel_means", two_classes()), top_left_quarter_(top_left_quarter) {
    pool_ = register_module("pool", std::make_shared<nn::GlobalAvgPool>());
    fc_ = register_module("fc", std::make_shared<nn::Linear>(3, 2));
    set_layout("fc", "pool", 3, 1);
  }
  Tensor forward_head(const Tensor& features) override { return (*fc_)((*pool_)(features)); }

 protected:
  Tensor features(const Tensor& x) override {
    if (!top_left_quarter_) return x;
    return x.slice(2, 0, x.shape()[2] / 2).slice(3, 0, x.shape()[3] / 2).contiguous();
  }

 private:
  bool top_left_quarter_;
  static models::ModelOptions two_classes() {
    models::ModelOptions o;
    o.classes = 2;
    return o;
  }
  std::shared_ptr<nn::GlobalAvgPool> pool_;
  std::shared_ptr<nn::Linear> fc_;
};

class TtaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("scalpel-tta-{}-{}",
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                                    getpid());
    fs::create_directories(root_);
    // Noise images: nothing in them is symmetric.
    Generator g(7);
    dataset_.root = root_.string();
    dataset_.classes = {"a", "b"};
    for (int i = 0; i < 5; ++i) {
      data::Image image(32, 32, 3);
      for (auto& v : image.pixels) v = static_cast<uint8_t>(g.below(256));
      const std::string path = (root_ / fmt::format("{}.png", i)).string();
      data::save_image(path, image);
      dataset_.samples.push_back({.path = path, .label = i % 2});
    }
    p_.width = p_.height = 32;
    p_.fit = data::Fit::stretch;
    p_.norm = data::normalization_preset("imagenet");
  }
  void TearDown() override { fs::remove_all(root_); }

  // softmax(model(x)) of one preprocessed image, in evaluation mode.
  static std::vector<double> probs_of(models::Model& model, const Tensor& x) {
    NoGradGuard no_grad;
    model.eval();
    return nn::softmax(model(x), 1).to(DType::F64).to_vector();
  }
  static std::vector<double> mean_of(const std::vector<std::vector<double>>& rows) {
    std::vector<double> mean(rows.front().size(), 0.0);
    for (const auto& row : rows)
      for (size_t c = 0; c < mean.size(); ++c) mean[c] += row[c] / static_cast<double>(rows.size());
    return mean;
  }
  static void expect_near(const std::vector<double>& a, const std::vector<double>& b, double tolerance,
                          const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tolerance) << what << " [" << i << "]";
  }

  fs::path root_;
  data::Dataset dataset_;
  data::Preprocess p_;
};

TEST_F(TtaTest, MirrorBlindModelGivesTheSameProbabilities) {
  manual_seed(1);
  ChannelMeans model(false);
  const EvalResult plain = evaluate(model, dataset_, p_);
  for (Tta tta : {Tta::flip, Tta::flip4}) {
    const EvalResult r = evaluate(model, dataset_, p_, {.tta = tta});
    for (size_t i = 0; i < plain.probs.size(); ++i) expect_near(r.probs[i], plain.probs[i], 1e-6, tta_name(tta));
    EXPECT_EQ(r.preds, plain.preds);
  }
}

TEST_F(TtaTest, ProbabilitiesAreTheMeanOfTheManualPasses) {
  manual_seed(2);
  auto model = std::make_shared<ChannelMeans>(true);
  const EvalResult plain = evaluate(*model, dataset_, p_, {.batch = 2});
  const EvalResult flip = evaluate(*model, dataset_, p_, {.batch = 2, .tta = Tta::flip});
  const EvalResult flip4 = evaluate(*model, dataset_, p_, {.batch = 2, .tta = Tta::flip4});
  const EvalResult crops = evaluate(*model, dataset_, p_, {.batch = 2, .tta = Tta::crops});
  data::Preprocess larger = p_;
  larger.width = larger.height = 37;  // 32 * 8 / 7, rounded
  for (size_t i = 0; i < dataset_.samples.size(); ++i) {
    const data::Image image = data::load_image(dataset_.samples[i].path);
    const auto original = probs_of(*model, data::preprocess(image, p_));
    const auto mirrored = probs_of(*model, data::preprocess(data::hflip(image), p_));
    const auto upside_down = probs_of(*model, data::preprocess(data::vflip(image), p_));
    const auto both = probs_of(*model, data::preprocess(data::vflip(data::hflip(image)), p_));
    expect_near(flip.probs[i], mean_of({original, mirrored}), 1e-6, "flip");
    expect_near(flip4.probs[i], mean_of({original, mirrored, upside_down, both}), 1e-6, "flip4");
    EXPECT_GT(std::abs(flip.probs[i][0] - plain.probs[i][0]), 1e-6) << "the model is not mirror-blind";

    const Tensor big = data::preprocess(image, larger);
    std::vector<std::vector<double>> corners_and_centre;
    for (const auto& [top, left] : std::vector<std::pair<int, int>>{{0, 0}, {0, 5}, {5, 0}, {5, 5}, {2, 2}})
      corners_and_centre.push_back(probs_of(*model, big.slice(2, top, top + 32).slice(3, left, left + 32).contiguous()));
    expect_near(crops.probs[i], mean_of(corners_and_centre), 1e-6, "crops");
  }
}

TEST_F(TtaTest, GroupTtaAveragesTheGroupsMembers) {
  manual_seed(3);
  auto model = std::make_shared<ChannelMeans>(true);
  dataset_.samples[0].group = dataset_.samples[3].group = "lesion_1";
  dataset_.samples[1].group = dataset_.samples[2].group = "lesion_2";
  const EvalResult single = evaluate(*model, dataset_, p_);
  const EvalResult grouped = evaluate(*model, dataset_, p_, {.group_tta = true});
  const auto lesion_1 = mean_of({single.probs[0], single.probs[3]});
  const auto lesion_2 = mean_of({single.probs[1], single.probs[2]});
  expect_near(grouped.probs[0], lesion_1, 1e-12, "lesion_1");
  expect_near(grouped.probs[3], lesion_1, 1e-12, "lesion_1");
  expect_near(grouped.probs[1], lesion_2, 1e-12, "lesion_2");
  expect_near(grouped.probs[2], lesion_2, 1e-12, "lesion_2");
  expect_near(grouped.probs[4], single.probs[4], 0, "no group");
  for (size_t i = 0; i < grouped.probs.size(); ++i)
    EXPECT_EQ(grouped.preds[i], grouped.probs[i][1] > grouped.probs[i][0] ? 1 : 0) << i;
}

TEST(Tta, NamesRoundTripAndUnknownNamesAreErrors) {
  for (Tta tta : {Tta::none, Tta::flip, Tta::flip4, Tta::crops}) EXPECT_EQ(parse_tta(tta_name(tta)), tta);
  try {
    parse_tta("rotate");
    ADD_FAILURE() << "no error for --tta rotate";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--tta: unknown test-time augmentation 'rotate'"), std::string::npos);
  }
}

}  // namespace
}  // namespace scalpel::report
