"""The ``explain`` stage: class activation maps for the selected cases and their faithfulness.

Outputs in ``explain/<task>/``:

- ``cases.csv``: the explained cases (``sample_id, split, patient, label, index, has_mask``), in
  the order of the map arrays.
- ``maps_<method>.npy``: float32 ``(N, H, W)`` / ``(N, D, H, W)`` maps in [0, 1] on the model's
  input grid (the ingest geometry: same as ``images.npy`` and ``masks.npy``), one file per method
  (``gradcam++`` is written ``maps_gradcampp.npy``).
- ``faithfulness.json``: per method, the deletion test summary (probability drop when the map's
  top ``deletion_fraction`` is masked versus random masks of the same area; ``flag`` = no better
  than random).

Maps are computed chunk by chunk and streamed to disk, so memory does not grow with the number
of cases. A k-fold ensemble (``train.folds >= 2``) is explained through its members: the maps
are the mean of theirs (:mod:`pipeline.explain.ensemble`), ``layer`` in ``faithfulness.json`` is
the member-level layer name, and the deletion test scores the ensemble's output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.stages.common import load_inputs, load_trained, select_cases

log = logging.getLogger(__name__)

CASES = "cases.csv"
FAITHFULNESS = "faithfulness.json"
CASE_COLUMNS = ("sample_id", "split", "patient", "label", "index", "has_mask")
CHUNK = 64  # cases per explain call (bounds memory for 3D volumes)


def maps_file(method: str) -> str:
    """File name of a method's maps (``gradcam++`` -> ``maps_gradcampp.npy``)."""
    return f"maps_{method.replace('+', 'p')}.npy"


@dataclass(frozen=True)
class Explained:
    """What the explain stage wrote: case rows, methods (in params order) and their maps."""

    rows: tuple[dict[str, str], ...]
    methods: tuple[str, ...]
    maps: dict[str, np.ndarray]  # method -> memory-mapped (N, *spatial)
    faithfulness: dict[str, Any]


def run_explain(task: TaskParams, *, data_dir: Path, model_dir: Path, out_dir: Path, seed: int
                ) -> Explained:
    """Explain the trained model of ``task`` on the cases selected by ``task.explain``.

    Args:
        task: Validated task params.
        data_dir: ``data/interim/<task>``.
        model_dir: ``models/<task>``.
        out_dir: ``explain/<task>``.
        seed: Seed of the random masks of the deletion test.

    Raises:
        ValueError: No case selected, a bad target layer (names the candidates) or a model
            trained for another label set.
    """
    from pipeline.dataset.store import ArrayWriter, open_array
    from pipeline.explain import Explainer, deletion_test
    from pipeline.ingest.tables import write_table
    from pipeline.utils.atomic import write_json

    ep = task.explain
    cases = select_cases(data_dir, ep.splits, limit=ep.max_cases)
    if not len(cases):
        raise ValueError(f"no case to explain in splits {list(ep.splits)} of task {task.name!r}; "
                         f"check tasks.{task.name}.explain.splits")
    model, card = load_trained(model_dir, task)
    explainer = Explainer(model, layer=ep.layer, backbone=card.get("backbone"))
    images = open_array(data_dir / "images.npy")
    spatial = tuple(images.shape[1:-1])
    faithfulness: dict[str, Any] = {"layer": explainer.layer}
    for method in ep.methods:
        parts: list[Any] = []
        with ArrayWriter(out_dir / maps_file(method), capacity=len(cases), item_shape=spatial,
                         dtype="float32") as writer:
            for start in range(0, len(cases), CHUNK):
                x = load_inputs(images, cases.indices[start:start + CHUNK])
                maps = explainer.maps(x, method=method, batch_size=ep.batch_size)
                for heatmap in maps:
                    writer.append(heatmap)
                parts.append(deletion_test(model, x, maps, fraction=ep.deletion_fraction,
                                           n_random=ep.deletion_random, seed=seed + start,
                                           batch_size=ep.batch_size))
        summary = _merge(parts).summary()
        faithfulness[method] = summary
        log.info("explain %s: %s on %d cases; deletion drop %.3f (map) vs %.3f (random)%s", task.name,
                 method, len(cases), summary["mean_drop_map"], summary["mean_drop_random"],
                 "  FLAG: no better than random" if summary["flag"] else "")
    write_table(out_dir / CASES, [{k: r.get(k, "") for k in CASE_COLUMNS} for r in cases.rows], CASE_COLUMNS)
    write_json(out_dir / FAITHFULNESS, faithfulness)
    result = read_explained(out_dir, methods=ep.methods)
    assert result is not None
    return result


def _merge(parts: list[Any]) -> Any:
    """One deletion result from the per-chunk ones."""
    from pipeline.explain import DeletionResult

    first = parts[0]
    return DeletionResult(first.fraction, first.fill,
                          np.concatenate([p.p_original for p in parts]),
                          np.concatenate([p.drop_map for p in parts]),
                          np.concatenate([p.drop_random for p in parts]))


def read_explained(out_dir: Path, methods: tuple[str, ...] | None = None) -> Explained | None:
    """Read the explain stage's outputs (maps memory-mapped); None if there are none.

    Args:
        out_dir: ``explain/<task>``.
        methods: Methods in order (default: those recorded in ``faithfulness.json``).
    """
    import json

    from pipeline.dataset.store import open_array
    from pipeline.ingest.tables import read_table

    out_dir = Path(out_dir)
    if not (out_dir / CASES).is_file() or not (out_dir / FAITHFULNESS).is_file():
        return None
    faithfulness = json.loads((out_dir / FAITHFULNESS).read_text(encoding="utf-8"))
    if methods is None:
        methods = tuple(k for k in faithfulness if k != "layer")
    maps = {m: open_array(out_dir / maps_file(m)) for m in methods}
    return Explained(tuple(read_table(out_dir / CASES)), tuple(methods), maps, faithfulness)
