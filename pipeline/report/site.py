"""Build the static report site: ``index.html`` plus one page per case under ``cases/``.

Cases are streamed: each case page is rendered and written as soon as its record arrives
(holding one record back to link it to the next case), and only small array-free rows are
kept for the index. Each case's thumbnail (a small overlay) is streamed to a scratch file and
embedded once in the index, as an SVG ``<image>`` that the case table and the review cards both
reference with ``<use>`` (data URIs only, as the Content-Security-Policy allows). The site is
built in a temporary sibling folder and moved over the target at the end, so an interrupted build
never leaves a half-written report (:func:`pipeline.utils.atomic.atomic_dir`).

A case page's image data (base image, heatmaps, outline or 3D views, thumbnail) comes from
:mod:`pipeline.report.case_view`; this module validates the cases, renders the pages and
assembles the index (review groups, tables, performance figures).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from pipeline.report.case import UNKNOWN, CaseRecord, CaseRow, summarize, uncertain_interval
from pipeline.report.case_checks import validate
from pipeline.report.case_view import case_view, explained_label, model_size, with_label_heats
from pipeline.report.localization import localization_rows, localization_warnings
from pipeline.report.pages import CASE_SCRIPT, INDEX_SCRIPT, render
from pipeline.report.performance import OperatingMark, performance_figures, subgroup_table
from pipeline.report.review import Review
from pipeline.report.tables import (
    HEADLINE_KEYS,
    card_summary,
    confusion_matrix,
    flatten,
    metric_rows,
    split_rows,
)
from pipeline.utils.atomic import atomic_dir

KINDS = ("2d", "3d")
INDEX_FILE = "index.html"
CASES_DIR = "cases"
#: Thumbnails (:func:`pipeline.report.case_view.case_view`) are at most this many pixels on a side
#: (:func:`pipeline.report.imaging.thumbnail_uri`'s default) and shown letterboxed in a square of
#: that size.
_THUMB_BOX = 96
#: Where the index template's thumbnail definitions go (template text is escaped, so no data
#: can forge this comment), and the scratch file they are streamed to.
_THUMB_SLOT = "<!--medvision:thumbnail-defs-->"
_THUMB_PART = ".thumbnails.part"


def build_report(
    out_dir: str | os.PathLike[str],
    *,
    task_name: str,
    kind: str,
    labels: Sequence[str],
    cases: Iterable[CaseRecord],
    card: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    notes: Sequence[str] | None = None,
    positive_label: str | None = None,
    low_confidence_margin: float = 0.1,
    highlight_limit: int = 8,
    curves: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    operating_points: Mapping[str, OperatingMark] | None = None,
    subgroups: Mapping[str, Any] | None = None,
    confusion: Sequence[Sequence[int]] | None = None,
) -> Path:
    """Write a self-contained HTML report for clinicians to review a model's cases.

    Output: ``out_dir/index.html`` (headline metrics with CIs, model card, review groups, a
    sortable/filterable case table) and ``out_dir/cases/<sample_id>.html`` (image, heatmap
    overlay, decision and caveats). Links are relative and images inlined, so the folder works
    from a ``file://`` URL or a zip. The previous contents of ``out_dir`` are replaced.

    Args:
        out_dir: Report folder (e.g. ``reports/<task>``); replaced as a whole.
        task_name: Shown in titles, e.g. ``"cxr"``.
        kind: ``"2d"`` or ``"3d"``; every case's image must match.
        labels: Class labels in model output order.
        cases: The cases, consumed once, in display order.
        card: Model card (``models/<task>/model_card.json`` contents), or ``None``.
        metrics: Test metrics, flat: ``auroc``, ``auroc_ci_low``, ``auroc_ci_high``,
            ``recall``, ``specificity``, ..., ``threshold``, optionally ``confusion_matrix``.
        notes: Free-text notes listed on the index (escaped).
        positive_label: The label a positive call means (binary tasks); default: the second of
            two labels, none otherwise.
        low_confidence_margin: The uncertain band, in (0, 1): a prediction is flagged
            low-confidence when its probability is inside the band around its threshold (this
            half-width at a threshold of 0.5, as wide on the log-odds scale at others:
            :func:`~pipeline.report.case.uncertain_interval`) or, without a threshold, when
            the two most likely labels are closer than this.
        highlight_limit: How many cases each review group on the index shows (>= 1).
        curves: Test-set plot rows as the evaluate stage writes them (``eval/<task>/plots``):
            ``{"roc": [...], "pr": [...], "calibration": [...]}``, drawn as inline SVG figures.
        operating_points: Class -> its operating point, marked on the ROC and PR curves;
            default: for a binary task, ``threshold`` with ``recall``, ``specificity`` and
            ``precision`` from ``metrics``.
        subgroups: The ``subgroups`` section of the metrics file (see
            :mod:`pipeline.evaluate.subgroups`), shown as a table.
        confusion: Test confusion counts over ``labels`` (rows = truth, columns = prediction);
            default: ``metrics["confusion_matrix"]``.

    Returns:
        Path of the written ``index.html``.

    Raises:
        ValueError: Bad arguments, or a case that does not fit (the message names the case and
            field); nothing is written then.
    """
    labels = _check_args(task_name, kind, labels, low_confidence_margin, highlight_limit)
    positive = _positive_label(labels, positive_label)
    metrics = dict(metrics or {})
    if confusion is not None:
        metrics["confusion_matrix"] = [list(row) for row in confusion]
    target = Path(out_dir)
    shared = {"task_name": task_name, "kind": kind, "positive_label": positive, "labels": list(labels),
              "margin": low_confidence_margin,
              "headline": metric_rows(metrics, HEADLINE_KEYS),
              "model_size": model_size(card or {}, kind)}
    review = Review(positive_label=positive, limit=highlight_limit)
    rows: list[CaseRow] = []
    methods: set[str] = set()
    thumbs: set[str] = set()
    with atomic_dir(target) as tmp:
        (tmp / CASES_DIR).mkdir()
        part = tmp / _THUMB_PART
        with part.open("w", encoding="utf-8") as defs:
            multilabel = (card or {}).get("problem") == "multilabel"
            for case, prev_id, next_id in _with_neighbours(cases, kind=kind, labels=labels,
                                                           multilabel=multilabel):
                row = _write_case(tmp, case, prev_id, next_id, shared)
                if row.thumbnail:
                    defs.write(_thumbnail_def(row.sample_id, row.thumbnail))
                    thumbs.add(row.sample_id)
                row = dataclasses.replace(row, thumbnail="")
                review.offer(row)
                rows.append(row)
                if case.heatmap is not None:
                    methods.add(case.method)
        context = _index_context(rows, review, labels=labels, methods=sorted(methods),
                                 card=card or {}, metrics=metrics, notes=list(notes or []),
                                 shared=shared)
        context.update(_performance(metrics, positive, curves=curves, marks=operating_points,
                                    subgroups=subgroups))
        html = render("index.html", script=INDEX_SCRIPT, thumbs=thumbs, **context)
        _write_index(tmp / INDEX_FILE, html, part)
        part.unlink()
    return target / INDEX_FILE


def _thumbnail_def(sample_id: str, uri: str) -> str:
    """One thumbnail as an SVG definition ``#thumb-<sample_id>``: black square, image centred."""
    box = _THUMB_BOX
    return (f'<g id="thumb-{escape(sample_id)}"><rect width="{box}" height="{box}" fill="#000000">'
            f'</rect><image width="{box}" height="{box}" preserveAspectRatio="xMidYMid meet" '
            f'href="{escape(uri)}"></image></g>\n')


