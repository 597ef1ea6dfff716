"""A new study's case page record: its heatmaps (computed) and the source shown at full
resolution (from the decoded source the workers returned, never decoded again here).

Multi-class and multi-label models get a map for every label (the page's "Heatmap for"
selector); the one shown first is the most probable label's.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def heatmaps(predictor: Any, x: np.ndarray) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """``(shown map, per-label maps)`` on the model grid for one study ``x`` (``(1, ..., C)``,
    float32 in [0, 1]); ``(None, {})`` without an explainer (an export)."""
    explainer = predictor.explainer
    if explainer is None:
        return None, {}
    method, views = predictor.method, predictor.map_views
    if predictor.problem == "binary":
        return explainer.maps(x, method=method, tta=views)[0], {}
    label_heats = {label: explainer.maps(x, method=method, class_index=k, tta=views)[0]
                   for k, label in enumerate(predictor.labels)}
    shown = predictor.labels[int(np.argmax(predictor.model.predict_on_batch(x)[0]))]
    return label_heats[shown], label_heats


def case_record(predictor: Any, prepared: Any, predicted: str, probability: float, probs: np.ndarray,
                *, show_free_text: bool) -> Any:
    """The CaseRecord of one predicted study (``prepared``: its decoded
    :class:`~pipeline.predict.worker.Prepared`)."""
    from pipeline.explain.outputs import METHOD_NAMES
    from pipeline.preprocess.geometry import geometry_from_json
    from pipeline.report import NONE_PRESENT, CaseRecord
    from pipeline.report.source import display_2d, display_3d

    sample, ingest = prepared.sample, predictor.ingest
    x = sample.image[None].astype(np.float32) / np.float32(255.0)
    heat, label_heats = heatmaps(predictor, x)
    geometry = geometry_from_json(sample.meta["geometry"])
    on_grid = heat if heat is not None else np.zeros(sample.image.shape[:-1], np.float32)
    if predictor.kind == "2d":
        shown = display_2d(sample.source, None, ingest, geometry, on_grid, None, free_text=show_free_text,
                           label_heats=label_heats, full=prepared.full_range)
        attributes = shown.pop("attributes")
    else:
        volume, meta = sample.source
        shown = display_3d(volume, meta, ingest, geometry, on_grid, None, label_heats)._asdict()
        attributes = {}
    shown.pop("mask")
    if heat is None:  # a prediction from an export: the page says no heatmap was computed
        shown["heatmap"] = None
    labels = predictor.labels
    return CaseRecord(sample_id=prepared.sample_id, split="new", true_label=None,
                      predicted_label=predicted or NONE_PRESENT, probability=probability,
                      probabilities=dict(zip(labels, map(float, probs), strict=True)),
                      threshold=predictor.threshold, attributes=attributes,
                      method=METHOD_NAMES.get(predictor.method, predictor.method), **shown)
