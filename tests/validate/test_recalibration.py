"""Recalibration on a slice of a cohort: the fits recover known miscalibration, keep ranking and
decisions, split by patient, and never touch the locked result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import ParamsError, load_params
from pipeline.evaluate import OperatingPoint
from pipeline.evaluate.predictions import Predictions
from pipeline.validate.document import external_document
from pipeline.validate.recalibration import fit_recalibration, split_patients

ROOT = Path(__file__).resolve().parents[2]


def _binary(n: int, seed: int, slope: float = 2.0, intercept: float = 1.0):
    """Outcomes drawn from sigmoid(z); the locked model reports sigmoid(slope z + intercept)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) * 2.0
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-z))
    p = 1.0 / (1.0 + np.exp(-(slope * z + intercept)))
    return np.stack([~y, y], 1), np.stack([1.0 - p, p], 1)


def test_platt_recovers_the_inverse_of_a_known_miscalibration():
    targets, probs = _binary(20_000, seed=1)
    fit = fit_recalibration("platt", "binary", targets, probs)
    # locked logit L = 2 z + 1, so the truth is z = 0.5 L - 0.5
    assert fit.slopes[0] == pytest.approx(0.5, abs=0.03)
    assert fit.intercepts[0] == pytest.approx(-0.5, abs=0.05)
    temperature = fit_recalibration("temperature", "binary", *_binary(20_000, seed=2, intercept=0.0))
    assert temperature.temperature == pytest.approx(2.0, rel=0.05)


def test_temperature_recovers_an_overconfident_multiclass_model():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4000, 3)) * 1.5
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=q) for q in truth])
    locked = np.exp(3.0 * logits)
    locked /= locked.sum(1, keepdims=True)
    fit = fit_recalibration("temperature", "multiclass", np.eye(3, dtype=bool)[y], locked)
    assert fit.temperature == pytest.approx(3.0, rel=0.08)
    out = fit.apply(locked)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_array_equal(out.argmax(axis=1), locked.argmax(axis=1))  # decisions kept
    with pytest.raises(ValueError, match="platt recalibration is per label"):
        fit_recalibration("platt", "multiclass", np.eye(3, dtype=bool)[y], locked)


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(["temperature", "platt"]),
       slope=st.floats(0.3, 4.0), intercept=st.floats(-2.0, 2.0), threshold=st.floats(0.05, 0.95))
def test_recalibration_keeps_the_ranking_and_the_decisions_at_the_carried_threshold(
        seed, method, slope, intercept, threshold):
    targets, probs = _binary(200, seed, slope, intercept)
    fit = fit_recalibration(method, "binary", targets, probs)
    out = fit.apply(probs)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    order = np.argsort(probs[:, 1], kind="stable")
    assert (np.diff(out[order, 1]) >= -1e-12).all()  # increasing: the same ranking
    carried = fit.threshold(threshold)
    far = np.abs(probs[:, 1] - threshold) > 1e-9  # exact ties may round either way
    np.testing.assert_array_equal((out[far, 1] >= carried), (probs[far, 1] >= threshold))


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), n_patients=st.integers(2, 40), share=st.floats(0.1, 0.9))
def test_the_split_is_by_patient_and_keeps_both_groups_on_both_sides(seed, n_patients, share):
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 4, n_patients)
    patients = np.repeat([f"P{i:03d}" for i in range(n_patients)], per)
    sick = rng.random(n_patients) < 0.4
    positive = np.repeat(sick, per) & (rng.random(len(patients)) < 0.8)
    fitting = split_patients(list(patients), positive, share=share, seed=seed)
    assert not set(patients[fitting]) & set(patients[~fitting])  # never one patient on both sides
    has_pos = {p for p, v in zip(patients, positive, strict=True) if v}
    for group in (has_pos, set(patients) - has_pos):
        if len(group) >= 2:
            assert group & set(patients[fitting]) and group & set(patients[~fitting])
    again = split_patients(list(patients), positive, share=share, seed=seed)
    np.testing.assert_array_equal(fitting, again)  # seeded