def _write_index(path: Path, html: str, defs: Path) -> None:
    """Write the index with the streamed thumbnail definitions in place of :data:`_THUMB_SLOT`."""
    head, slot, tail = html.partition(_THUMB_SLOT)
    if not slot or _THUMB_SLOT in tail:
        raise RuntimeError("index.html must hold the thumbnail slot exactly once")
    with path.open("w", encoding="utf-8") as out:
        out.write(head)
        with defs.open(encoding="utf-8") as src:
            shutil.copyfileobj(src, out)
        out.write(tail)


def _performance(metrics: Mapping[str, Any], positive: str | None, *,
                 curves: Mapping[str, Sequence[Mapping[str, Any]]] | None,
                 marks: Mapping[str, OperatingMark] | None,
                 subgroups: Mapping[str, Any] | None) -> dict[str, Any]:
    """Index context of the figures (markup built and escaped by :mod:`pipeline.report.svg`)
    and of the subgroup table."""
    from markupsafe import Markup

    prevalence: dict[str, float] = {}
    threshold = _first_number(metrics, "threshold")
    if marks is None and positive is not None and threshold is not None:
        marks = {positive: OperatingMark(
            threshold, sensitivity=_first_number(metrics, "recall", "sensitivity"),
            specificity=_first_number(metrics, "specificity"),
            precision=_first_number(metrics, "precision", "ppv"))}
    n, n_positive = _first_number(metrics, "n"), _first_number(metrics, "n_positive")
    if positive is not None and n and n_positive is not None:
        prevalence[positive] = n_positive / n
    figures, notes = performance_figures(curves or {}, marks=marks, prevalence=prevalence)
    return {"figures": [dataclasses.replace(f, svg=Markup(f.svg)) for f in figures],
            "figure_notes": notes, "subgroups": subgroup_table(subgroups),
            "thumbnail_slot": Markup(_THUMB_SLOT)}


