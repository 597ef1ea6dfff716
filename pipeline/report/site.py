"""Build the static report site: ``index.html`` plus one page per case under ``cases/``.

Cases are streamed: each case page is rendered and written as soon as its record arrives
(holding one record back to link it to the next case), and only small array-free rows are
kept for the index. Each case's thumbnail (a small overlay) is streamed to a scratch file and
embedded once in the index, as an SVG ``<image>`` that the case table and the review cards both
reference with ``<use>`` (data URIs only, as the Content-Security-Policy allows). The site is
built in a temporary sibling folder and moved over the target at the end, so an interrupted build
never leaves a half-written report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report import imaging
from pipeline.report.case import (
    UNKNOWN,
    CaseRecord,
    CaseRow,
    orientation_marks,
    summarize,
    validate,
)
from pipeline.report.pages import CASE_SCRIPT, INDEX_SCRIPT, render
from pipeline.report.performance import OperatingMark, performance_figures, subgroup_table
from pipeline.report.review import Review
from pipeline.report.tables import (
    HEADLINE_KEYS,
    card_summary,
    confusion_matrix,
    flatten,
    localization_rows,
    localization_warnings,
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
#: Thumbnails are at most this many pixels on a side (:func:`imaging.thumbnail_uri`'s default)
#: and shown letterboxed in a square of that size.
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
        low_confidence_margin: Predictions whose probability is closer than this to the
            threshold (or to the runner-up label) are flagged low-confidence, in (0, 1).
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
              "model_size": _model_size(card or {}, kind)}
    review = Review(positive_label=positive, limit=highlight_limit)
    rows: list[CaseRow] = []
    methods: set[str] = set()
    thumbs: set[str] = set()
    with _staging_dir(target) as tmp:
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
    view = _case_view(case, kind=shared["kind"])
    row = summarize(case, low_confidence_margin=shared["margin"],
                    positive_label=shared["positive_label"], thumbnail=view.pop("thumbnail"))
    probabilities = sorted(case.probabilities.items(), key=lambda kv: (-float(kv[1]), kv[0]))
    explains = explained_label(case, shared["positive_label"])
    view = _with_label_heats(view, case, explains, labels=shared["labels"])
    html = render("case.html", script=CASE_SCRIPT, row=row, prev_id=prev_id, next_id=next_id,
                  method=case.method, probabilities=probabilities, explained_label=explains,
                  attributes=sorted(case.attributes.items()), **view, **shared)
    (root / CASES_DIR / f"{case.sample_id}.html").write_text(html, encoding="utf-8")
    return row


def explained_label(case: CaseRecord, positive_label: str | None) -> str | None:
    """The label a case's heatmap is evidence for, as :mod:`pipeline.explain` picks it by
    default (``resolve_class_index``): the positive class of a binary decision (a threshold),
    else the most probable label; None without a heatmap."""
    if case.heatmap is None:
        return None
    if case.threshold is not None and positive_label is not None:
        return positive_label
    if case.probabilities:
        return max(case.probabilities.items(), key=lambda kv: float(kv[1]))[0]
    return case.predicted_label


def _with_label_heats(view: dict[str, Any], case: CaseRecord, explains: str | None, *,
                      labels: Sequence[str]) -> dict[str, Any]:
    """Per-label maps on the page (``heats`` in the page data, the "Heatmap for" selector): each
    label's map embedded once, in label order, the explained label's chosen first; the single
    ``heat`` is then left out (each image is embedded once). 3D maps carry their own peak."""
    if not case.label_heatmaps or case.heatmap is None:
        return {**view, "heat_labels": []}
    pixels = view["image_data"] if "image_data" in view else view["volume"]
    ordered = [label for label in labels if label in case.label_heatmaps]
    heats = []
    for label in ordered:
        heat = case.label_heatmaps[label]
        entry: dict[str, Any] = {"label": label, "png": imaging.pack_png(imaging.quantize(heat))}
        if case.image.ndim == 3:
            entry["peak"] = list(imaging.peak_index(heat, case.mask, case.image.shape))
        heats.append(entry)
    selected = ordered.index(explains) if explains in ordered else 0
    pixels.update(heat=None, heats=heats, heat_selected=selected, predicted=case.predicted_label.split("|"))
    if case.image.ndim == 3 and "peak" in heats[selected]:
        pixels["start"] = heats[selected]["peak"]
    return {**view, "heat_labels": [h["label"] for h in heats], "heat_selected": selected}


def _model_size(card: Mapping[str, Any], kind: str) -> tuple[int, int] | None:
    """``(width, height)`` of a 2D model's input from the card's ``input_shape`` (H, W, C)."""
    shape = card.get("input_shape")
    if kind != "2d" or not isinstance(shape, Sequence) or len(shape) < 2:
        return None
    try:
        height, width = int(shape[0]), int(shape[1])
    except (TypeError, ValueError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def _case_view(case: CaseRecord, *, kind: str) -> dict[str, Any]:
    """The case page's image data (each array embedded once, see :func:`_pixels`) and the
    index thumbnail."""
    heat, mask = case.heatmap, case.mask
    view: dict[str, Any] = {"has_heatmap": heat is not None, "has_mask": mask is not None,
                            "colorbar_uri": imaging.colorbar_uri() if heat is not None else ""}
    pixels = _pixels(case)
    if kind == "2d":
        image = case.image
        marks = orientation_marks(case.orientation) if case.orientation is not None else None
        if mask is not None:
            pixels["outline"] = imaging.pack_png(imaging.outline(mask).astype(np.uint8))
        view.update(
            width=image.shape[1], height=image.shape[0], image_data=pixels, marks_2d=marks,
            thumbnail=imaging.thumbnail_uri(imaging.render_overlay(image, heat, opacity=_THUMB_OPACITY)),
        )
        return view
    start = imaging.peak_index(heat, mask, case.image.shape)
    z = start[0]
    fov = case.field_of_view
    pixels.update(
        spacing=[float(s) for s in case.spacing] if case.spacing is not None else None,
        mask=imaging.pack_png((np.asarray(mask) != 0).astype(np.uint8)) if mask is not None else None,
        start=list(start),
        fov=[[int(a), int(b)] for a, b in fov] if fov is not None else None,
    )
    view.update(
        views=[{"key": k, "title": t, "count": case.image.shape[a], "marks": m} for k, t, a, m in _VIEWS],
        volume=pixels, has_fov=fov is not None,
        thumbnail=imaging.thumbnail_uri(imaging.render_overlay(
            case.image[z], None if heat is None else heat[z], opacity=_THUMB_OPACITY)),
    )
    return view


def _pixels(case: CaseRecord) -> dict[str, Any]:
    """What the page's script draws: the base image once, as levels with their value mapping
    and the model's window (window/level), and the heatmap as 8-bit levels it colours itself."""
    intensity = case.intensity if case.intensity is not None else imaging.grey_intensity(case.image)
    values = intensity.values
    return {
        "shape": list(case.image.shape),
        "base": imaging.pack_png(values),
        "max_level": int(np.iinfo(values.dtype).max) if values.size == 0 else int(values.max()),
        "offset": float(intensity.offset), "scale": float(intensity.scale), "unit": intensity.unit,
        "window": [float(v) for v in intensity.window], "exact": bool(intensity.exact),
        "presets": [[name, float(c), float(w)] for name, (c, w) in intensity.presets.items()],
        "heat": imaging.pack_png(imaging.quantize(case.heatmap)) if case.heatmap is not None else None,
        "lut": imaging.colormap_lut().ravel().tolist(),
    }


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
        "localization_rows": localization_rows(metrics),
        "localization_warnings": localization_warnings(metrics),
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
