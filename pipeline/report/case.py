"""One reviewed case: the record the report is built from and its summary row.

A :class:`CaseRecord` holds arrays (the windowed image, the explanation heatmap, the optional
lesion mask, optionally the image at more than 8 bits as an :class:`Intensity`) and the model's
decision. :func:`summarize` turns it into a :class:`CaseRow`,
the small array-free record the index page keeps for every case (so memory does not grow
with the images of all cases). The checks a record must pass before it is shown are in
:mod:`pipeline.report.case_checks` (:func:`~pipeline.report.case_checks.validate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: DICOM keywords that identify a patient or a study (PS3.15 Annex E basic profile, the ones
#: most likely to be passed by mistake). A case attribute with one of these keys is refused.
PHI_KEYWORDS: frozenset[str] = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs",
    "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
    "IssuerOfPatientID", "MedicalRecordLocator", "AccessionNumber", "StudyID",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy", "RequestingPhysician",
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime",
    "AcquisitionDateTime", "StationName", "DeviceSerialNumber", "StudyInstanceUID",
    "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID", "PatientComments",
    "AdditionalPatientHistory", "RequestAttributesSequence",
})

#: Categories the index groups for review (compared lower-case).
TRUE_POSITIVE, FALSE_POSITIVE = "true positive", "false positive"
TRUE_NEGATIVE, FALSE_NEGATIVE = "true negative", "false negative"

CORRECT, INCORRECT, UNKNOWN = "correct", "incorrect", "unknown"

#: Letters of DICOM Patient Orientation (0020,0020) and their opposites (H = head, F = feet).
OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


@dataclass(frozen=True, kw_only=True, eq=False)
class Intensity:
    """The image at more than 8 bits, so the page can re-window it (window/level).

    A displayed value is ``offset + scale * values`` in ``unit``; the page maps the window
    ``[center - width / 2, center + width / 2]`` linearly to black..white.

    Attributes:
        values: ``uint16`` (or ``uint8``) levels with the image's shape, white = dense.
        offset: Value of level 0, in ``unit``.
        scale: Value step of one level, in ``unit`` (> 0).
        unit: ``"HU"`` for CT, ``"%"`` for a radiograph (percent of its stored value range).
        window: ``(center, width)`` in ``unit``: the model's window; the page opens with it and
            "reset" returns to it.
        exact: ``window`` reproduces the model's 8-bit view (``False``: the model's VOI step was
            not linear, e.g. a VOI LUT or a sigmoid, and ``window`` is its closest linear fit).
        presets: Named windows, name -> ``(center, width)`` in ``unit`` (CT: lung, mediastinum,
            bone).
    """

    values: np.ndarray
    offset: float
    scale: float
    unit: str
    window: tuple[float, float]
    exact: bool = True
    presets: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def orientation_marks(orientation: Sequence[str]) -> tuple[str, str, str, str]:
    """Edge letters ``(top, bottom, left, right)`` of a 2D image from its Patient Orientation
    ``(row direction, column direction)``: the patient directions of increasing column and
    increasing row index, e.g. ``("L", "F")`` for a PA chest shown conventionally, whose patient
    right is on the viewer's left: ``("H", "F", "R", "L")``."""
    rows, cols = (str(v).upper() for v in orientation)
    flip = lambda s: "".join(OPPOSITE[c] for c in s)  # noqa: E731
    return flip(cols), cols, flip(rows), rows