def _first_number(metrics: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _check_args(task_name: str, kind: str, labels: Sequence[str], margin: float,
                limit: int) -> list[str]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}. Received: {kind!r}")
    labels = list(labels)
    if not labels or not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct non-empty strings. Received: {labels!r}")
    if not isinstance(task_name, str) or not task_name:
        raise ValueError(f"task_name must be a non-empty string. Received: {task_name!r}")
    if not 0.0 < float(margin) < 1.0:
        raise ValueError(f"low_confidence_margin must be in (0, 1). Received: {margin!r}")
    if int(limit) < 1:
        raise ValueError(f"highlight_limit must be >= 1. Received: {limit!r}")
    return labels


def _positive_label(labels: list[str], positive_label: str | None) -> str | None:
    if positive_label is None:
        return labels[1] if len(labels) == 2 else None
    if positive_label not in labels:
        raise ValueError(f"positive_label must be one of {labels}. Received: {positive_label!r}")
    return positive_label


def _with_neighbours(cases: Iterable[CaseRecord], *, kind: str, labels: Sequence[str],
                     multilabel: bool = False) -> Iterator[tuple[CaseRecord, str | None, str | None]]:
    """Validated cases with the previous and next sample ids (one record of look-ahead)."""
    seen: set[str] = set()
    pending: CaseRecord | None = None
    prev_id: str | None = None
    for case in cases:
        validate(case, kind=kind, labels=labels, multilabel=multilabel)
        if case.sample_id in seen:
            raise ValueError(f"duplicate sample_id {case.sample_id!r}: each case needs its own page")
        seen.add(case.sample_id)
        if pending is not None:
            yield pending, prev_id, case.sample_id
            prev_id = pending.sample_id
        pending = case
    if pending is not None:
        yield pending, prev_id, None


def _write_case(root: Path, case: CaseRecord, prev_id: str | None, next_id: str | None,
                shared: Mapping[str, Any]) -> CaseRow:
    """Render and write one case page; return its index row (with a thumbnail)."""
    view = case_view(case, kind=shared["kind"])
    row = summarize(case, low_confidence_margin=shared["margin"],
                    positive_label=shared["positive_label"], thumbnail=view.pop("thumbnail"))
    probabilities = sorted(case.probabilities.items(), key=lambda kv: (-float(kv[1]), kv[0]))
    explains = explained_label(case, shared["positive_label"])
    view = with_label_heats(view, case, explains, labels=shared["labels"])
    html = render("case.html", script=CASE_SCRIPT, row=row, prev_id=prev_id, next_id=next_id,
                  method=case.method, probabilities=probabilities, explained_label=explains,
                  attributes=sorted(case.attributes.items()), **view, **shared)
    (root / CASES_DIR / f"{case.sample_id}.html").write_text(html, encoding="utf-8")
    return row


def _index_context(rows: list[CaseRow], review: Review, *, labels: list[str], methods: list[str],
                   card: Mapping[str, Any], metrics: Mapping[str, Any], notes: list[str],
                   shared: Mapping[str, Any]) -> dict[str, Any]:
    counts = {"total": len(rows), "low": sum(r.low_confidence for r in rows)}
    for outcome in ("correct", "incorrect", UNKNOWN):
        counts[outcome] = sum(r.outcome == outcome for r in rows)
    threshold = metrics.get("threshold")
    case_thresholds = {r.threshold for r in rows}
    if threshold is None and len(case_thresholds) == 1:
        threshold = case_thresholds.pop()
    measures, settings = split_rows(metric_rows(metrics))
    return {
        **shared, "rows": rows, "counts": counts, "labels": labels, "methods": methods,
        "kind_text": "2D images" if shared["kind"] == "2d" else "3D volumes",
        "threshold": threshold, "metric_rows": measures, "count_rows": settings,
        "uncertain": (uncertain_interval(float(threshold), shared["margin"])
                      if isinstance(threshold, int | float) else None),
        "thresholded": any(r.threshold is not None for r in rows),
        "localization_rows": localization_rows(metrics),
        "localization_warnings": localization_warnings(metrics),
        "confusion": confusion_matrix(metrics, labels), "groups": review.for_page(),
        "splits": sorted({r.split for r in rows}),
        "categories": sorted({r.category for r in rows if r.category}),
        "card_rows": card_summary(card), "card_flat": flatten(card), "notes": notes,
    }
