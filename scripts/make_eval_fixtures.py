#!/usr/bin/python3
"""Writes tests/fixtures/eval/metrics_case.json: random probabilities and labels for 4 classes
(probabilities on a coarse grid so that scores tie, and class 3 never the argmax) with
scikit-learn's metrics on them. Run with Debian's /usr/bin/python3 from the repository root."""
import json
import os

import numpy as np
from sklearn import metrics

rng = np.random.default_rng(7)
n, k = 60, 4
raw = rng.integers(1, 10, size=(n, k)).astype(np.float64)
raw[:, 3] = np.minimum(raw[:, 3], raw[:, :3].max(axis=1) - 1).clip(min=0)  # class 3: never predicted
probs = np.round(raw / raw.sum(axis=1, keepdims=True), 2)  # rounding creates ties
labels = rng.integers(0, k, size=n)
labels[:4] = np.arange(k)  # every class present
pred = probs.argmax(axis=1)
assert 3 not in pred

cm = metrics.confusion_matrix(labels, pred, labels=range(k))
p, r, f, s = metrics.precision_recall_fscore_support(labels, pred, labels=range(k), zero_division=0)
spec = [(cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c]) / (cm.sum() - cm[c].sum()) for c in range(k)]
auc = [metrics.roc_auc_score(labels == c, probs[:, c]) for c in range(k)]
out = {
    "classes": ["a", "b", "c", "d"],
    "labels": labels.tolist(),
    "probs": probs.tolist(),
    "accuracy": metrics.accuracy_score(labels, pred),
    "balanced_accuracy": metrics.balanced_accuracy_score(labels, pred),
    "macro_f1": metrics.f1_score(labels, pred, average="macro", zero_division=0),
    "weighted_f1": metrics.f1_score(labels, pred, average="weighted", zero_division=0),
    # One-vs-rest macro AUC through the indicator form (multi_class="ovr" insists on rows summing
    # to exactly 1, which the rounded grid breaks; the per-class curves are the same).
    "macro_auc": metrics.roc_auc_score(np.eye(k)[labels], probs, average="macro"),
    "confusion_matrix": cm.tolist(),
    "precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(), "support": s.tolist(),
    "specificity": [float(x) for x in spec],
    "auc": auc,
    "top_k_accuracy": {str(t): metrics.top_k_accuracy_score(labels, probs, k=t, labels=range(k)) for t in (2, 3)},
}
os.makedirs("tests/fixtures/eval", exist_ok=True)
with open("tests/fixtures/eval/metrics_case.json", "w") as fh:
    json.dump(out, fh, indent=1)