@dataclass(frozen=True, kw_only=True, eq=False)
class CaseRecord:
    """Everything the report shows for one case.

    Attributes:
        sample_id: Pseudonymous sample id (``S...``); also the case page's file name, so only
            letters, digits, ``_``, ``.`` and ``-`` (first character a letter or digit).
        split: Dataset split (``"test"``, ``"val"``, ``"new"``...).
        true_label: Ground-truth label, or ``None`` when unknown (new studies).
        predicted_label: The model's decision at the operating threshold. Multi-label tasks
            (``multilabel=True`` in :func:`~pipeline.report.case_checks.validate`): the present
            labels joined by ``|``, or :data:`NONE_PRESENT` when no label is present;
            ``true_label`` likewise.
        probability: The score the decision compares to ``threshold``: the positive-class
            probability for binary tasks, the predicted class's probability otherwise, in [0, 1].
        probabilities: Every class's probability, label -> p (may be empty).
        threshold: Operating threshold in [0, 1] (chosen on validation), or ``None`` when the
            decision is an arg-max (multi-class).
        category: ``"true positive"``, ``"false positive"``, ``"true negative"``,
            ``"false negative"``, another free-text category, or ``None``.
        attributes: Non-PHI DICOM strings to display, keyword -> value (``Modality``,
            ``SeriesDescription``, ``ViewPosition``...). Escaped on the page; identifying
            keywords (:data:`PHI_KEYWORDS`) are refused.
        image: Windowed uint8 image at full resolution, white = dense: ``(H, W)`` for 2D, or
            ``(D, H, W)`` for 3D in the pipeline's canonical orientation (``d`` to Superior,
            ``h`` to Posterior, ``w`` to the patient's Left).
        heatmap: Explanation map, float in [0, 1] (values outside are clipped), same shape as
            ``image``; ``None`` when no explanation was computed.
        mask: Optional ground-truth lesion mask (non-zero = lesion), same shape as ``image``.
        method: Explanation method shown to the reader, e.g. ``"Grad-CAM"``.
        spacing: Optional pixel/voxel size in mm, one per image axis, so coronal and sagittal
            views keep their true aspect ratio.
        intensity: Optional higher-depth values behind ``image`` (window/level on the page);
            without it the page re-windows the 8-bit ``image`` itself.
        orientation: 2D only: DICOM Patient Orientation ``(row direction, column direction)``
            (letters L, R, A, P, H, F; e.g. ``("L", "F")``), from the header's Patient
            Orientation or Image Orientation (Patient); ``None`` when unknown (image files have
            no header): no R/L markers then.
        field_of_view: 3D only: the model's field of view on the image grid, ``(start, stop)``
            voxels per axis (outlined on the page; the heatmap is zero outside it).
        label_heatmaps: Multi-class/multi-label tasks: the explanation map of every label,
            label -> map shaped like ``image``; the page lets the reader choose which label's
            evidence is shown (``heatmap`` is the one shown first). Empty: one map only.
    """

    sample_id: str
    split: str
    true_label: str | None
    predicted_label: str
    probability: float
    image: np.ndarray
    heatmap: np.ndarray | None = None
    probabilities: Mapping[str, float] = field(default_factory=dict)
    threshold: float | None = None
    category: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    mask: np.ndarray | None = None
    method: str = "Grad-CAM"
    spacing: Sequence[float] | None = None
    intensity: Intensity | None = None
    orientation: Sequence[str] | None = None
    field_of_view: Sequence[Sequence[int]] | None = None
    label_heatmaps: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseRow:
    """The array-free summary of a case that the index page lists.

    Attributes:
        sample_id, split, true_label, predicted_label, probability, threshold, category:
            As in :class:`CaseRecord` (``category`` lower-cased).
        outcome: ``"correct"``, ``"incorrect"`` or ``"unknown"`` (no ground truth).
        margin: Distance of the decision from flipping: ``|probability - threshold|``, or
            the gap between the two largest class probabilities when there is no threshold.
        uncertain: With a threshold, the probabilities ``(low, high)`` around it within which
            a call is low-confidence (:func:`uncertain_interval`); None without a threshold.
        low_confidence: The probability lies strictly inside ``uncertain``; without a
            threshold, ``margin`` is below the report's low-confidence margin.
        thumbnail: PNG data URI of a small overlay, or ``""``.
    """

    sample_id: str
    split: str
    true_label: str | None
    predicted_label: str
    probability: float
    threshold: float | None
    category: str | None
    outcome: str
    margin: float
    uncertain: tuple[float, float] | None
    low_confidence: bool
    thumbnail: str = ""


