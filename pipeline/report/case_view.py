"""What a case page draws: its image data, per-label heatmaps and the index thumbnail.

Every array a page needs is embedded once, as PNG-packed levels the page's script colours and
windows itself (:func:`case_view`): the base image with its value mapping and the model's window,
the heatmap as 8-bit levels, the lesion outline (2D) or mask (3D), and in 3D the three views
(axial, coronal, sagittal) starting at the heatmap's peak. Per-label heatmaps replace the single
heatmap when a case has them (:func:`with_label_heats`). :func:`explained_label` names the label
a case's heatmap is evidence for, and :func:`model_size` the model's 2D input size from the card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.report import imaging
from pipeline.report.case import CaseRecord, orientation_marks

#: The three 3D views: key, title, volume axis, patient-direction letters (top, bottom, left, right).
_VIEWS = (("axial", "Axial", 0, ("A", "P", "R", "L")),
          ("coronal", "Coronal", 1, ("S", "I", "R", "L")),
          ("sagittal", "Sagittal", 2, ("S", "I", "A", "P")))
_THUMB_OPACITY = 0.6


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


def with_label_heats(view: dict[str, Any], case: CaseRecord, explains: str | None, *,
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


def model_size(card: Mapping[str, Any], kind: str) -> tuple[int, int] | None:
    """``(width, height)`` of a 2D model's input from the card's ``input_shape`` (H, W, C)."""
    shape = card.get("input_shape")
    if kind != "2d" or not isinstance(shape, Sequence) or len(shape) < 2:
        return None
    try:
        height, width = int(shape[0]), int(shape[1])
    except (TypeError, ValueError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def case_view(case: CaseRecord, *, kind: str) -> dict[str, Any]:
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
