// Metrics against scikit-learn on the same predictions (fixture: scripts/make_eval_fixtures.py).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "apps/report/metrics.h"
#include "tensor/error.h"

namespace scalpel::report {
namespace {

Json load_case() {
  std::ifstream in(std::string(SCALPEL_FIXTURES) + "/eval/metrics_case.json");
  std::stringstream s;
  s << in.rdbuf();
  return Json::parse(s.str(), "metrics_case.json");
}

std::vector<double> numbers(const Json& a) {
  std::vector<double> v;
  for (const Json& x : a.as_array()) v.push_back(x.as_number());
  return v;
}

TEST(Metrics, EqualScikitLearn) {
  const Json c = load_case();
  std::vector<std::string> classes;
  for (const Json& x : c.at("classes").as_array()) classes.push_back(x.as_string());
  std::vector<int64_t> labels;
  for (const Json& x : c.at("labels").as_array()) labels.push_back(x.as_int());
  std::vector<std::vector<double>> probs;
  for (const Json& row : c.at("probs").as_array()) probs.push_back(numbers(row));

  const Metrics m = compute_metrics(labels, probs, classes, {2, 3});
  const double tol = 1e-12;
  EXPECT_NEAR(m.accuracy, c.at("accuracy").as_number(), tol);
  EXPECT_NEAR(m.balanced_accuracy, c.at("balanced_accuracy").as_number(), tol);
  EXPECT_NEAR(m.macro_f1, c.at("macro_f1").as_number(), tol);
  EXPECT_NEAR(m.weighted_f1, c.at("weighted_f1").as_number(), tol);
  EXPECT_NEAR(m.macro_auc, c.at("macro_auc").as_number(), tol);
  for (size_t t = 0; t < classes.size(); ++t) {
    for (size_t p = 0; p < classes.size(); ++p)
      EXPECT_EQ(m.confusion[t][p], c.at("confusion_matrix")[t][p].as_int()) << t << "," << p;
    const ClassMetrics& k = m.per_class[t];
    EXPECT_NEAR(k.precision, c.at("precision")[t].as_number(), tol) << classes[t];
    EXPECT_NEAR(k.recall, c.at("recall")[t].as_number(), tol) << classes[t];
    EXPECT_NEAR(k.f1, c.at("f1")[t].as_number(), tol) << classes[t];
    EXPECT_NEAR(k.specificity, c.at("specificity")[t].as_number(), tol) << classes[t];
    EXPECT_NEAR(k.auc, c.at("auc")[t].as_number(), tol) << classes[t];
    EXPECT_EQ(k.support, c.at("support")[t].as_int()) << classes[t];
  }
  EXPECT_EQ(m.per_class[3].precision, 0.0);  // the never-predicted class: zero_division=0
  ASSERT_EQ(m.top_k.size(), 2u);
  EXPECT_NEAR(m.top_k[0].second, c.at("top_k_accuracy").at("2").as_number(), tol);
  EXPECT_NEAR(m.top_k[1].second, c.at("top_k_accuracy").at("3").as_number(), tol);

  const Json j = metrics_to_json(m);
  EXPECT_EQ(j.at("per_class").at("d").at("support").as_int(), c.at("support")[3].as_int());
}

TEST(Metrics, AucUndefinedForAbsentClassAndBadInputRefused) {
  const std::vector<std::vector<double>> probs = {{0.9, 0.1, 0}, {0.2, 0.8, 0}};
  const Metrics m = compute_metrics({0, 1}, probs, {"x", "y", "z"});
  EXPECT_TRUE(std::isnan(m.per_class[2].auc));
  EXPECT_TRUE(metrics_to_json(m).at("per_class").at("z").at("auc").is_null());
  EXPECT_NEAR(m.balanced_accuracy, 1.0, 0);  // the absent class does not count
  EXPECT_THROW(compute_metrics({0, 3}, probs, {"x", "y", "z"}), Error);
  EXPECT_THROW(compute_metrics({}, {}, {"x", "y"}), Error);
}

TEST(Metrics, RocCurveOfTiesIsDiagonal) {
  const RocCurve c = roc_curve({true, false, true, false}, {0.5, 0.5, 0.5, 0.5});
  ASSERT_EQ(c.fpr.size(), 2u);
  EXPECT_EQ(c.fpr[1], 1.0);
  EXPECT_EQ(c.tpr[1], 1.0);
  EXPECT_DOUBLE_EQ(roc_auc({true, false, true, false}, {0.5, 0.5, 0.5, 0.5}), 0.5);
}

}  // namespace
// The terminal table of `scalpel eval`: labels a a b b predicted a b b b. a: P 1, R 0.5,
// F1 2/3, specificity 1; b: P 2/3, R 1, F1 0.8, specificity 0.5; both AUCs 1; accuracy 0.75.
TEST(Metrics, ClassificationReportTable) {
  const Metrics m = compute_metrics({0, 0, 1, 1}, {{0.9, 0.1}, {0.4, 0.6}, {0.2, 0.8}, {0.3, 0.7}}, {"a", "b"});
  const std::string expected =
      "              precision     recall   f1-score  specificity        auc    support\n"
      "\n"
      "           a     1.0000     0.5000     0.6667       1.0000     1.0000          2\n"
      "           b     0.6667     1.0000     0.8000       0.5000     1.0000          2\n"
      "\n"
      "    accuracy                           0.7500                                  4\n"
      "   macro avg     0.8333     0.7500     0.7333       0.7500     1.0000          4\n"
      "weighted avg     0.8333     0.7500     0.7333       0.7500     1.0000          4\n";
  EXPECT_EQ(classification_report(m), expected);
  // An absent class has no AUC: "n/a", left out of the AUC averages.
  const Metrics absent = compute_metrics({0, 0}, {{0.9, 0.1}, {0.6, 0.4}}, {"a", "b"});
  EXPECT_NE(classification_report(absent).find("n/a"), std::string::npos);
}

}  // namespace scalpel::report
