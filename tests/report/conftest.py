"""Synthetic cases and built reports shared by the report tests.

2D cases are 96x128 images with a Gaussian "hot spot" heatmap centred at (HOT_YX) and a cold
corner at (COLD_YX); 3D cases are (D, H, W) = (12, 20, 24) volumes with a hot blob. Hostile
strings go into attributes, notes and model-card values to check escaping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.report import CaseRecord, build_report

LABELS = ["normal", "opacity"]
SHAPE_2D = (96, 128)
HOT_YX = (30, 40)
COLD_YX = (85, 115)
SHAPE_3D = (12, 20, 24)
HOT_ZYX = (7, 6, 16)
XSS = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">"
#: A PatientName-shaped value with markup, passed under a non-identifying keyword.
PN_LIKE = "DOE^JANE<script>window.__xss=3</script>"
METRICS = {
    "auroc": 0.91, "auroc_ci_low": 0.84, "auroc_ci_high": 0.96,
    "recall": 0.8, "recall_ci_low": 0.6, "recall_ci_high": 0.93,
    "specificity": 0.85, "specificity_ci": [0.7, 0.95],
    "precision": 0.77, "precision_ci_low": 0.58, "precision_ci_high": 0.9,
    "f1": 0.78, "accuracy": 0.83, "ece": 0.06, "iou": 0.41, "threshold": 0.5,
    "confusion_matrix": [[30, 5], [4, 21]],
}
CARD = {"task": "cxr", "backbone": "resnet18", "input_shape": [96, 128, 1], "weights": None,
        "training_data_sha256": "ab" * 32, "params": {"width": 32, "note": XSS},
        "val_metrics": {"auroc": 0.9}}
# (sample_id, split, truth, prediction, probability, category)
SPECS_2D = [
    ("S0001", "test", "opacity", "opacity", 0.93, "true positive"),
    ("S0002", "test", "normal", "opacity", 0.71, "false positive"),
    ("S0003", "test", "opacity", "normal", 0.12, "false negative"),
    ("S0004", "test", "normal", "normal", 0.05, "true negative"),
    ("S0005", "new", None, "opacity", 0.52, None),  # ground truth unknown, near the threshold
]


def gaussian(shape: tuple[int, ...], centre: tuple[int, ...], sigma: float) -> np.ndarray:
    grids = np.indices(shape, dtype=np.float32)
    d2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
    return np.exp(-d2 / (2.0 * sigma**2)).astype(np.float32)


def image_2d(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.arange(SHAPE_2D[1])[None, :]
    base = 110 + 50 * np.sin(x / 9.0) + rng.normal(0, 8, SHAPE_2D)
    return np.clip(base, 0, 255).astype(np.uint8)


def case_2d(spec: tuple, seed: int = 0, **overrides) -> CaseRecord:
    sid, split, truth, pred, p, category = spec
    heat = gaussian(SHAPE_2D, HOT_YX, 10.0)
    fields = dict(
        sample_id=sid, split=split, true_label=truth, predicted_label=pred, probability=p,
        probabilities={"normal": 1 - p, "opacity": p}, threshold=0.5, category=category,
        attributes={"Modality": "DX", "SeriesDescription": XSS, "BodyPartExamined": PN_LIKE},
        image=image_2d(seed), heatmap=heat, mask=(heat > 0.5) if truth == "opacity" else None,
    )
    fields.update(overrides)
    return CaseRecord(**fields)


def cases_2d() -> Iterator[CaseRecord]:
    """A generator, so the builder's single-pass streaming is exercised."""
    for i, spec in enumerate(SPECS_2D):
        yield case_2d(spec, seed=i)


