"""Build the static report site: ``index.html`` plus one page per case under ``cases/``.

Cases are streamed: each case page is rendered and written as soon as its record arrives
(holding one record back to link it to the next case), and only small array-free rows are
kept for the index. The site is built in a temporary sibling folder and moved over the target
at the end, so an interrupted build never leaves a half-written report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report import imaging
from pipeline.report.case import UNKNOWN, CaseRecord, CaseRow, summarize, validate
from pipeline.report.pages import CASE_SCRIPT, INDEX_SCRIPT, render
from pipeline.report.review import Review
from pipeline.report.tables import (
    HEADLINE_KEYS,
    card_summary,
    confusion_matrix,
    flatten,
    metric_rows,
    split_rows,
)

KINDS = ("2d", "3d")
INDEX_FILE = "index.html"
CASES_DIR = "cases"
#: The three 3D views: key, title, volume axis, patient-direction letters (top, bottom, left, right).
_VIEWS = (("axial", "Axial", 0, ("A", "P", "R", "L")),
          ("coronal", "Coronal", 1, ("S", "I", "R", "L")),
          ("sagittal", "Sagittal", 2, ("S", "I", "A", "P")))
_THUMB_OPACITY = 0.6


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
        low_confidence_margin: Predictions whose probability is closer than this to the
            threshold (or to the runner-up label) are flagged low-confidence, in (0, 1).
        highlight_limit: How many cases each review group on the index shows (>= 1).

    Returns:
        Path of the written ``index.html``.

    Raises:
        ValueError: Bad arguments, or a case that does not fit (the message names the case and
            field); nothing is written then.
    """
    labels = _check_args(task_name, kind, labels, low_confidence_margin, highlight_limit)
    positive = _positive_label(labels, positive_label)
    metrics = dict(metrics or {})
    target = Path(out_dir)
    shared = {"task_name": task_name, "kind": kind, "positive_label": positive,
              "margin": low_confidence_margin,
              "headline": metric_rows(metrics, HEADLINE_KEYS)}
    review = Review(positive_label=positive, limit=highlight_limit)
    rows: list[CaseRow] = []
    methods: set[str] = set()
    with _staging_dir(target) as tmp:
        (tmp / CASES_DIR).mkdir()
        for case, prev_id, next_id in _with_neighbours(cases, kind=kind, labels=labels):
            row = _write_case(tmp, case, prev_id, next_id, shared)
            review.offer(row)
            rows.append(dataclasses.replace(row, thumbnail=""))
            if case.heatmap is not None:
                methods.add(case.method)
        html = render("index.html", script=INDEX_SCRIPT, **_index_context(
            rows, review, labels=labels, methods=sorted(methods), card=card or {}, metrics=metrics,
            notes=list(notes or []), shared=shared))
        (tmp / INDEX_FILE).write_text(html, encoding="utf-8")
    return target / INDEX_FILE


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


def _with_neighbours(cases: Iterable[CaseRecord], *, kind: str, labels: Sequence[str]
                     ) -> Iterator[tuple[CaseRecord, str | None, str | None]]:
    """Validated cases with the previous and next sample ids (one record of look-ahead)."""
    seen: set[str] = set()
    pending: CaseRecord | None = None
    prev_id: str | None = None
    for case in cases:
        validate(case, kind=kind, labels=labels)
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
    view = _case_view(case, kind=shared["kind"])
    row = summarize(case, low_confidence_margin=shared["margin"],
                    positive_label=shared["positive_label"], thumbnail=view.pop("thumbnail"))
    probabilities = sorted(case.probabilities.items(), key=lambda kv: (-float(kv[1]), kv[0]))
    html = render("case.html", script=CASE_SCRIPT, row=row, prev_id=prev_id, next_id=next_id,
                  method=case.method, probabilities=probabilities,
                  attributes=sorted(case.attributes.items()), **view, **shared)
    (root / CASES_DIR / f"{case.sample_id}.html").write_text(html, encoding="utf-8")
    return row


def _case_view(case: CaseRecord, *, kind: str) -> dict[str, Any]:
    """The case page's image data: data URIs for 2D, packed volumes for 3D, and a thumbnail."""
    heat, mask = case.heatmap, case.mask
    view: dict[str, Any] = {"has_heatmap": heat is not None, "has_mask": mask is not None,
                            "colorbar_uri": imaging.colorbar_uri() if heat is not None else ""}
    if kind == "2d":
        image = case.image
        view.update(
            width=image.shape[1], height=image.shape[0], image_uri=imaging.png_data_uri(image),
            heat_uri=imaging.png_data_uri(imaging.heat_rgba(heat)) if heat is not None else "",
            outline_uri=imaging.png_data_uri(imaging.outline_rgba(mask)) if mask is not None else "",
            thumbnail=imaging.thumbnail_uri(imaging.render_overlay(image, heat, opacity=_THUMB_OPACITY)),
        )
        return view
    start = imaging.peak_index(heat, mask, case.image.shape)
    z = start[0]
    view.update(
        views=[{"key": k, "title": t, "count": case.image.shape[a], "marks": m} for k, t, a, m in _VIEWS],
        volume={
            "shape": list(case.image.shape),
            "spacing": [float(s) for s in case.spacing] if case.spacing is not None else None,
            "image": imaging.pack_volume(case.image),
            "heat": imaging.pack_volume(imaging.quantize(heat)) if heat is not None else None,
            "mask": imaging.pack_volume(np.asarray(mask) != 0) if mask is not None else None,
            "lut": imaging.colormap_lut().ravel().tolist(),
            "start": list(start),
        },
        thumbnail=imaging.thumbnail_uri(imaging.render_overlay(
            case.image[z], None if heat is None else heat[z], opacity=_THUMB_OPACITY)),
    )
    return view


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
        "confusion": confusion_matrix(metrics, labels), "groups": review.for_page(),
        "splits": sorted({r.split for r in rows}),
        "categories": sorted({r.category for r in rows if r.category}),
        "card_rows": card_summary(card), "card_flat": flatten(card), "notes": notes,
    }


@contextlib.contextmanager
def _staging_dir(target: Path) -> Iterator[Path]:
    """A fresh sibling folder of ``target``, moved over ``target`` if the block succeeds."""
    if target.exists() and not target.is_dir():
        raise ValueError(f"out_dir must be a folder. Received a file: {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp.chmod(0o755)
        yield tmp
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    if not target.exists():
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
