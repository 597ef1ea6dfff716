from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from pipeline.evaluate import (
    BinaryStats,
    OperatingPoint,
    binary_metrics,
    choose_operating_point,
    classification_metrics,
    confusion_matrix,
)
from tests.evaluate.synth import make_predictions

# Hand-computed: at t = 0.5, predictions [1,1,0,1,1,0,0] -> TP 2, FN 1, FP 2, TN 2.
Y = np.array([1, 1, 1, 0, 0, 0, 0])
S = np.array([0.9, 0.8, 0.3, 0.6, 0.55, 0.1, 0.05])
HAND = {
    "accuracy": 4 / 7, "precision": 2 / 4, "recall": 2 / 3, "specificity": 2 / 4, "npv": 2 / 3,
    "f1": 4 / 7,  # 2TP / (2TP + FP + FN) = 4 / 7
    "auroc": 10 / 12,  # 0.9 and 0.8 beat all 4 negatives, 0.3 beats 2 of them
    "auprc": (1 + 1 + 3 / 5) / 3,  # precision at each positive, descending scores
    "brier": (0.01 + 0.04 + 0.49 + 0.36 + 0.3025 + 0.01 + 0.0025) / 7,
    "ece": (abs(0.45 - 1) + abs(2.85 - 2)) / 7,  # 2 bins: [0, .5) and [.5, 1]
    "n": 7, "n_positive": 3, "tp": 2, "fp": 2, "tn": 2, "fn": 1,
}


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def test_binary_metrics_by_hand():
    got = binary_metrics(Y, S, 0.5, n_bins=2)
    assert got == pytest.approx(HAND)


def test_ece_zero_when_calibrated_and_max_when_confidently_wrong():
    # Within each bin the mean score equals the observed fraction of positives.
    s = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert binary_metrics(y, s, 0.5, n_bins=10)["ece"] == pytest.approx(0.0)
    assert binary_metrics([0, 1], [1.0, 0.0], 0.5)["ece"] == pytest.approx(1.0)
    # A score of exactly 1.0 falls in the last bin.
    assert binary_metrics([1, 1], [1.0, 0.95], 0.5, n_bins=10)["ece"] == pytest.approx(0.025)


labels_and_scores = st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
    st.lists(st.integers(0, 20), min_size=n, max_size=n),  # coarse scores: many ties
    st.sampled_from([0.2, 0.5, 0.7])))


@settings(max_examples=60, deadline=None)
@given(labels_and_scores)
def test_binary_agrees_with_sklearn(case):
    y, s, t = np.array(case[0]), np.array(case[1]) / 20, case[2]
    got = _no_warnings(binary_metrics, y, s, t)
    pred = s >= t
    both = 0 < y.sum() < len(y)
    if both:
        assert got["auroc"] == pytest.approx(skm.roc_auc_score(y, s))
    else:
        assert np.isnan(got["auroc"])
    if y.any():
        assert got["auprc"] == pytest.approx(skm.average_precision_score(y, s))
    else:
        assert np.isnan(got["auprc"])
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, s, pos_label=1))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("f1", skm.f1_score)):
        expected = fn(y, pred, zero_division=np.nan)
        assert got[name] == pytest.approx(expected, nan_ok=True)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert (got["tn"], got["fp"], got["fn"], got["tp"]) == (tn, fp, fn, tp)
    assert got["specificity"] == pytest.approx(tn / (tn + fp) if tn + fp else np.nan, nan_ok=True)
    assert got["npv"] == pytest.approx(tn / (tn + fn) if tn + fn else np.nan, nan_ok=True)
    for v in (got["accuracy"], got["auroc"], got["auprc"], got["brier"], got["ece"]):
        assert np.isnan(v) or 0.0 <= v <= 1.0
    # Invariant to the order of the samples.
    perm = np.random.default_rng(len(y)).permutation(len(y))
    assert binary_metrics(y[perm], s[perm], t) == pytest.approx(got, nan_ok=True)


def test_weights_equal_repeated_samples():
    w = np.array([[2, 1, 0, 3, 1, 1, 2]])
    stats = BinaryStats(Y.astype(bool), S, S >= 0.5, n_bins=2)
    weighted = {k: v[0] for k, v in stats(w).items()}
    rep = np.repeat(np.arange(7), w[0])
    assert weighted == pytest.approx(binary_metrics(Y[rep], S[rep], 0.5, n_bins=2))


