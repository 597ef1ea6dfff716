"""AUROC of model outputs as the export manifest records it: binary, multi-class, multi-label."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from pipeline.export.accuracy import auroc


def test_binary_uses_the_sigmoid_column_of_the_positive_label():
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    outputs = np.array([[0.1], [0.6], [0.4], [0.9]])
    assert auroc("binary", targets, outputs) == pytest.approx(0.75)


def test_a_split_with_one_class_has_no_auroc():
    targets = np.array([[0, 1], [0, 1]], dtype=bool)
    assert auroc("binary", targets, np.array([[0.2], [0.7]])) is None


def test_multilabel_averages_the_labels_with_both_classes():
    targets = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 0], [0, 0, 0]], dtype=bool)
    outputs = np.array([[0.9, 0.1, 0.2], [0.3, 0.2, 0.8], [0.6, 0.3, 0.1], [0.1, 0.4, 0.7]])
    expected = np.mean([roc_auc_score(targets[:, k], outputs[:, k]) for k in (0, 2)])
    assert auroc("multilabel", targets, outputs) == pytest.approx(expected)  # label 1: no positive


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_multiclass_is_the_one_vs_rest_macro_and_invariant_to_a_monotone_map(seed):
    rng = np.random.default_rng(seed)
    classes = np.concatenate([[0, 1, 2], rng.integers(0, 3, 9)])
    targets = np.eye(3, dtype=bool)[classes]
    logits = rng.normal(size=(len(classes), 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = roc_auc_score(classes, probs, multi_class="ovr", average="macro")
    assert auroc("multiclass", targets, probs) == pytest.approx(expected)
    assert auroc("multiclass", targets, probs ** 3) == pytest.approx(expected)  # ranks per column
