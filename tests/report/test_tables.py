"""Metric and model-card views."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert [r.key for r in measures] == ["auroc"]  # heatmap measures have their own section
    assert sorted(r.key for r in counts) == ["fn", "iou_threshold", "n"]


def test_counts_and_settings_get_readable_names() -> None:
    from pipeline.report.tables import readable_name, split_rows

    cxr = {"fn": 4, "fp": 3, "tn": 50, "tp": 32, "n": 89, "n_patients": 33, "n_positive": 36,
           "iou_threshold": 0.5, "localization_valid_resamples": 1000, "n_localized": 36,
           "n_localized_patients": 21, "pointing_game_chance": 0.03, "energy_chance": 0.03}
    _, counts = split_rows(metric_rows(cxr))
    names = {r.key: r.name for r in counts}
    assert names["fn"] == "False negatives" and names["tp"] == "True positives"
    assert names["localization_valid_resamples"] == "Bootstrap resamples behind the heatmap intervals"
    assert "pointing_game_chance" not in names and "energy_chance" not in names  # chance column
    assert all(" " in n and n[0].isupper() and "_" not in n for n in names.values()), names
    assert readable_name("n_cases") == "Number of cases"
    assert readable_name("custom_score") == "Custom score"
    assert readable_name("_") == "_"


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9]{0,6}(_[a-z0-9]{1,6}){0,4}", fullmatch=True))
def test_readable_name_fallback_is_words_not_keys(key: str) -> None:
    from pipeline.report.tables import COUNT_NAMES, readable_name

    name = readable_name(key)
    assert "_" not in name and name[0] == name[0].upper() and name.strip() == name
    assert key in COUNT_NAMES or name.lower().replace("number of ", "n ", 1) == key.replace("_", " ")


def test_exact_intervals_are_marked() -> None:
    rows = {r.key: r for r in metric_rows({
        "specificity": 1.0, "specificity_ci_low": 0.935, "specificity_ci_high": 1.0,
        "specificity_ci_method": "clopper-pearson",
        "recall": 0.8, "recall_ci_low": 0.6, "recall_ci_high": 0.9, "recall_ci_method": "bootstrap",
        "npv": 1.0, "npv_ci_method": "clopper-pearson"})}  # no interval: nothing to mark
    assert rows["specificity"].exact and rows["specificity"].ci == "0.935 to 1.000"
    assert not rows["recall"].exact and not rows["npv"].exact


CXR_LOCALIZATION = {
    "iou": 0.173, "iou_ci_low": 0.135, "iou_ci_high": 0.216, "pointing_game": 0.417,
    "pointing_game_ci_low": 0.243, "pointing_game_ci_high": 0.581, "energy_in_mask": 0.092,
    "energy_in_mask_ci_low": 0.079, "energy_in_mask_ci_high": 0.107, "energy_chance": 0.030,
    "energy_chance_ci_low": 0.026, "energy_chance_ci_high": 0.034, "auroc": 0.99,
    "deletion_win_rate": 0.99, "deletion_flag": False,
}


def test_localization_rows_have_chance_levels_and_leave_the_accuracy_table() -> None:
    from pipeline.report.localization import localization_rows
    from pipeline.report.tables import split_rows

    rows = localization_rows(CXR_LOCALIZATION)
    assert [r.key for r in rows] == ["pointing_game", "energy_in_mask", "iou", "deletion_win_rate"]
    chance = {r.key: r.chance for r in rows}
    # pointing game without its own key falls back to the same mean lesion share
    assert chance == {"pointing_game": "0.030", "energy_in_mask": "0.030", "iou": "not defined",
                      "deletion_win_rate": "0.500"}
    assert rows[0].ci == "0.243 to 0.581"
    measures, counts = split_rows(metric_rows(CXR_LOCALIZATION))
    assert [r.key for r in measures] == ["auroc"] and counts == []
    assert localization_rows({"auroc": 0.9}) == []


def test_poor_heatmaps_get_plain_warnings() -> None:
    from pipeline.report.localization import localization_warnings

    text = localization_warnings({**CXR_LOCALIZATION, "pointing_game": 0.33, "pointing_game_chance": 0.05})
    assert text[0] == ("The heatmaps' peak falls inside the lesion in only 33% of cases (pointing game "
                       "0.33 vs 0.05 by chance): do not use them to locate findings.")
    assert any("Most of each heatmap lies outside the annotated lesions (9.2% inside vs 3.0%" in t
               for t in text)
    assert any("IoU 0.17" in t for t in text)
    assert not any("deletion" in t for t in text)
    ct = {"pointing_game": 0.0, "pointing_game_ci_low": 0.0, "pointing_game_ci_high": 0.23,
          "pointing_game_chance": 0.002, "deletion_win_rate": 0.4, "deletion_flag": True}
    text = localization_warnings(ct)
    assert text[0] == ("The heatmaps point at the lesion no more often than chance (pointing game 0.00, "
                       "95% CI 0.000 to 0.230, vs 0.002 by chance): do not use them to locate findings.")
    above = localization_warnings({**ct, "pointing_game": 0.21, "pointing_game_ci_high": 0.5})
    assert above[0].startswith("The heatmaps do not point at the lesion reliably more often than chance")
    assert any(t.startswith("Warning: the heatmaps did not pass the deletion check") and "40%" in t
               for t in text)
    good = {"pointing_game": 0.9, "pointing_game_ci_low": 0.8, "pointing_game_chance": 0.05,
            "energy_in_mask": 0.7, "energy_in_mask_ci_low": 0.6, "energy_chance": 0.05, "iou": 0.6,
            "deletion_flag": False}
    assert localization_warnings(good) == []
    assert localization_warnings({}) == []