#: A multi-label case in which no label is present (shown as such on the pages).
NONE_PRESENT = "none of the labels"


def summarize(case: CaseRecord, *, low_confidence_margin: float, positive_label: str | None = None,
              thumbnail: str = "") -> CaseRow:
    """The index row of a (validated) case.

    Args:
        case: A case that passed :func:`~pipeline.report.case_checks.validate`.
        low_confidence_margin: The uncertain band: with a threshold, its half-width at a
            threshold of 0.5, carried to the case's threshold on the log-odds scale
            (:func:`uncertain_interval`); without one, the largest low-confidence gap between
            the two most likely labels.
        positive_label: For binary tasks, the label a positive call means; when given, a case
            without a ``category`` but with a ground truth gets one ("false positive"...).
        thumbnail: Data URI of the case's thumbnail, kept on the row.
    """
    if case.true_label is None:
        outcome = UNKNOWN
    else:
        outcome = CORRECT if case.true_label == case.predicted_label else INCORRECT
    margin = decision_margin(case.probability, case.threshold, case.probabilities)
    if case.threshold is None:
        uncertain, low_confidence = None, margin < low_confidence_margin
    else:
        uncertain = uncertain_interval(case.threshold, low_confidence_margin)
        low_confidence = uncertain[0] < case.probability < uncertain[1]
    category = case.category.strip().lower() if case.category else None
    if category is None and positive_label is not None and outcome != UNKNOWN:
        called = case.predicted_label == positive_label
        category = (("true " if outcome == CORRECT else "false ")
                    + ("positive" if called else "negative"))
    return CaseRow(
        sample_id=case.sample_id, split=case.split, true_label=case.true_label,
        predicted_label=case.predicted_label, probability=float(case.probability),
        threshold=None if case.threshold is None else float(case.threshold),
        category=category, outcome=outcome, margin=margin, uncertain=uncertain,
        low_confidence=bool(low_confidence), thumbnail=thumbnail,
    )


def uncertain_interval(threshold: float, band: float) -> tuple[float, float]:
    """The probabilities ``(low, high)`` around ``threshold`` within which a call is uncertain.

    ``band`` is the half-width at a threshold of 0.5 (0.1: 0.40-0.60), carried to other
    thresholds on the log-odds scale, on which a classifier's scores move evenly: 0.1 gives
    0.066-0.137 around a threshold of 0.096 and 0.86-0.93 around 0.9. A band of fixed width in
    probability would flag every negative call below a low threshold (0.001 is within 0.1 of
    0.096) and sit partly beyond 1 above a high one. A band of 0.5 or more covers (0, 1).
    """
    if band >= 0.5:
        return 0.0, 1.0
    centre, half = _logit(threshold), math.log((0.5 + band) / (0.5 - band))
    return _sigmoid(centre - half), _sigmoid(centre + half)


def flip_distance(row: CaseRow) -> float:
    """How far a call is from flipping on the scale its uncertain band uses: the log-odds
    distance to the threshold, or the runner-up gap without a threshold."""
    if row.threshold is None:
        return row.margin
    return abs(_logit(row.probability) - _logit(row.threshold))


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def decision_margin(probability: float, threshold: float | None,
                    probabilities: Mapping[str, float]) -> float:
    """How far a decision is from flipping, in probability units (0 = on the fence).

    ``|probability - threshold|`` when there is a threshold; otherwise the gap between the
    two largest class probabilities (1.0 when fewer than two are known).
    """
    if threshold is not None:
        return abs(float(probability) - float(threshold))
    top = sorted((float(p) for p in probabilities.values()), reverse=True)
    return top[0] - top[1] if len(top) >= 2 else 1.0
