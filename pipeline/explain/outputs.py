"""What the explain stage writes to ``explain/<task>/`` and how other stages read it back.

- ``cases.csv`` (:data:`CASES`): the explained cases, in the order of the map arrays;
- ``maps_<method>.npy`` (:func:`maps_file`): the maps on the model's input grid;
- ``maps_<method>_labels.npy`` (:func:`label_maps_file`): multi-class/multi-label tasks with
  ``explain.per_label``: the reported method's map for every label, ``(N, K, *spatial)``;
- ``faithfulness.json`` (:data:`FAITHFULNESS`) and ``audit.json`` (:data:`AUDIT`).

:func:`read_explained` is what evaluate, report and predict use: they never import the explain
stage itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Display names of the explanation methods (reports, predict).
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM",
                "hirescam": "HiResCAM", "layercam": "LayerCAM",
                "layercam-fusion": "LayerCAM (fused over several layers)",
                "gradcam-layercam": "Grad-CAM blended with LayerCAM (one resolution finer)"}

CASES = "cases.csv"
FAITHFULNESS = "faithfulness.json"
AUDIT = "audit.json"
CASE_COLUMNS = ("sample_id", "split", "patient", "label", "index", "has_mask")


def maps_file(method: str) -> str:
    """File name of a method's maps (``gradcam++`` -> ``maps_gradcampp.npy``)."""
    return f"maps_{method.replace('+', 'p')}.npy"


def label_maps_file(method: str) -> str:
    """File name of a method's per-label maps (``maps_<method>_labels.npy``)."""
    return f"maps_{method.replace('+', 'p')}_labels.npy"


@dataclass(frozen=True)
class Explained:
    """What the explain stage wrote: case rows, methods (in params order) and their maps."""

    rows: tuple[dict[str, str], ...]
    methods: tuple[str, ...]
    maps: dict[str, np.ndarray]  # method -> memory-mapped (N, *spatial)
    faithfulness: dict[str, Any]
    #: The reported method's map for every label, memory-mapped ``(N, K, *spatial)`` (label order
    #: of the task), or None (binary task, or ``explain.per_label`` off).
    label_maps: np.ndarray | None = None


def read_explained(out_dir: Path, methods: tuple[str, ...] | None = None) -> Explained | None:
    """Read the explain stage's outputs (maps memory-mapped); None if there are none.

    Args:
        out_dir: ``explain/<task>``.
        methods: Methods in order (default: those recorded in ``faithfulness.json``).
    """
    from pipeline.dataset.store import open_array
    from pipeline.dataset.tables import read_table

    out_dir = Path(out_dir)
    if not (out_dir / CASES).is_file() or not (out_dir / FAITHFULNESS).is_file():
        return None
    faithfulness = json.loads((out_dir / FAITHFULNESS).read_text(encoding="utf-8"))
    if methods is None:
        not_methods = ("layer", "methods", "selection", "audit", "tta")
        methods = tuple(faithfulness.get("methods") or (k for k in faithfulness if k not in not_methods))
    maps = {m: open_array(out_dir / maps_file(m)) for m in methods}
    per_label = out_dir / label_maps_file(methods[0]) if methods else None
    label_maps = open_array(per_label) if per_label is not None and per_label.is_file() else None
    return Explained(tuple(read_table(out_dir / CASES)), tuple(methods), maps, faithfulness, label_maps)
