"""CaseRecord checks and the index row it becomes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.report.case import CaseRecord, decision_margin, summarize, validate
from tests.report.conftest import LABELS, SPECS_2D, case_2d, case_3d


def test_valid_cases_pass() -> None:
    for spec in SPECS_2D:
        validate(case_2d(spec), kind="2d", labels=LABELS)
    numpy_scores = case_2d(SPECS_2D[0], probability=np.float32(0.93), threshold=np.float64(0.5),
                           probabilities={"opacity": np.float32(0.93)})
    validate(numpy_scores, kind="2d", labels=LABELS)
    validate(case_3d("S1"), kind="3d", labels=LABELS)


@pytest.mark.parametrize(("overrides", "match"), [
    ({"sample_id": "../etc/passwd"}, "sample_id must be a pseudonymous id"),
    ({"sample_id": "S 1"}, "sample_id"),
    ({"sample_id": ""}, "sample_id"),
    ({"predicted_label": "cat"}, r"predicted_label must be one of \['normal', 'opacity'\]"),
    ({"true_label": "cat"}, "true_label must be one of"),
    ({"probabilities": {"cat": 0.5}}, "probabilities has labels not in"),
    ({"probability": 1.5}, "probability must be a number in"),
    ({"probability": float("nan")}, "probability must be a number in"),
    ({"probability": True}, "probability must be a number in"),
    ({"threshold": -0.1}, "threshold must be a number in"),
    ({"category": "true positive", "true_label": "normal"}, "contradicts"),
    ({"image": np.zeros((4, 4), np.float32)}, r"image must be a 2D uint8 array .*dtype=float32"),
    ({"image": np.zeros((2, 4, 4), np.uint8)}, "image must be a 2D uint8"),
    ({"heatmap": np.zeros((4, 4), np.float32)}, r"heatmap must have the image's shape \(96, 128\)"),
    ({"heatmap": np.full((96, 128), np.nan, np.float32)}, "NaN"),
    ({"mask": np.zeros((96, 127), bool)}, "mask must have the image's shape"),
    ({"spacing": (1.0,)}, "spacing must be 2 positive numbers"),
    ({"attributes": {"PatientName": "DOE^JANE"}}, "'PatientName' identifies the patient"),
    ({"attributes": {"AccessionNumber": "ACC1"}}, "'AccessionNumber'"),
    ({"attributes": {"Modality": 3}}, "attributes must map str to str"),
])
def test_bad_cases_are_refused_with_the_case_and_field_named(overrides: dict, match: str) -> None:
    case = case_2d(SPECS_2D[0], **overrides)
    with pytest.raises(ValueError, match=match) as info:
        validate(case, kind="2d", labels=LABELS)
    if "attributes" in overrides and "Modality" not in overrides["attributes"]:
        assert "DOE" not in str(info.value) and "ACC1" not in str(info.value)  # never echo PHI


def test_non_case_objects_are_refused() -> None:
    with pytest.raises(TypeError, match="CaseRecord"):
        validate({"sample_id": "S1"}, kind="2d", labels=LABELS)  # type: ignore[arg-type]


def test_summary_row_outcome_margin_and_category() -> None:
    rows = [summarize(case_2d(s), low_confidence_margin=0.1) for s in SPECS_2D]
    assert [r.outcome for r in rows] == ["correct", "incorrect", "incorrect", "correct", "unknown"]
    assert [r.category for r in rows] == ["true positive", "false positive", "false negative",
                                          "true negative", None]
    assert rows[0].margin == pytest.approx(0.43) and not rows[0].low_confidence
    assert rows[4].margin == pytest.approx(0.02) and rows[4].low_confidence
    derived = summarize(case_2d(SPECS_2D[1], category=None), low_confidence_margin=0.1,
                        positive_label="opacity")
    assert derived.category == "false positive"
    unknown = summarize(case_2d(SPECS_2D[4]), low_confidence_margin=0.1, positive_label="opacity")
    assert unknown.category is None  # no truth, no category


probs = st.floats(0.0, 1.0, allow_nan=False)


@given(p=probs, t=probs)
def test_margin_with_threshold_is_the_distance_to_it(p: float, t: float) -> None:
    m = decision_margin(p, t, {})
    assert m == pytest.approx(abs(p - t))
    assert 0.0 <= m <= 1.0


@given(ps=st.lists(probs, min_size=2, max_size=6))
def test_margin_without_threshold_is_the_top_two_gap(ps: list[float]) -> None:
    named = {f"c{i}": p for i, p in enumerate(ps)}
    m = decision_margin(max(ps), None, named)
    top = sorted(ps, reverse=True)
    assert m == pytest.approx(top[0] - top[1]) and m >= 0.0


def test_record_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        CaseRecord("S1", "test", None, "normal", 0.1, np.zeros((2, 2), np.uint8))  # type: ignore[misc]
    case = case_2d(SPECS_2D[0])
    with pytest.raises(AttributeError):
        case.probability = 0.2  # type: ignore[misc]
