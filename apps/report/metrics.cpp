// Classification metrics with scikit-learn's conventions (see metrics.h).
#include "apps/report/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "tensor/error.h"

namespace scalpel::report {

int64_t argmax(const std::vector<double>& probs) {
  return std::max_element(probs.begin(), probs.end()) - probs.begin();  // first maximum
}

RocCurve roc_curve(const std::vector<bool>& positive, const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  const double p = static_cast<double>(std::count(positive.begin(), positive.end(), true));
  const double n = static_cast<double>(positive.size()) - p;
  RocCurve c;
  c.fpr.push_back(0);
  c.tpr.push_back(0);
  double tp = 0, fp = 0;
  // One point per distinct score: tied samples move the curve together (a diagonal segment).
  for (size_t i = 0; i < order.size(); ++i) {
    (positive[order[i]] ? tp : fp) += 1;
    if (i + 1 < order.size() && scores[order[i + 1]] == scores[order[i]]) continue;
    c.fpr.push_back(n > 0 ? fp / n : 0);
    c.tpr.push_back(p > 0 ? tp / p : 0);
  }
  return c;
}

double roc_auc(const std::vector<bool>& positive, const std::vector<double>& scores) {
  const auto p = std::count(positive.begin(), positive.end(), true);
  if (p == 0 || p == static_cast<int64_t>(positive.size())) return std::numeric_limits<double>::quiet_NaN();
  const RocCurve c = roc_curve(positive, scores);
  double area = 0;
  for (size_t i = 1; i < c.fpr.size(); ++i) area += (c.fpr[i] - c.fpr[i - 1]) * (c.tpr[i] + c.tpr[i - 1]) / 2;
  return area;
}

Metrics compute_metrics(const std::vector<int64_t>& labels, const std::vector<std::vector<double>>& probs,
                        const std::vector<std::string>& classes, const std::vector<int64_t>& top_k) {
  const size_t k = classes.size(), n = labels.size();
  SCALPEL_CHECK(n > 0, "metrics: no samples");
  SCALPEL_CHECK(probs.size() == n, "metrics: {} labels but {} probability rows", n, probs.size());
  Metrics m;
  m.classes = classes;
  m.samples = static_cast<int64_t>(n);
  m.confusion.assign(k, std::vector<int64_t>(k, 0));
  int64_t correct = 0;
  for (size_t i = 0; i < n; ++i) {
    SCALPEL_CHECK(labels[i] >= 0 && labels[i] < static_cast<int64_t>(k), "metrics: sample {} has label {} outside [0, {})",
                  i, labels[i], k);
    SCALPEL_CHECK(probs[i].size() == k, "metrics: sample {} has {} scores for {} classes", i, probs[i].size(), k);
    const int64_t pred = argmax(probs[i]);
    ++m.confusion[labels[i]][pred];
    correct += pred == labels[i];
  }
  m.accuracy = static_cast<double>(correct) / n;

  double recall_sum = 0, auc_sum = 0;
  int present = 0, auc_count = 0;
  for (size_t c = 0; c < k; ++c) {
    ClassMetrics cm;
    cm.name = classes[c];
    int64_t tp = m.confusion[c][c], fn = 0, fp = 0;
    for (size_t j = 0; j < k; ++j) {
      if (j == c) continue;
      fn += m.confusion[c][j];
      fp += m.confusion[j][c];
    }
    const int64_t tn = static_cast<int64_t>(n) - tp - fn - fp;
    cm.support = tp + fn;
    cm.precision = tp + fp > 0 ? static_cast<double>(tp) / (tp + fp) : 0;
    cm.recall = cm.support > 0 ? static_cast<double>(tp) / cm.support : 0;
    cm.specificity = tn + fp > 0 ? static_cast<double>(tn) / (tn + fp) : 0;
    cm.f1 = cm.precision + cm.recall > 0 ? 2 * cm.precision * cm.recall / (cm.precision + cm.recall) : 0;
    std::vector<bool> positive(n);
    std::vector<double> scores(n);
    for (size_t i = 0; i < n; ++i) {
      positive[i] = labels[i] == static_cast<int64_t>(c);
      scores[i] = probs[i][c];
    }
    cm.auc = roc_auc(positive, scores);
    if (cm.support > 0) {
      recall_sum += cm.recall;
      ++present;
    }
    if (!std::isnan(cm.auc)) {
      auc_sum += cm.auc;
      ++auc_count;
    }
    m.macro_f1 += cm.f1 / k;
    m.weighted_f1 += cm.f1 * cm.support / n;
    m.per_class.push_back(cm);
  }
  m.balanced_accuracy = recall_sum / present;
  m.macro_auc = auc_count > 0 ? auc_sum / auc_count : std::numeric_limits<double>::quiet_NaN();

  for (int64_t kk : top_k) {
    SCALPEL_CHECK(kk > 0, "metrics: top-k needs k > 0, got {}", kk);
    if (kk >= static_cast<int64_t>(k)) continue;  // always 1
    int64_t hits = 0;
    for (size_t i = 0; i < n; ++i) {
      // Rank of the label: classes scoring higher, or equal with a higher index (sklearn's order).
      int64_t ahead = 0;
      const double s = probs[i][labels[i]];
      for (size_t j = 0; j < k; ++j)
        ahead += probs[i][j] > s || (probs[i][j] == s && static_cast<int64_t>(j) > labels[i]);
      hits += ahead < kk;
    }
    m.top_k.emplace_back(kk, static_cast<double>(hits) / n);
  }
  return m;
}

namespace {
Json number_or_null(double v) { return std::isnan(v) ? Json() : Json(v); }
}  // namespace

Json metrics_to_json(const Metrics& m) {
  Json j = Json::object();
  Json classes = Json::array();
  for (const std::string& c : m.classes) classes.push_back(c);
  j["classes"] = classes;
  j["samples"] = m.samples;
  j["accuracy"] = m.accuracy;
  j["balanced_accuracy"] = m.balanced_accuracy;
  j["macro_f1"] = m.macro_f1;
  j["weighted_f1"] = m.weighted_f1;
  j["macro_auc"] = number_or_null(m.macro_auc);
  Json confusion = Json::array();
  for (const auto& row : m.confusion) {
    Json r = Json::array();
    for (int64_t v : row) r.push_back(v);
    confusion.push_back(r);
  }
  j["confusion_matrix"] = confusion;
  Json per_class = Json::object();
  for (const ClassMetrics& c : m.per_class) {
    Json o = Json::object();
    o["precision"] = c.precision;
    o["recall"] = c.recall;
    o["specificity"] = c.specificity;
    o["f1"] = c.f1;
    o["support"] = c.support;
    o["auc"] = number_or_null(c.auc);
    per_class[c.name] = o;
  }
  j["per_class"] = per_class;
  Json top = Json::object();
  for (const auto& [k, v] : m.top_k) top[std::to_string(k)] = v;
  j["top_k_accuracy"] = top;
  return j;
}

std::string classification_report(const Metrics& m) {
  size_t width = std::string_view("weighted avg").size();
  for (const ClassMetrics& c : m.per_class) width = std::max(width, c.name.size());
  const auto number = [](double v) { return std::isnan(v) ? std::string("n/a") : fmt::format("{:.4f}", v); };
  const auto row = [&](const std::string& name, double p, double r, double f1, double spec, double auc,
                       int64_t support) {
    return fmt::format("{:>{}} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10}\n", name, width, number(p), number(r),
                       number(f1), number(spec), number(auc), support);
  };
  std::string out = fmt::format("{:>{}} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10}\n\n", "", width, "precision", "recall",
                                "f1-score", "specificity", "auc", "support");
  double macro[5] = {}, weighted[5] = {};
  int64_t total = 0, auc_classes = 0, auc_support = 0;
  for (const ClassMetrics& c : m.per_class) {
    out += row(c.name, c.precision, c.recall, c.f1, c.specificity, c.auc, c.support);
    const double values[5] = {c.precision, c.recall, c.f1, c.specificity, std::isnan(c.auc) ? 0.0 : c.auc};
    for (int k = 0; k < 5; ++k) {
      macro[k] += values[k];
      weighted[k] += values[k] * static_cast<double>(c.support);
    }
    total += c.support;
    if (!std::isnan(c.auc)) {
      ++auc_classes;
      auc_support += c.support;
    }
  }
  const double n = static_cast<double>(std::max<size_t>(m.per_class.size(), 1));
  const double nan = std::nan("");
  out += "\n" + fmt::format("{:>{}} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10}\n", "accuracy", width, "", "",
                            number(m.accuracy), "", "", total);
  out += row("macro avg", macro[0] / n, macro[1] / n, macro[2] / n, macro[3] / n,
             auc_classes ? macro[4] / static_cast<double>(auc_classes) : nan, total);
  const double t = static_cast<double>(std::max<int64_t>(total, 1));
  out += row("weighted avg", weighted[0] / t, weighted[1] / t, weighted[2] / t, weighted[3] / t,
             auc_support ? weighted[4] / static_cast<double>(auc_support) : nan, total);
  return out;
}

}  // namespace scalpel::report