def volume_3d(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    _, h, w = np.indices(SHAPE_3D)
    body = ((h - 10) ** 2 / 81 + (w - 12) ** 2 / 121) < 1
    return np.clip(40 + 120 * body + rng.normal(0, 6, SHAPE_3D), 0, 255).astype(np.uint8)


def case_3d(sid: str, *, truth: str | None = "opacity", heat: bool = True, **overrides) -> CaseRecord:
    hot = gaussian(SHAPE_3D, HOT_ZYX, 2.5)
    fields = dict(
        sample_id=sid, split="test", true_label=truth, predicted_label="opacity", probability=0.8,
        probabilities={"normal": 0.2, "opacity": 0.8}, threshold=0.45, image=volume_3d(len(sid)),
        heatmap=hot if heat else None, mask=hot > 0.6, spacing=(5.0, 2.0, 2.0),
        method="Grad-CAM 3D", attributes={"Modality": "CT", "SeriesDescription": XSS},
    )
    fields.update(overrides)
    return CaseRecord(**fields)


def build_2d(out: Path) -> Path:
    return build_report(out, task_name="cxr <b>demo</b>", kind="2d", labels=LABELS, cases=cases_2d(),
                        card=CARD, metrics=METRICS, notes=["Synthetic data.", XSS])


def build_3d(out: Path) -> Path:
    cases = [case_3d("S1001"), case_3d("S1002", truth=None), case_3d("S1003", heat=False)]
    return build_report(out, task_name="ct", kind="3d", labels=LABELS, cases=cases, card=CARD,
                        metrics=METRICS)


@pytest.fixture(scope="session")
def report_2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a built 2D report (read-only for tests)."""
    out = tmp_path_factory.mktemp("reports") / "cxr"
    build_2d(out)
    return out


@pytest.fixture(scope="session")
def report_3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a built 3D report (read-only for tests)."""
    out = tmp_path_factory.mktemp("reports") / "ct"
    build_3d(out)
    return out


# --- Index figures, subgroup table and thumbnails (issue 11): a report built with them. ---
#: A subgroup value with markup, to check that the table escapes it.
SUBGROUP_XSS = "DX<script>window.__xss=4</script>"


def performance_inputs(seed: int = 3) -> dict:
    """Curves (as the evaluate stage writes them), operating points and a subgroups section."""
    from pipeline.evaluate import calibration_rows, pr_rows, roc_rows
    from pipeline.report.performance import OperatingMark

    rng = np.random.default_rng(seed)
    y = rng.random(80) < 0.4
    p = np.clip(0.35 * y + 0.65 * rng.random(80), 0, 1)
    targets, probs = np.stack([~y, y], axis=1), np.stack([1 - p, p], axis=1)
    curves = {"roc": roc_rows("binary", targets, probs, LABELS),
              "pr": pr_rows("binary", targets, probs, LABELS),
              "calibration": calibration_rows("binary", targets, probs, LABELS, n_bins=10)}
    block = {"n_positive": 12, "tp": 10, "fp": 3, "tn": 15, "fn": 2, "auroc": 0.88,
             "auroc_ci_low": 0.74, "auroc_ci_high": 0.97, "sensitivity": 0.833,
             "sensitivity_ci_low": 0.516, "sensitivity_ci_high": 0.979, "specificity": 0.833,
             "specificity_ci_low": 0.586, "specificity_ci_high": 0.964}
    subgroups = {
        "split": "test", "level": 0.95, "n_boot": 200, "min_count": 10, "max_values": 8,
        "max_distinct": 20, "classes": ["opacity"],
        "attributes": {
            "modality": {"values": {"CR": {"n": 30, "n_patients": 11, "classes": {"opacity": block}},
                                    SUBGROUP_XSS: {"n": 41, "n_patients": 15,
                                                   "classes": {"opacity": block}}},
                         "omitted": {"values": 1, "n": 4}, "missing": 5}},
        "skipped": {"attr_site": "57 distinct values (more than 20): free text or identifiers"},
    }
    marks = {"opacity": OperatingMark(0.5, sensitivity=0.8, specificity=0.85, precision=0.77)}
    return {"curves": curves, "operating_points": marks, "subgroups": subgroups}


@pytest.fixture(scope="session")
def report_2d_performance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built 2D report with figures and the subgroup table (read-only for tests)."""
    out = tmp_path_factory.mktemp("reports") / "cxr"
    build_report(out, task_name="cxr <b>demo</b>", kind="2d", labels=LABELS, cases=cases_2d(),
                 card=CARD, metrics=METRICS, notes=["Synthetic data."], **performance_inputs())
    return out
