"""CaseRecord checks, the index row it becomes, and what its page embeds."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.report import build_report, imaging
from pipeline.report.case import (
    CaseRecord,
    Intensity,
    decision_margin,
    orientation_marks,
    summarize,
    uncertain_interval,
)
from pipeline.report.case_checks import validate
from tests.report.conftest import LABELS, SHAPE_2D, SPECS_2D, case_2d, case_3d


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


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


@given(t=st.floats(1e-4, 1 - 1e-4), band=st.floats(0.001, 0.499))
def test_uncertain_band_is_the_half_width_at_one_half_carried_on_the_log_odds_scale(t, band) -> None:
    low, high = uncertain_interval(t, band)
    assert 0.0 < low < t < high < 1.0
    half = _logit(0.5 + band)
    assert _logit(high) - _logit(t) == pytest.approx(half, rel=1e-6)
    assert _logit(t) - _logit(low) == pytest.approx(half, rel=1e-6)
    wider = uncertain_interval(t, min(0.4995, band * 1.5))
    assert wider[0] <= low and high <= wider[1]


def test_uncertain_band_at_one_half_is_the_plain_band_and_a_half_or_more_covers_all() -> None:
    assert uncertain_interval(0.5, 0.1) == pytest.approx((0.4, 0.6))
    assert uncertain_interval(0.3, 0.5) == (0.0, 1.0)
    low, high = uncertain_interval(0.0, 0.1)  # a threshold at the end still gives a band
    assert 0.0 < low < high < 1e-6


def test_a_clear_negative_below_a_low_threshold_is_not_low_confidence() -> None:
    """The cxr demo's Youden threshold is 0.096. A fixed band of 0.1 flagged every call below it
    (p = 0.001 is 0.095 from it) and calls up to 0.196; on the log-odds scale the band is
    0.066-0.137, and a call far below or above it is confident."""
    def row(p: float):
        return summarize(case_2d(("s", "test", "normal", "normal" if p < 0.096 else "opacity", p, None),
                                 threshold=0.096), low_confidence_margin=0.1)

    assert not row(0.001).low_confidence and not row(0.19).low_confidence
    assert row(0.08).low_confidence and row(0.12).low_confidence
    assert row(0.001).margin == pytest.approx(0.095)  # still shown in probability units
    assert row(0.08).uncertain == pytest.approx((0.0661, 0.1374), abs=1e-4)
    no_threshold = summarize(case_2d(SPECS_2D[0], threshold=None), low_confidence_margin=0.1)
    assert no_threshold.uncertain is None


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


def _intensity(shape: tuple[int, ...], **overrides) -> Intensity:
    fields = dict(values=np.zeros(shape, np.uint16), offset=0.0, scale=100 / 4095, unit="%",
                  window=(50.0, 100.0))
    fields.update(overrides)
    return Intensity(**fields)


@pytest.mark.parametrize(("overrides", "match"), [
    ({"intensity": _intensity((4, 4))}, r"intensity.values must be uint8 or uint16 with the image's shape"),
    ({"intensity": _intensity(SHAPE_2D, values=np.zeros(SHAPE_2D, np.int16))}, "uint8 or uint16"),
    ({"intensity": _intensity(SHAPE_2D, window=(50.0, 0.0))}, r"intensity.window must be \(center, width\)"),
    ({"intensity": _intensity(SHAPE_2D, presets={"Bone": (1.0, -2.0)})}, r"presets\['Bone'\]"),
    ({"intensity": _intensity(SHAPE_2D, scale=0.0)}, "scale > 0"),
    ({"orientation": ("L", "X")}, "orientation must be 2 DICOM direction strings"),
    ({"orientation": ("L",)}, "orientation must be 2"),
    ({"field_of_view": ((0, 5), (0, 5))}, "field_of_view must be 3"),
])
def test_bad_display_fields_are_refused(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate(case_2d(SPECS_2D[0], **overrides), kind="2d", labels=LABELS)


def test_display_fields_fit_their_kind() -> None:
    validate(case_2d(SPECS_2D[0], intensity=_intensity(SHAPE_2D), orientation=("L", "FP")),
             kind="2d", labels=LABELS)
    validate(case_3d("S1", field_of_view=((1, 12), (0, 20), (2, 22))), kind="3d", labels=LABELS)
    with pytest.raises(ValueError, match="2D images only"):
        validate(case_3d("S1", orientation=("L", "F")), kind="3d", labels=LABELS)
    with pytest.raises(ValueError, match="inside the volume"):
        validate(case_3d("S1", field_of_view=((0, 13), (0, 20), (0, 24))), kind="3d", labels=LABELS)


def test_orientation_marks_put_the_opposite_letter_on_the_near_edge() -> None:
    # PA chest shown conventionally: rows run to the patient's left, columns to the feet.
    assert orientation_marks(("L", "F")) == ("H", "F", "R", "L")
    assert orientation_marks(("lp", "F")) == ("H", "F", "RA", "LP")


def _embedded(html: str) -> tuple[dict, list[str]]:
    """The page's image/volume data block and every PNG it embeds (base64, data URIs included)."""
    block = json.loads(re.search(r'id="(?:image|volume)-data">(.+?)</script>', html, re.S).group(1))
    uris = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    packed = [block[k] for k in ("base", "heat", "outline", "mask") if block.get(k)]
    return block, uris + packed


