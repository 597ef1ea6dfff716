"""Finished case pages' records kept on disk until the report is built, so a resumed run needs
neither the sources nor the model for the studies it already did.

One ``<sample_id>.npz`` per case (written atomically): the arrays of its
:class:`~pipeline.report.CaseRecord` and, as a JSON string, every other field. Loading needs no
pickle (``allow_pickle=False``). Saving and loading give back an equal record: the same arrays
bit for bit, the same scalars (JSON floats round-trip exactly), sequences as tuples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

_ARRAYS = ("image", "heatmap", "mask")
_SEQUENCES = ("spacing", "orientation")


def save_case(folder: Path, record: Any) -> Path:
    """Write ``record`` (a CaseRecord) as ``folder/<sample_id>.npz``; returns the path."""
    from pipeline.utils.atomic import atomic_path

    arrays = {name: getattr(record, name) for name in _ARRAYS if getattr(record, name) is not None}
    keys = list(record.label_heatmaps)
    arrays.update({f"label_heatmap_{i}": record.label_heatmaps[k] for i, k in enumerate(keys)})
    fields = {name: _plain(getattr(record, name)) for name in (
        "sample_id", "split", "true_label", "predicted_label", "probability", "probabilities", "threshold",
        "category", "attributes", "method", "spacing", "orientation", "field_of_view")}
    fields["label_heatmap_keys"] = keys
    if record.intensity is not None:
        it = record.intensity
        arrays["intensity_values"] = it.values
        fields["intensity"] = _plain({"offset": it.offset, "scale": it.scale, "unit": it.unit,
                                      "window": it.window, "exact": it.exact, "presets": dict(it.presets)})
    arrays["fields"] = np.array(json.dumps(fields, sort_keys=True))
    path = folder / f"{record.sample_id}.npz"
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_case(path: Path) -> Any:
    """The CaseRecord :func:`save_case` wrote to ``path``."""
    from pipeline.report import CaseRecord
    from pipeline.report.case import Intensity

    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    fields = json.loads(str(arrays.pop("fields")))
    keys = fields.pop("label_heatmap_keys")
    intensity = fields.pop("intensity", None)
    for name in _SEQUENCES:
        fields[name] = None if fields[name] is None else tuple(fields[name])
    if fields["field_of_view"] is not None:
        fields["field_of_view"] = tuple(tuple(axis) for axis in fields["field_of_view"])
    if intensity is not None:
        intensity["window"] = tuple(intensity["window"])
        intensity["presets"] = {k: tuple(v) for k, v in intensity["presets"].items()}
        fields["intensity"] = Intensity(values=arrays.pop("intensity_values"), **intensity)
    label_heats = {k: arrays.pop(f"label_heatmap_{i}") for i, k in enumerate(keys)}
    return CaseRecord(**fields, **{k: arrays.get(k) for k in _ARRAYS}, label_heatmaps=label_heats)


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers, tuples and arrays to lists, mappings to dicts."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
