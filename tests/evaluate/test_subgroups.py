"""Subgroup metrics: which attributes, which values, and the numbers with their intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pipeline.evaluate import OperatingPoint, choose_operating_point, to_jsonable
from pipeline.evaluate.subgroups import candidate_columns, subgroup_metrics
from tests.evaluate.synth import make_predictions

BINARY_OP = OperatingPoint("binary", "0.5", (0.5,))


def run(problem: str = "binary", *, attributes: dict, n: int = 60, op: OperatingPoint | None = None,
        **kwargs):
    preds = make_predictions(problem, n=n, seed=1)
    targets = preds.targets(problem)
    if op is None:
        op = BINARY_OP if problem == "binary" else choose_operating_point(problem, targets,
                                                                           preds.probs, "youden")
    out = subgroup_metrics(problem, targets, preds.probs, preds.patients, op, preds.label_names,
                           attributes=attributes, **{"n_boot": 200, "seed": 7, **kwargs})
    return out, preds, targets, op


def modality(n: int) -> list[str]:
    return ["CR" if i % 3 else "DX" for i in range(n)]


def test_candidate_columns_are_coded_and_labels_csv_attributes_without_phi_names() -> None:
    usable, skipped = candidate_columns(
        ["sample_id", "patient", "split", "modality", "photometric", "view_position", "manufacturer",
         "attr_scanner_site", "attr_patient_name", "attr_study_date", "attr_sex"])
    assert usable == ["modality", "view_position", "manufacturer", "attr_scanner_site", "attr_sex"]
    assert set(skipped) == {"attr_patient_name", "attr_study_date"}
    assert all("PHI" in reason for reason in skipped.values())


def test_binary_values_match_the_metrics_of_each_subset() -> None:
    from scipy.stats import binomtest
    from sklearn.metrics import roc_auc_score

    out, preds, targets, _ = run(attributes={"modality": modality(60)})
    assert out["classes"] == ["opacity"] and out["split"] == "test"
    values = out["attributes"]["modality"]["values"]
    assert set(values) == {"CR", "DX"}
    cells = np.asarray(modality(60))
    for value, group in values.items():
        rows = cells == value
        y, s = targets[rows, 1], preds.probs[rows, 1]
        pred = s >= 0.5
        m = group["classes"]["opacity"]
        assert group["n"] == rows.sum()
        assert group["n_patients"] == len({p for p, r in zip(preds.patients, rows, strict=True) if r})
        assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (
            np.sum(y & pred), np.sum(y & ~pred), np.sum(~y & ~pred), np.sum(~y & pred))
        assert m["n_positive"] == y.sum()
        assert m["auroc"] == pytest.approx(roc_auc_score(y, s))
        assert m["auroc_ci_low"] <= m["auroc"] <= m["auroc_ci_high"]
        assert m["sensitivity"] == pytest.approx(m["tp"] / (m["tp"] + m["fn"]))
        assert m["specificity"] == pytest.approx(m["tn"] / (m["tn"] + m["fp"]))
        exact = binomtest(m["tp"], m["tp"] + m["fn"]).proportion_ci(0.95, method="exact")
        assert (m["sensitivity_ci_low"], m["sensitivity_ci_high"]) == pytest.approx(
            (exact.low, exact.high))
        exact = binomtest(m["tn"], m["tn"] + m["fp"]).proportion_ci(0.95, method="exact")
        assert (m["specificity_ci_low"], m["specificity_ci_high"]) == pytest.approx(
            (exact.low, exact.high))


def test_auroc_interval_resamples_patients_and_is_reproducible() -> None:
    a, *_ = run(attributes={"modality": modality(60)}, seed=3)
    b, *_ = run(attributes={"modality": modality(60)}, seed=3)
    c, *_ = run(attributes={"modality": modality(60)}, seed=4)
    auroc = lambda out: out["attributes"]["modality"]["values"]["CR"]["classes"]["opacity"]  # noqa: E731
    assert auroc(a) == auroc(b)
    assert auroc(a)["auroc_ci_low"] != auroc(c)["auroc_ci_low"]
    none, *_ = run(attributes={"modality": modality(60)}, n_boot=0)
    block = auroc(none)
    assert math.isnan(block["auroc_ci_low"]) and math.isfinite(block["auroc"])
    assert math.isfinite(block["sensitivity_ci_low"])  # exact intervals need no resampling


def test_small_values_are_counted_not_measured_and_values_are_capped() -> None:
    n = 60
    cells = ["A"] * 25 + ["B"] * 15 + ["C"] * 12 + ["D"] * 3 + [""] * 5
    out, *_ = run(attributes={"attr_site": cells}, n=n, min_count=10, max_values=2)
    entry = out["attributes"]["attr_site"]
    assert list(entry["values"]) == ["A", "B"]  # the largest two; C (12) is over the cap
    assert entry["omitted"] == {"values": 2, "n": 15}  # C and D (under min_count)
    assert entry["missing"] == 5
    assert sum(v["n"] for v in entry["values"].values()) == 40


def test_free_text_single_valued_and_empty_attributes_are_skipped_with_a_reason() -> None:
    out, *_ = run(attributes={"attr_note_like": [f"v{i}" for i in range(60)],
                              "modality": ["CR"] * 60, "manufacturer": [""] * 60},
                  skipped={"attr_patient_name": "name on the PHI deny-list"}, max_distinct=20)
    assert out["attributes"] == {}
    assert out["skipped"]["attr_note_like"].startswith("60 distinct values (more than 20)")
    assert out["skipped"]["modality"] == "a single value"
    assert out["skipped"]["manufacturer"] == "no values"
    assert out["skipped"]["attr_patient_name"] == "name on the PHI deny-list"


def test_one_class_subgroup_has_no_auroc_and_no_sensitivity() -> None:
    preds = make_predictions("binary", n=40, seed=2)
    targets = preds.targets("binary")
    cells = ["neg" if not t else "pos" for t in targets[:, 1]]
    out = subgroup_metrics("binary", targets, preds.probs, preds.patients, BINARY_OP,
                           preds.label_names, attributes={"modality": cells}, min_count=1,
                           n_boot=50)
    neg = out["attributes"]["modality"]["values"]["neg"]["classes"]["opacity"]
    assert math.isnan(neg["auroc"]) and math.isnan(neg["sensitivity"])
    assert math.isnan(neg["sensitivity_ci_low"]) and math.isfinite(neg["specificity"])
    doc = json.loads(json.dumps(to_jsonable(out)))  # NaN is written as null
    assert doc["attributes"]["modality"]["values"]["neg"]["classes"]["opacity"]["auroc"] is None


@pytest.mark.parametrize("problem", ["multiclass", "multilabel"])
def test_other_problems_measure_every_class_at_the_operating_point(problem: str) -> None:
    out, preds, targets, op = run(problem, attributes={"modality": modality(60)})
    assert out["classes"] == list(preds.label_names)
    group = out["attributes"]["modality"]["values"]["CR"]
    rows = np.asarray(modality(60)) == "CR"
    predicted = op.predict(preds.probs)
    for k, name in enumerate(preds.label_names):
        m = group["classes"][name]
        assert m["tp"] == np.sum(targets[rows, k] & predicted[rows, k])
        assert m["fp"] == np.sum(~targets[rows, k] & predicted[rows, k])


def test_mismatched_lengths_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per sample"):
        run(attributes={"modality": ["CR"] * 59})
    with pytest.raises(ValueError, match="min_count >= 1"):
        run(attributes={"modality": modality(60)}, min_count=0)
