#pragma once
// Classification metrics from predicted probabilities, with scikit-learn's conventions so
// that a report can be checked against sklearn on the same predictions
// (tests/eval/test_metrics.cpp compares with a fixture written by scripts/make_eval_fixtures.py):
//   pred          argmax of the probabilities, lowest index on ties (numpy.argmax)
//   precision     TP / (TP + FP); 0 when the class is never predicted (zero_division=0)
//   recall        TP / (TP + FN); 0 when the class has no samples
//   specificity   TN / (TN + FP)
//   f1            2 P R / (P + R); 0 when P + R = 0
//   balanced_accuracy  mean recall over the classes present in the labels
//   macro / weighted f1  plain / support-weighted mean of f1 over all classes
//   auc           one-vs-rest ROC AUC of the class's probability (ties count one half,
//                 roc_auc_score); NaN when the labels hold only one side (class absent)
//   macro_auc     mean of the per-class AUCs that are defined (roc_auc_score multi_class="ovr"
//                 when every class is present)
//   top-k         the label is among the k highest scores; ties broken towards the higher
//                 index (sklearn's top_k_accuracy_score sorts with a stable argsort reversed)
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/json.h"

namespace scalpel::report {

struct ClassMetrics {
  std::string name;
  double precision = 0, recall = 0, specificity = 0, f1 = 0, auc = 0;
  int64_t support = 0;  // samples whose label is this class
};

struct Metrics {
  std::vector<std::string> classes;
  int64_t samples = 0;
  double accuracy = 0, balanced_accuracy = 0, macro_f1 = 0, weighted_f1 = 0, macro_auc = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true][pred]
  std::vector<ClassMetrics> per_class;          // in class order
  std::vector<std::pair<int64_t, double>> top_k;  // (k, accuracy), for the requested k < classes
};

// Index of the largest probability, the lowest on ties.
int64_t argmax(const std::vector<double>& probs);

// `labels[i]` in [0, classes), `probs[i]` one score per class (any scale; they need not sum
// to 1). Error naming the sample when a label is out of range or a row has the wrong size,
// and when there are no samples.
Metrics compute_metrics(const std::vector<int64_t>& labels, const std::vector<std::vector<double>>& probs,
                        const std::vector<std::string>& classes, const std::vector<int64_t>& top_k = {});

// One-vs-rest ROC curve: points (fpr, tpr) from (0, 0) to (1, 1), one per distinct score
// (highest first), as sklearn's roc_curve(drop_intermediate=False) plus its (0, 0) start.
struct RocCurve {
  std::vector<double> fpr, tpr;
};
RocCurve roc_curve(const std::vector<bool>& positive, const std::vector<double>& scores);
// Area under the curve above (trapezoids); NaN when there are no positives or no negatives.
double roc_auc(const std::vector<bool>& positive, const std::vector<double>& scores);

// metrics.json content: classes, samples, accuracy, balanced_accuracy, macro_f1, weighted_f1,
// macro_auc, confusion_matrix, per_class {name: {precision, recall, specificity, f1, support,
// auc}}, top_k_accuracy {"k": value}. Undefined AUCs are written as null.
Json metrics_to_json(const Metrics& m);

// A per-class table for the terminal in the shape of sklearn's classification_report (digits=4),
// with specificity and one-vs-rest AUC columns added: one row per class (precision, recall,
// f1-score, specificity, auc, support), then accuracy, macro avg and weighted avg (support-
// weighted) rows. Undefined AUCs print as "n/a" and are left out of the averages.
std::string classification_report(const Metrics& m);

}  // namespace scalpel::report
