"""The ``explain`` stage's work, :func:`run_explain` (entry point :mod:`pipeline.stages.explain`):
class activation maps for the selected cases and their faithfulness.

Outputs in ``explain/<task>/``:

- ``cases.csv``: the explained cases (``sample_id, split, patient, label, index, has_mask``), in
  the order of the map arrays.
- ``maps_<method>.npy``: float32 ``(N, H, W)`` / ``(N, D, H, W)`` maps in [0, 1] on the model's
  input grid (the ingest geometry: same as ``images.npy`` and ``masks.npy``), one file per method
  (``gradcam++`` is written ``maps_gradcampp.npy``).
- ``maps_<method>_labels.npy``: multi-class and multi-label tasks with ``explain.per_label``: the
  reported method's map for every label, float32 ``(N, K, *spatial)`` in the task's label order
  (``maps_<method>.npy`` holds each case's most probable label).
- ``audit.json``: the shortcut audit of the reported maps per case (heat share on the border, on
  burned-in markers, outside the body; :mod:`pipeline.explain.audit`); its summary is also in
  ``faithfulness.json`` under ``audit``.
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
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.dataset.cases import load_inputs, select_cases
from pipeline.dataset.layout import InterimLayout
from pipeline.explain.outputs import (
    AUDIT,
    CASE_COLUMNS,
    CASES,
    FAITHFULNESS,
    Explained,
    label_maps_file,
    maps_file,
    read_explained,
)
from pipeline.train.card import load_trained

log = logging.getLogger(__name__)

CHUNK = 64  # cases per explain call (bounds memory for 3D volumes)


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
    from pipeline.dataset.tables import write_table
    from pipeline.explain import Explainer, deletion_test
    from pipeline.utils.atomic import write_json

    ep = task.explain
    cases = select_cases(data_dir, ep.splits, limit=ep.max_cases)
    if not len(cases):
        raise ValueError(f"no case to explain in splits {list(ep.splits)} of task {task.name!r}; "
                         f"check tasks.{task.name}.explain.splits")
    model, card = load_trained(model_dir, task)
    images = open_array(InterimLayout(data_dir).images)
    choice = _choose(task, model, card, data_dir, images, seed=seed)
    methods = resolved_methods(ep.methods, choice)
    layer = choice.layer if choice is not None else library_layer(ep.layer)
    explainer = Explainer(model, layer=layer, backbone=card.get("backbone"))
    spatial = tuple(images.shape[1:-1])
    faithfulness: dict[str, Any] = {"layer": explainer.layer, "methods": list(methods), "tta": ep.tta}
    if choice is not None:
        faithfulness["selection"] = choice.as_dict()
    for method in methods:
        parts: list[Any] = []
        with ArrayWriter(out_dir / maps_file(method), capacity=len(cases), item_shape=spatial,
                         dtype="float32") as writer:
            for start in range(0, len(cases), CHUNK):
                x = load_inputs(images, cases.indices[start:start + CHUNK])
                maps = explainer.maps(x, method=method, batch_size=ep.batch_size, tta=ep.tta)
                for heatmap in maps:
                    writer.append(heatmap)
                parts.append(deletion_test(model, x, maps, fraction=ep.deletion_fraction,
                                           n_random=ep.deletion_random, seed=seed + start,
                                           batch_size=ep.batch_size, fill=ep.deletion_fill))
        summary = _merge(parts).summary(scored_on="predicted")
        faithfulness[method] = summary
        log.info("explain %s: %s on %d cases; deletion drop %.3f (map) vs %.3f (random)%s", task.name,
                 method, len(cases), summary["mean_drop_map"], summary["mean_drop_random"],
                 "  FLAG: no better than random" if summary["flag"] else "")
    _label_maps(task, explainer, images, cases, methods[0], out_dir)
    audit = _audit(task, images, cases, open_array(out_dir / maps_file(methods[0])))
    write_json(out_dir / AUDIT, audit)  # per case; the summary also goes to metrics via faithfulness
    faithfulness["audit"] = {"method": methods[0], "summary": audit["summary"]}
    write_table(out_dir / CASES, [{k: r.get(k, "") for k in CASE_COLUMNS} for r in cases.rows], CASE_COLUMNS)
    write_json(out_dir / FAITHFULNESS, faithfulness)
    result = read_explained(out_dir, methods=methods)
    if result is None:  # the files were just written: only a concurrent writer could remove them
        raise RuntimeError(f"explain outputs in {out_dir} disappeared while being written")
    return result


def _label_maps(task: TaskParams, explainer: Any, images: Any, cases: Any, method: str,
                out_dir: Path) -> None:
    """Write the reported method's map for every label (multi-class/multi-label tasks with
    ``explain.per_label``); otherwise remove a stale file from an earlier run."""
    from pipeline.dataset.store import ArrayWriter

    path = out_dir / label_maps_file(method)
    if task.problem == "binary" or not task.explain.per_label:
        path.unlink(missing_ok=True)
        return
    n_labels = len(task.labels)
    spatial = tuple(images.shape[1:-1])
    with ArrayWriter(path, capacity=len(cases), item_shape=(n_labels, *spatial), dtype="float32") as writer:
        for start in range(0, len(cases), CHUNK):
            x = load_inputs(images, cases.indices[start:start + CHUNK])
            per_label = [explainer.maps(x, method=method, class_index=k, batch_size=task.explain.batch_size,
                                        tta=task.explain.tta) for k in range(n_labels)]
            for stack in np.stack(per_label, axis=1):
                writer.append(stack)
    log.info("explain %s: %s maps for each of %d labels on %d cases", task.name, method, n_labels,
             len(cases))


def _audit(task: TaskParams, images: Any, cases: Any, maps: Any) -> dict[str, Any]:
    """Shortcut audit of the reported maps (:func:`pipeline.explain.audit.shortcut_audit`): the
    share of heat on the image border, on burned-in markers (2D) and outside the body, per case
    and for the set, with chance levels and a model-level warning."""
    from pipeline.explain.audit import shortcut_audit

    x = np.stack([np.asarray(images[int(i)]) for i in cases.indices])  # uint8: a byte per pixel
    hu = {"hu_window": tuple(task.ingest.hu_window)} if task.kind == "3d" else {}
    report = shortcut_audit(np.asarray(maps, np.float32), x, task.kind,
                            indices=[int(i) for i in cases.indices], **hu)
    summary = report["summary"]
    if summary.get("warning"):
        log.warning("explain %s: %s (%s)", task.name, summary["warning"],
                    ", ".join(summary.get("flagged_regions") or []))
    return report


def library_layer(layer: str) -> str:
    """The target-layer setting for :class:`pipeline.explain.Explainer`: ``last`` is the library's
    ``auto`` (the last block); names and ``auto:N`` pass through."""
    return "auto" if layer == "last" else layer


def resolved_methods(methods: str | tuple[str, ...], choice: Any) -> tuple[str, ...]:
    """Methods to compute, the reported one first: the chosen method with ``methods: auto``; with
    explicit methods and ``layer: auto`` the chosen one moves first."""
    if choice is None:
        return tuple(methods)
    if methods == "auto":
        return (choice.method,)
    return (choice.method, *(m for m in methods if m != choice.method))


def _choose(task: TaskParams, model: Any, card: dict[str, Any], data_dir: Path, images: Any, *,
            seed: int) -> Any:
    """Run :func:`pipeline.explain.selection.select` on the validation cases of the explained
    class when ``methods`` or ``layer`` is ``auto``; None otherwise."""
    from pipeline.dataset.store import open_array
    from pipeline.explain.selection import AUTO_METHODS, candidate_layers, select

    ep = task.explain
    if ep.methods != "auto" and ep.layer != "auto":
        return None
    val = select_cases(data_dir, ("val",))
    explained_label = task.labels[-1] if task.problem == "binary" else None
    keep = [i for i, r in enumerate(val.rows) if explained_label is None or r["label"] == explained_label]
    if not keep:  # no validation case of the class: the deletion test still scores all of them
        log.warning("explain %s: no validation case labelled %r; choosing the explanation on all %d "
                    "validation cases", task.name, explained_label, len(val.rows))
        keep = list(range(len(val.rows)))
    if not keep:
        raise ValueError(f"explain.methods/layer 'auto' choose on the validation split, and task "
                         f"{task.name!r} has no validation case; set tasks.{task.name}.explain.methods "
                         "and .layer explicitly")
    indices = val.indices[keep]
    x = load_inputs(images, indices)
    masks = None
    if InterimLayout(data_dir).masks.is_file():
        stored = open_array(InterimLayout(data_dir).masks)
        masks = np.stack([np.asarray(stored[int(i)])[..., 0] for i in indices])
    methods = AUTO_METHODS if ep.methods == "auto" else ep.methods
    layers = candidate_layers(model) if ep.layer == "auto" else (library_layer(ep.layer),)
    choice = select(model, x, masks, methods=methods, layers=layers, fraction=ep.deletion_fraction,
                    n_random=ep.deletion_random, seed=seed, batch_size=ep.batch_size,
                    fill=ep.deletion_fill, backbone=card.get("backbone"), tta=ep.tta)
    log.info("explain %s: chose %s at %s (%s)", task.name, choice.method, choice.layer, choice.rule)
    return choice


def _merge(parts: list[Any]) -> Any:
    """One deletion result from the per-chunk ones."""
    from pipeline.explain import DeletionResult

    first = parts[0]
    return DeletionResult(first.fraction, first.fill,
                          np.concatenate([p.p_original for p in parts]),
                          np.concatenate([p.drop_map for p in parts]),
                          np.concatenate([p.drop_random for p in parts]))