def _grey(b64: str) -> np.ndarray:
    """A PNG's first channel (an RGBA thumbnail or colour bar has other channels)."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))
    return pixels[..., 0] if pixels.ndim == 3 else pixels


@pytest.mark.parametrize("which", ["2d", "3d"])
def test_base_image_is_embedded_once_per_page(which: str, report_2d: Path, report_3d: Path) -> None:
    root = report_2d if which == "2d" else report_3d
    for path in sorted((root / "cases").glob("*.html")):
        html = path.read_text(encoding="utf-8")
        block, pngs = _embedded(html)
        assert html.count(block["base"]) == 1, path.name
        base = _grey(block["base"])
        same = [p for p in pngs if np.array_equal(_grey(p), base)]
        assert len(same) == 1, f"{path.name}: the base image is embedded {len(same)} times"
        assert html.count("<img ") == (1 if block["heat"] else 0)  # the colour bar; images are canvases


def _demo_like_2d(seed: int = 0) -> CaseRecord:
    """A 256 x 256 radiograph-like case at 12 bits (smooth anatomy plus quantum noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.indices((256, 256)) / 256.0
    full = np.clip(0.5 + 0.3 * np.sin(6 * x) * np.cos(4 * y) + rng.normal(0, 0.004, (256, 256)), 0, 1)
    shown = np.clip((full - 0.15) / 0.7, 0, 1)
    heat = np.exp(-((y - 0.4) ** 2 + (x - 0.6) ** 2) / 0.02).astype(np.float32)
    return case_2d(SPECS_2D[0], image=np.rint(shown * 255).astype(np.uint8), heatmap=heat, mask=None,
                   intensity=imaging.radiograph_intensity(full, shown, bits=12))


#: README "Page size": bytes per image pixel (or voxel) above a fixed part of the page.
BUDGET_2D, BUDGET_3D, BUDGET_FIXED = 2.5, 2.0, 80_000


def test_demo_like_pages_stay_within_the_page_size_budget(tmp_path: Path) -> None:
    build_report(tmp_path / "cxr", task_name="cxr", kind="2d", labels=LABELS, cases=[_demo_like_2d()])
    page = (tmp_path / "cxr" / "cases" / "S0001.html").stat().st_size
    assert page <= BUDGET_FIXED + BUDGET_2D * 256 * 256, page
    rng = np.random.default_rng(0)
    hu = np.where(np.indices((24, 64, 64))[2] > 10, 40.0, -1000.0) + rng.normal(0, 12, (24, 64, 64))
    volume = case_3d("S3001", image=np.zeros((24, 64, 64), np.uint8), heatmap=None, mask=None,
                     intensity=imaging.hu_intensity(hu, (-600, 1500)))
    build_report(tmp_path / "ct", task_name="ct", kind="3d", labels=LABELS, cases=[volume])
    page = (tmp_path / "ct" / "cases" / "S3001.html").stat().st_size
    assert page <= BUDGET_FIXED + BUDGET_3D * hu.size, page


def test_the_least_certain_group_orders_by_the_scale_of_the_band() -> None:
    """Around a threshold of 0.096, 0.13 is nearer to flipping than 0.07 on the log-odds scale
    (0.34 vs 0.35), though farther in probability (0.034 vs 0.026): the group lists 0.13 first."""
    from pipeline.report.case import flip_distance
    from pipeline.report.review import Review

    review = Review(positive_label="opacity", limit=8)
    rows = {}
    for sid, p in (("A", 0.07), ("B", 0.13), ("C", 0.001)):
        pred = "opacity" if p >= 0.096 else "normal"
        rows[sid] = summarize(case_2d((sid, "test", pred, pred, p, None), threshold=0.096),
                              low_confidence_margin=0.1)
        review.offer(rows[sid])
    assert flip_distance(rows["B"]) < flip_distance(rows["A"]) and rows["A"].margin < rows["B"].margin
    (group,) = [g for g in review.for_page() if g["key"] == "uncertain"]
    assert [r.sample_id for r in group["rows"]] == ["B", "A"] and group["total"] == 2