@pytest.mark.parametrize("y,s,t,nan", [
    ([0, 0, 0], [0.1, 0.6, 0.3], 0.5, {"recall", "auroc", "auprc"}),           # no positives
    ([1, 1], [0.7, 0.2], 0.5, {"specificity", "auroc"}),                       # no negatives
    ([0, 0], [0.1, 0.2], 0.5, {"precision", "recall", "f1", "auroc", "auprc"}),  # nothing called
    ([1, 0], [0.9, 0.8], 0.95, {"precision"}),                                  # no positive calls
    ([], [], 0.5, {"accuracy", "precision", "recall", "specificity", "npv", "f1", "auroc",
                   "auprc", "brier", "ece"}),
])
def test_degenerate_inputs_give_nan_without_warnings(y, s, t, nan):
    got = _no_warnings(binary_metrics, np.array(y, dtype=bool), np.array(s, dtype=float), t)
    assert {k for k, v in got.items() if np.isnan(v)} == nan


def test_multiclass_agrees_with_sklearn():
    p = make_predictions("multiclass", n=90, seed=3)
    t = p.targets("multiclass")
    op = choose_operating_point("multiclass", t, p.probs, "youden")
    got = _no_warnings(classification_metrics, "multiclass", t, p.probs, op, p.label_names)
    y, pred = t.argmax(1), p.probs.argmax(1)
    assert got[(None, "accuracy")] == pytest.approx(skm.accuracy_score(y, pred))
    assert got[(None, "auroc")] == pytest.approx(
        skm.roc_auc_score(y, p.probs, multi_class="ovr", average="macro"))
    assert got[(None, "auprc")] == pytest.approx(skm.average_precision_score(t, p.probs))
    assert got[(None, "brier")] == pytest.approx(skm.brier_score_loss(y, p.probs))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("f1", skm.f1_score)):
        assert got[(None, name)] == pytest.approx(fn(y, pred, average="macro"))
        per = fn(y, pred, average=None)
        for k, label in enumerate(p.label_names):
            assert got[(label, name)] == pytest.approx(per[k])
    np.testing.assert_array_equal(confusion_matrix(t, op.predict(p.probs)),
                                  skm.confusion_matrix(y, pred))
    # classwise ECE = mean of the one-vs-rest ECEs
    assert got[(None, "ece")] == pytest.approx(np.mean([got[(c, "ece")] for c in p.label_names]))


def test_multiclass_macro_skips_a_class_absent_from_the_data():
    t = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=bool)  # class c absent
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]])
    op = OperatingPoint("multiclass", "argmax")
    got = _no_warnings(classification_metrics, "multiclass", t, probs, op, ("a", "b", "c"))
    assert np.isnan(got[("c", "recall")]) and np.isnan(got[("c", "auroc")])
    y, pred = t.argmax(1), probs.argmax(1)
    assert got[(None, "recall")] == pytest.approx(
        skm.recall_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=np.nan))
    assert got[(None, "auroc")] == pytest.approx(np.mean([got[("a", "auroc")], got[("b", "auroc")]]))


def test_multilabel_per_label_and_subset_accuracy():
    p = make_predictions("multilabel", n=80, seed=5)
    t = p.targets("multilabel")
    op = choose_operating_point("multilabel", t, p.probs, "f1")
    got = _no_warnings(classification_metrics, "multilabel", t, p.probs, op, p.label_names)
    pred = op.predict(p.probs)
    assert got[(None, "accuracy")] == pytest.approx(skm.accuracy_score(t, pred))  # subset accuracy
    assert got[(None, "auroc")] == pytest.approx(skm.roc_auc_score(t, p.probs, average="macro"))
    assert got[(None, "f1")] == pytest.approx(skm.f1_score(t, pred, average="macro"))
    for k, label in enumerate(p.label_names):
        expected = binary_metrics(t[:, k], p.probs[:, k], op.thresholds[k])
        assert {m: got[(label, m)] for m in expected} == pytest.approx(expected)
    assert got[(None, "brier")] == pytest.approx(np.mean([got[(c, "brier")] for c in p.label_names]))


def test_binary_task_reports_the_positive_class():
    p = make_predictions("binary", n=40, seed=1)
    t = p.targets("binary")
    op = OperatingPoint("binary", "0.5", (0.5,))
    got = classification_metrics("binary", t, p.probs, op, p.label_names)
    assert all(scope is None for scope, _ in got)
    assert got[(None, "auroc")] == pytest.approx(skm.roc_auc_score(t[:, 1], p.probs[:, 1]))
    assert got[(None, "n_positive")] == t[:, 1].sum()


def test_bad_binary_inputs():
    with pytest.raises(ValueError, match="only 0/1"):
        binary_metrics([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="finite"):
        binary_metrics([0, 1], [0.1, np.nan], 0.5)
    with pytest.raises(ValueError, match="equal length"):
        binary_metrics([0, 1], [0.1], 0.5)


def test_empty_split_gives_nan_metrics():
    op = OperatingPoint("multiclass", "argmax")
    got = _no_warnings(classification_metrics, "multiclass", np.zeros((0, 3), bool),
                       np.zeros((0, 3)), op, ("a", "b", "c"))
    assert np.isnan(got[(None, "auroc")]) and np.isnan(got[(None, "accuracy")])
    assert got[(None, "n")] == 0
