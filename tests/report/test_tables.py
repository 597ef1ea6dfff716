"""Metric and model-card views."""

from __future__ import annotations

import numpy as np

from pipeline.report.tables import card_summary, confusion_matrix, flatten, format_number, metric_rows
from tests.report.conftest import CARD, LABELS, METRICS


def test_metric_rows_in_clinical_order_with_cis() -> None:
    rows = {r.key: r for r in metric_rows(METRICS)}
    order = [r.key for r in metric_rows(METRICS)]
    assert order[:4] == ["auroc", "recall", "specificity", "precision"]
    assert "threshold" not in rows and "auroc_ci_low" not in rows and "confusion_matrix" not in rows
    assert rows["auroc"].ci == "0.840 to 0.960"
    assert rows["specificity"].ci == "0.700 to 0.950"  # two-item "_ci" form
    assert rows["f1"].ci == ""
    assert rows["recall"].name == "Sensitivity (recall)"
    assert "lower is better" in rows["ece"].meaning
    assert [r.key for r in metric_rows(METRICS, ("specificity", "auroc", "npv"))] == ["specificity", "auroc"]
    extra = metric_rows({"n_cases": 40, "custom_score": 0.5, "flag": True})
    assert [(r.key, r.value) for r in extra] == [("custom_score", "0.500"), ("n_cases", "40")]


def test_confusion_matrix_only_when_square_over_labels() -> None:
    assert confusion_matrix(METRICS, LABELS) == [["30", "5"], ["4", "21"]]
    assert confusion_matrix({"confusion_matrix": [[1, 2, 3]]}, LABELS) is None
    assert confusion_matrix({}, LABELS) is None
    assert confusion_matrix({"confusion_matrix": np.array([[1, 2], [3, 4]])}, LABELS) == [["1", "2"],
                                                                                          ["3", "4"]]


def test_card_summary_and_flatten() -> None:
    summary = dict(card_summary(CARD))
    assert summary["Network (backbone)"] == "resnet18"
    assert summary["Model input shape"] == "96 × 128 × 1"
    assert summary["Pretrained weights"] == "none (trained from scratch)"
    assert summary["Validation metrics"] == "auroc: 0.900"
    flat = dict(flatten(CARD))
    assert flat["params.width"] == "32" and flat["input_shape"] == "96, 128, 1"
    assert flatten({"a": {"b": {"c": 1}}}, max_depth=1) == [("a", "b: c: 1")]


def test_numpy_scalars_are_numbers() -> None:
    rows = metric_rows({"auroc": np.float32(0.5), "auroc_ci_low": np.float64(0.4), "auroc_ci_high": 0.6,
                        "n": np.int64(7)})
    assert [(r.key, r.value, r.ci) for r in rows] == [("auroc", "0.500", "0.400 to 0.600"), ("n", "7", "")]


def test_format_number() -> None:
    assert [format_number(v) for v in (3, 0.12345, float("nan"), True, "x")] == ["3", "0.123", "n/a",
                                                                                  "yes", "x"]


def test_split_rows_keeps_described_measures_apart_from_counts() -> None:
    from pipeline.report.tables import split_rows

    rows = metric_rows({"auroc": 0.9, "auroc_ci_low": 0.8, "auroc_ci_high": 0.95, "n": 40, "fn": 3,
                        "iou_threshold": 0.5, "energy_in_mask": 0.1})
    measures, counts = split_rows(rows)
    assert [r.key for r in measures] == ["auroc", "energy_in_mask"]
    assert sorted(r.key for r in counts) == ["fn", "iou_threshold", "n"]
