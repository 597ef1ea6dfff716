"""Views of the test performance for the index page: ROC, precision-recall and reliability
figures (inline SVG, see :mod:`pipeline.report.svg`) and the subgroup table.

Inputs are plain data as the evaluate stage writes them: the plot rows of
``eval/<task>/plots/{roc,pr,calibration}.json`` (flat rows with a ``class`` column; binary tasks
hold the positive class only, other tasks one curve per class) and the ``subgroups`` section of
``metrics/<task>.json``. Nothing here recomputes a metric that the evaluate stage measured;
areas under the drawn curves are summed from the plotted points (they equal the AUROC and the
average precision of the metrics file).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.report.svg import PALETTE, Axis, Guide, Marker, Series, line_chart
from pipeline.report.tables import format_number

#: Most curves per figure (one colour each); further classes are left out, and a note says so.
MAX_CURVES = len(PALETTE)
_DOT_MIN, _DOT_MAX = 2.5, 8.0
#: Display names of the coded manifest columns; ``attr_<name>`` columns read ``name (labels.csv)``.
_ATTRIBUTE_NAMES = {"modality": "Modality", "view_position": "View position",
                    "manufacturer": "Manufacturer"}
_ATTRIBUTE_PREFIX = "attr_"
_NAMES = {"roc": "ROC figure", "pr": "precision-recall figure", "calibration": "reliability diagram"}


@dataclass(frozen=True)
class OperatingMark:
    """A class's operating point on the test set: the threshold (chosen on validation) and the
    rates it gave there (``None`` where undefined)."""

    threshold: float
    sensitivity: float | None = None
    specificity: float | None = None
    precision: float | None = None


@dataclass(frozen=True)
class Figure:
    """One chart for the page: ``svg`` is markup with every text already escaped."""

    key: str
    title: str
    caption: str
    svg: str


@dataclass(frozen=True)
class SubgroupRow:
    """One attribute value (and class) of the subgroup table, numbers formatted as text."""

    attribute: str
    value: str
    label: str
    n: str
    n_patients: str
    n_positive: str
    auroc: str
    auroc_ci: str
    sensitivity: str
    sensitivity_ci: str
    specificity: str
    specificity_ci: str


@dataclass(frozen=True)
class SubgroupTable:
    """The subgroup table: rows, the classes measured, and the notes that qualify them."""

    rows: list[SubgroupRow]
    classes: list[str]
    notes: list[str]


def performance_figures(curves: Mapping[str, Sequence[Mapping[str, Any]]], *,
                        marks: Mapping[str, OperatingMark] | None = None,
                        prevalence: Mapping[str, float] | None = None
                        ) -> tuple[list[Figure], list[str]]:
    """The ROC, precision-recall and reliability figures that have data, and notes about them.

    Args:
        curves: ``{"roc": rows, "pr": rows, "calibration": rows}`` (any may be missing).
        marks: Class -> its operating point, marked on the ROC and PR curves.
        prevalence: Class -> share of test cases with it; drawn as the no-skill line of the PR
            figure when it shows one class.

    Returns:
        ``(figures, notes)``.
    """
    marks, prevalence = dict(marks or {}), dict(prevalence or {})
    figures: list[Figure] = []
    notes: list[str] = []
    for key, build in (("roc", _roc), ("pr", _pr), ("calibration", _reliability)):
        groups = _by_class(curves.get(key) or ())
        if not groups:
            continue
        if len(groups) > MAX_CURVES:
            notes.append(f"The {_NAMES[key]} shows the first {MAX_CURVES} of {len(groups)} classes.")
            groups = dict(list(groups.items())[:MAX_CURVES])
        figures.append(build(groups, marks, prevalence))
    return figures, notes


def _by_class(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row.get("class", "")), []).append(row)
    return groups


def _xy(row: Mapping[str, Any], x: str, y: str) -> tuple[float, float]:
    def val(v: Any) -> float:
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan

    return val(row.get(x)), val(row.get(y))


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _roc(groups: Mapping[str, list[Mapping[str, Any]]], marks: Mapping[str, OperatingMark],
         prevalence: Mapping[str, float]) -> Figure:
    series, markers, sentences = [], [], []
    for i, (cls, rows) in enumerate(groups.items()):
        points = tuple(_xy(r, "fpr", "tpr") for r in rows)
        area = _trapezoid(points)
        series.append(Series(f"{cls} (area {area:.3f})", points))
        sentence = f"{cls}: area under the curve (AUROC) {area:.3f}."
        mark = marks.get(cls)
        sens, spec = (mark.sensitivity, mark.specificity) if mark else (None, None)
        if mark is not None and sens is not None and spec is not None and _finite(sens, spec):
            detail = (f"threshold {mark.threshold:.3f}, sensitivity {sens:.3f}, "
                      f"specificity {spec:.3f}")
            markers.append(Marker(1.0 - spec, sens, f"t = {mark.threshold:.2f}", f"{cls}: {detail}",
                                  series=i))
            sentence += f" Operating point: {detail}."
        sentences.append(sentence)
    svg = line_chart(chart_id="fig-roc", title="ROC curve (test set)",
                     description=" ".join(sentences) + " The dashed diagonal is chance.",
                     x_axis=Axis("False positive rate (1 − specificity)"),
                     y_axis=Axis("True positive rate (sensitivity)"), series=series,
                     guides=[Guide((0.0, 0.0), (1.0, 1.0), "Chance (area 0.5)")], markers=markers)
    return Figure("roc", "ROC curve", "Each point is a threshold: how many cases with the finding "
                  "are flagged (up) against how many without it are flagged too (right). The "
                  "circle is the operating threshold, chosen on the validation set.", svg)


def _pr(groups: Mapping[str, list[Mapping[str, Any]]], marks: Mapping[str, OperatingMark],
        prevalence: Mapping[str, float]) -> Figure:
    series, markers, sentences, guides = [], [], [], []
    for i, (cls, rows) in enumerate(groups.items()):
        points = tuple(_xy(r, "recall", "precision") for r in rows)
        ap = _average_precision(points)
        series.append(Series(f"{cls} (AP {ap:.3f})", points, step=True))
        sentence = f"{cls}: average precision {ap:.3f}."
        mark = marks.get(cls)
        sens, ppv = (mark.sensitivity, mark.precision) if mark else (None, None)
        if mark is not None and sens is not None and ppv is not None and _finite(sens, ppv):
            detail = (f"threshold {mark.threshold:.3f}, sensitivity {sens:.3f}, "
                      f"positive predictive value {ppv:.3f}")
            markers.append(Marker(sens, ppv, f"t = {mark.threshold:.2f}", f"{cls}: {detail}",
                                  series=i))
            sentence += f" Operating point: {detail}."
        sentences.append(sentence)
    if len(groups) == 1:
        (cls,) = groups
        p = prevalence.get(cls)
        if p is not None and _finite(p):
            guides.append(Guide((0.0, p), (1.0, p), f"Prevalence {p:.2f} (a model without skill)"))
            sentences.append(f"{p:.0%} of the test cases have {cls}; a model without skill "
                             "would lie on the dashed line.")
    svg = line_chart(chart_id="fig-pr", title="Precision-recall curve (test set)",
                     description=" ".join(sentences), x_axis=Axis("Recall (sensitivity)"),
                     y_axis=Axis("Precision (positive predictive value)"), series=series,
                     guides=guides, markers=markers)
    return Figure("pr", "Precision-recall curve", "Of the cases the model flags, the share that "
                  "really have the finding (up), against the share of all cases with the finding "
                  "that it flags (right). Depends on how common the finding is.", svg)


def _reliability(groups: Mapping[str, list[Mapping[str, Any]]], marks: Mapping[str, OperatingMark],
                 prevalence: Mapping[str, float]) -> Figure:
    del marks, prevalence  # not shown on this figure
    largest = max((float(r.get("count") or 0) for rows in groups.values() for r in rows), default=0.0)
    series, sentences = [], []
    for cls, rows in groups.items():
        points = tuple(_xy(r, "mean_predicted", "observed_fraction") for r in rows)
        counts = [float(r.get("count") or 0) for r in rows]
        dots = tuple(_DOT_MIN + (_DOT_MAX - _DOT_MIN) * math.sqrt(c / largest) if largest else _DOT_MIN
                     for c in counts)
        series.append(Series(cls, points, dots=dots))
        total = sum(counts)
        gap = sum(c * abs(x - y) for c, (x, y) in zip(counts, points, strict=True)
                  if _finite(x, y)) / total if total else math.nan
        sentences.append(f"{cls}: {len(rows)} bins of predicted probability, {int(total)} cases, "
                         f"case-weighted mean gap to the diagonal {gap:.3f}.")
    svg = line_chart(chart_id="fig-calibration", title="Reliability diagram (test set)",
                     description=" ".join(sentences) + " Points below the diagonal: the finding was "
                     "less frequent than predicted (over-confident); above it: more frequent.",
                     x_axis=Axis("Mean predicted probability"),
                     y_axis=Axis("Observed fraction with the finding"), series=series,
                     guides=[Guide((0.0, 0.0), (1.0, 1.0), "Perfect calibration")])
    return Figure("calibration", "Reliability diagram", "Cases grouped by predicted probability: "
                  "does the finding occur as often as predicted? Dot size shows how many cases "
                  "fall in each group.", svg)


def _trapezoid(points: Sequence[tuple[float, float]]) -> float:
    pts = [p for p in points if _finite(*p)]
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False))


def _average_precision(points: Sequence[tuple[float, float]]) -> float:
    """sum_k (R_k - R_{k-1}) P_k over points in ascending recall (the step the figure draws)."""
    pts = [p for p in points if _finite(*p)]
    return sum((r1 - r0) * p1 for (r0, _), (r1, p1) in zip(pts, pts[1:], strict=False))


def subgroup_table(section: Mapping[str, Any] | None) -> SubgroupTable | None:
    """Rows and notes for the ``subgroups`` section of the metrics file, or ``None`` without one."""
    if not isinstance(section, Mapping) or not isinstance(section.get("attributes"), Mapping):
        return None
    classes = [str(c) for c in section.get("classes") or []]
    rows: list[SubgroupRow] = []
    omitted = []
    for column in sorted(section["attributes"], key=lambda c: (c.startswith(_ATTRIBUTE_PREFIX), c)):
        entry = section["attributes"][column]
        name = attribute_name(column)
        values = entry.get("values") or {}
        for value in sorted(values, key=lambda v: (-int(values[v].get("n") or 0), v)):
            group = values[value]
            for cls, m in (group.get("classes") or {}).items():
                rows.append(_subgroup_row(name, value, cls, group, m))
        left = entry.get("omitted") or {}
        if left.get("values"):
            omitted.append(f"{name}: {left['values']} value(s), {left.get('n', 0)} case(s)")
        if entry.get("missing"):
            omitted.append(f"{name}: {entry['missing']} case(s) without a value")
    return SubgroupTable(rows=rows, classes=classes, notes=_subgroup_notes(section, omitted))


def attribute_name(column: str) -> str:
    """Display name of a manifest attribute column (``attr_site_code`` -> ``site code (labels.csv)``)."""
    if column.startswith(_ATTRIBUTE_PREFIX):
        return f"{column[len(_ATTRIBUTE_PREFIX):].replace('_', ' ')} (labels.csv)"
    return _ATTRIBUTE_NAMES.get(column, column.replace("_", " ").capitalize())


def _subgroup_row(name: str, value: str, cls: str, group: Mapping[str, Any],
                  m: Mapping[str, Any]) -> SubgroupRow:
    def ci(key: str) -> str:
        low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
        if isinstance(low, int | float) and isinstance(high, int | float):
            return f"{format_number(float(low), 2)} to {format_number(float(high), 2)}"
        return ""

    def val(key: str) -> str:
        v = m.get(key)
        return "n/a" if v is None else format_number(v if isinstance(v, int) else float(v), 2)

    return SubgroupRow(
        attribute=name, value=str(value), label=str(cls), n=format_number(group.get("n", 0)),
        n_patients=format_number(group.get("n_patients", 0)),
        n_positive=format_number(m.get("n_positive", 0)),
        auroc=val("auroc"), auroc_ci=ci("auroc"), sensitivity=val("sensitivity"),
        sensitivity_ci=ci("sensitivity"), specificity=val("specificity"),
        specificity_ci=ci("specificity"))


def _subgroup_notes(section: Mapping[str, Any], omitted: list[str]) -> list[str]:
    level = section.get("level")
    pct = f"{100 * float(level):.0f}%" if isinstance(level, int | float) else "95%"
    notes = [
        f"Only attribute values with at least {section.get('min_count', '?')} test cases are shown "
        f"(at most {section.get('max_values', '?')} per attribute, the largest). {pct} intervals: "
        f"AUROC by patient-level bootstrap ({section.get('n_boot', '?')} resamples); sensitivity "
        "and specificity exact (Clopper-Pearson), which treats images as independent and is "
        "somewhat narrow when patients have several images.",
        "Subgroups are small: read the intervals, not the point values. This is not a statistical "
        "test; overlapping intervals do not show that the groups perform alike.",
    ]
    if omitted:
        notes.append("Not shown (too few cases or over the per-attribute cap): "
                     + "; ".join(omitted) + ".")
    skipped = section.get("skipped") or {}
    if skipped:
        notes.append("Not broken down: " + "; ".join(
            f"{attribute_name(str(c))} ({reason})" for c, reason in sorted(skipped.items())) + ".")
    return notes