def _cohort(n_patients: int = 60, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    patients = tuple(f"P{i // 2:03d}" for i in range(2 * n_patients))
    y = np.repeat(rng.random(n_patients) < 0.4, 2)
    p = np.clip(0.3 + 0.5 * y + rng.normal(0, 0.15, len(y)), 0.01, 0.99)  # ranks well, over-predicts
    return Predictions(sample_ids=tuple(f"S{i}" for i in range(len(y))), splits=("external",) * len(y),
                       patients=patients, labels=tuple("pos" if v else "neg" for v in y),
                       probs=np.stack([1 - p, p], 1), label_names=("neg", "pos"))


def _document(cohort: Predictions, recalibration: str) -> dict:
    return external_document(problem="binary", external=cohort, internal=None,
                             operating_point=OperatingPoint("binary", "youden", (0.6,)), rule="youden",
                             locked={"threshold": {"value": 0.6}}, cohort={"name": "site"},
                             attributes={}, skipped={}, n_boot=200, seed=0,
                             recalibration=recalibration, recalibration_share=0.5)


def test_the_document_adds_a_comparison_section_and_keeps_the_locked_result():
    cohort = _cohort()
    plain, refit = _document(cohort, "none"), _document(cohort, "platt")
    assert "recalibration" not in plain
    assert {k: v for k, v in refit.items() if k != "recalibration"} == plain  # nothing else moves
    section = refit["recalibration"]
    assert section["for_comparison_only"] is True and section["method"] == "platt"
    assert section["fitted_on"]["patients"] + section["measured_on"]["patients"] == 60
    assert section["fitted_on"]["samples"] + section["measured_on"]["samples"] == 120
    held = section["held_out"]
    # the cohort over-predicts by ~0.1: refitted on one half, the other half's gap shrinks
    citl = {side: abs(held[side]["calibration_in_the_large"]) for side in ("locked", "recalibrated")}
    assert citl["recalibrated"] < citl["locked"]
    assert held["recalibrated"]["brier"] < held["locked"]["brier"]
    change = section["change"]
    assert change["pairing"] == "paired" and change["auroc"] == 0.0 and change["accuracy"] == 0.0
    assert change["accuracy_ci_low"] == change["accuracy_ci_high"] == 0.0  # decisions unchanged
    assert 0.0 < section["threshold_on_recalibrated_scale"] < 1.0


def test_a_cohort_too_small_to_split_says_why():
    cohort = _cohort(n_patients=60)
    only_one = Predictions(cohort.sample_ids[:2], cohort.splits[:2], cohort.patients[:2], ("pos", "pos"),
                           cohort.probs[:2], cohort.label_names)
    section = _document(only_one, "temperature")["recalibration"]
    assert "skipped" in section and "held_out" not in section


def test_platt_for_a_multiclass_task_is_refused_naming_the_key(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    cxr = raw["tasks"]["cxr"]
    cxr["labels"] = ["normal", "opacity", "effusion"]
    cxr["evaluate"]["recalibration"] = "platt"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="tasks.cxr evaluate.recalibration 'platt' fits each label"):
        load_params(path)
    cxr["evaluate"]["recalibration"] = "isotonic"
    path.write_text(yaml.safe_dump(raw))
    allowed = "tasks.cxr.evaluate.recalibration Input should be .none., .temperature. or .platt."
    with pytest.raises(ParamsError, match=allowed):
        load_params(path)


def test_multilabel_cohorts_get_one_platt_fit_and_one_carried_threshold_per_label():
    rng = np.random.default_rng(4)
    n = 160
    y = rng.random((n, 2)) < [0.4, 0.3]
    p = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.12, y.shape), 0.01, 0.99)
    names = ("effusion", "opacity")
    labels = tuple("|".join(nm for nm, v in zip(names, row, strict=True) if v) for row in y)
    cohort = Predictions(sample_ids=tuple(f"S{i}" for i in range(n)), splits=("external",) * n,
                         patients=tuple(f"P{i // 2:03d}" for i in range(n)), labels=labels, probs=p,
                         label_names=names)
    doc = external_document(problem="multilabel", external=cohort, internal=None,
                            operating_point=OperatingPoint("multilabel", "youden", (0.5, 0.45)),
                            rule="youden", locked={}, cohort={}, attributes={}, skipped={}, n_boot=100,
                            recalibration="platt")
    section = doc["recalibration"]
    assert set(section["parameters"]["slope"]) == set(names)
    assert set(section["threshold_on_recalibrated_scale"]) == set(names)
    assert section["change"]["accuracy"] == 0.0  # per-label decisions unchanged
