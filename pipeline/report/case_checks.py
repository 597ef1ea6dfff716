"""The checks a :class:`~pipeline.report.case.CaseRecord` must pass before the report shows it.

:func:`validate` refuses, with a message naming the case and the field, a sample id that is not a
safe file name, labels outside the task's (:func:`label_set_ok`), a category that contradicts the
truth, scores outside [0, 1], arrays of the wrong kind, shape or dtype, non-finite heatmaps, a
malformed :class:`~pipeline.report.case.Intensity`, orientation or field of view, and attributes
that identify the patient (:data:`~pipeline.report.case.PHI_KEYWORDS`).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence

import numpy as np

from pipeline.report.case import (
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    NONE_PRESENT,
    OPPOSITE,
    PHI_KEYWORDS,
    TRUE_NEGATIVE,
    TRUE_POSITIVE,
    CaseRecord,
    Intensity,
)

_KNOWN_CATEGORIES = (TRUE_POSITIVE, FALSE_POSITIVE, TRUE_NEGATIVE, FALSE_NEGATIVE)

#: Sample ids become file names; pseudonyms such as ``S000123`` match.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def label_set_ok(value: str, labels: Sequence[str], *, multilabel: bool) -> bool:
    """``value`` is one of ``labels`` or, for a multi-label task, ``|``-joined labels or
    :data:`NONE_PRESENT`."""
    if value in labels:
        return True
    if not multilabel:
        return False
    return value == NONE_PRESENT or all(part in labels for part in value.split("|"))


def validate(case: CaseRecord, *, kind: str, labels: Sequence[str], multilabel: bool = False) -> None:
    """Check a case against the report's kind and labels.

    Raises:
        ValueError: Naming the case, the bad field and what was expected.
        TypeError: ``case`` is not a :class:`CaseRecord`.
    """
    if not isinstance(case, CaseRecord):
        raise TypeError(f"cases must be CaseRecord objects. Received: {type(case).__name__}")
    sid = case.sample_id
    if not isinstance(sid, str) or not _SAFE_ID.fullmatch(sid):
        raise ValueError("sample_id must be a pseudonymous id of letters, digits, '_', '.', '-' "
                         f"(1-128 characters, starting with a letter or digit). Received: {sid!r}")
    _check_labels(case, labels, multilabel=multilabel)
    _check_scores(case, labels)
    _check_arrays(case, kind)
    for key, value in case.attributes.items():
        if key in PHI_KEYWORDS:
            raise ValueError(f"case {sid}: attribute {key!r} identifies the patient or study and "
                             "may not appear in a report; pass only non-identifying keywords")
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"case {sid}: attributes must map str to str. "
                             f"Received: {key!r}: {type(value).__name__}")


def _check_labels(case: CaseRecord, labels: Sequence[str], *, multilabel: bool) -> None:
    sid = case.sample_id
    allowed = list(labels) + (["labels joined by '|'", NONE_PRESENT] if multilabel else [])
    if not label_set_ok(case.predicted_label, labels, multilabel=multilabel):
        raise ValueError(f"case {sid}: predicted_label must be one of {allowed}. "
                         f"Received: {case.predicted_label!r}")
    if case.true_label is not None and not label_set_ok(case.true_label, labels, multilabel=multilabel):
        raise ValueError(f"case {sid}: true_label must be one of {allowed} or None. "
                         f"Received: {case.true_label!r}")
    for name, keys in (("probabilities", case.probabilities), ("label_heatmaps", case.label_heatmaps)):
        unknown = sorted(set(keys) - set(labels))
        if unknown:
            raise ValueError(f"case {sid}: {name} has labels not in {list(labels)}. "
                             f"Received: {unknown}")
    category = (case.category or "").strip().lower()
    if category in _KNOWN_CATEGORIES and case.true_label is not None:
        correct = case.true_label == case.predicted_label
        if correct != category.startswith("true"):
            raise ValueError(f"case {sid}: category {case.category!r} contradicts true_label "
                             f"{case.true_label!r} and predicted_label {case.predicted_label!r}")


def _check_scores(case: CaseRecord, labels: Sequence[str]) -> None:
    sid = case.sample_id
    named = {"probability": case.probability, "threshold": case.threshold,
             **{f"probabilities[{k!r}]": v for k, v in case.probabilities.items()}}
    for name, value in named.items():
        if value is None and name == "threshold":
            continue
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
        if not ok or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"case {sid}: {name} must be a number in [0, 1]. Received: {value!r}")


def _check_arrays(case: CaseRecord, kind: str) -> None:
    sid = case.sample_id
    image = case.image
    ndim = 2 if kind == "2d" else 3
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != ndim:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"case {sid}: image must be a {ndim}D uint8 array for a {kind} report "
                         f"({'(H, W)' if ndim == 2 else '(D, H, W)'}). "
                         f"Received: shape={shape}, dtype={dtype}")
    if min(image.shape) < 1:
        raise ValueError(f"case {sid}: image is empty. Received: shape={image.shape}")
    arrays = {"heatmap": case.heatmap, "mask": case.mask,
              **{f"label_heatmaps[{k!r}]": v for k, v in case.label_heatmaps.items()}}
    for name, arr in arrays.items():
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.shape != image.shape:
            raise ValueError(f"case {sid}: {name} must have the image's shape {image.shape}. "
                             f"Received: {arr.shape}")
        if name != "mask" and not np.isfinite(arr).all():
            raise ValueError(f"case {sid}: {name} has NaN or infinite values")
    if case.label_heatmaps and case.heatmap is None:
        raise ValueError(f"case {sid}: label_heatmaps needs heatmap (the map shown first)")
    if case.spacing is not None:
        spacing = [float(s) for s in case.spacing]
        if len(spacing) != ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"case {sid}: spacing must be {ndim} positive numbers (mm). "
                             f"Received: {case.spacing!r}")
    if case.intensity is not None:
        _check_intensity(sid, case.intensity, image.shape)
    _check_geometry(case, kind)


def _check_intensity(sid: str, intensity: Intensity, shape: tuple[int, ...]) -> None:
    if not isinstance(intensity, Intensity):
        raise ValueError(f"case {sid}: intensity must be an Intensity. "
                         f"Received: {type(intensity).__name__}")
    values = intensity.values
    if not isinstance(values, np.ndarray) or values.dtype not in (np.uint8, np.uint16) \
            or values.shape != shape:
        raise ValueError(f"case {sid}: intensity.values must be uint8 or uint16 with the image's "
                         f"shape {shape}. Received: shape={getattr(values, 'shape', None)}, "
                         f"dtype={getattr(values, 'dtype', type(values).__name__)}")
    windows = {"window": intensity.window, **{f"presets[{k!r}]": v for k, v in intensity.presets.items()}}
    numbers_ok = all(math.isfinite(float(v)) for v in (intensity.offset, intensity.scale))
    for name, window in windows.items():
        try:
            center, width = (float(v) for v in window)
            ok = math.isfinite(center) and math.isfinite(width) and width > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"case {sid}: intensity.{name} must be (center, width) with width > 0. "
                             f"Received: {window!r}")
    if not numbers_ok or float(intensity.scale) <= 0:
        raise ValueError(f"case {sid}: intensity.offset and .scale must be finite, scale > 0. "
                         f"Received: offset={intensity.offset!r}, scale={intensity.scale!r}")


def _check_geometry(case: CaseRecord, kind: str) -> None:
    sid, shape = case.sample_id, case.image.shape
    if case.orientation is not None:
        letters = [str(v).upper() for v in case.orientation] if kind == "2d" else []
        if len(letters) != 2 or not all(v and set(v) <= set(OPPOSITE) for v in letters):
            raise ValueError(f"case {sid}: orientation must be 2 DICOM direction strings of "
                             "L, R, A, P, H, F (row, column) and is for 2D images only. "
                             f"Received: {case.orientation!r}")
    if case.field_of_view is not None:
        fov = [tuple(int(v) for v in pair) for pair in case.field_of_view]
        ok = kind == "3d" and len(fov) == 3 and all(
            len(p) == 2 and 0 <= p[0] < p[1] <= n for p, n in zip(fov, shape, strict=False))
        if not ok:
            raise ValueError(f"case {sid}: field_of_view must be 3 (start, stop) voxel ranges inside "
                             f"the volume {shape} (3D only). Received: {case.field_of_view!r}")
