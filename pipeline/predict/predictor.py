"""The model side of ``predict``: a trained model (or a serving export) with the decision and
explanation settings the pipeline validated for it, loaded once (:func:`load_predictor`).

The threshold, test-time augmentation mode, explanation method and Grad-CAM layer default to
what the evaluate and explain stages recorded in ``metrics/<task>.json`` for this very model
(a metrics file of another model is ignored, with a warning); arguments override them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Why pages made from an export have no heatmaps (in the report's notes and the log).
NO_HEATMAPS = ("these probabilities come from an exported SavedModel, and explanations need the "
               "Keras model: run predict with --model models/<task> for heatmaps.")


@dataclass(frozen=True, eq=False)
class Predictor:
    """A loaded model and the settings its predictions are made with.

    Attributes:
        card: The model card. ``labels``, ``problem``, ``kind``: from it.
        point: The :class:`~pipeline.evaluate.OperatingPoint` deciding labels.
        ingest: The IngestParams the model was trained with (the card's preprocessing).
        tta: Test-time augmentation of the probabilities; ``map_views``: of the heatmaps.
        method, layer: Explanation method and Grad-CAM target layer (as resolved).
        predict_batch: Batch -> ``(N, K)`` probabilities; fed the uint8 grid when ``served``,
            else float32 in [0, 1].
        model: The Keras model (None for an export); ``explainer``: its Grad-CAM (or None).
        notes: Sentences for the report's index.
        model_hash: SHA-256 of every file of the model folder (the resume journal's key).
    """

    card: dict[str, Any]
    point: Any
    ingest: Any
    tta: str
    map_views: str
    method: str
    layer: str
    served: bool
    predict_batch: Callable[[Any], Any]
    model: Any
    explainer: Any
    model_hash: str
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card["labels"])

    @property
    def problem(self) -> str:
        return str(self.card["problem"])

    @property
    def kind(self) -> str:
        return str(self.card["kind"])

    @property
    def threshold(self) -> float | None:
        return self.point.binary_threshold


def load_predictor(model_dir: Path, *, threshold: float | None = None, metrics_path: Path | None = None,
                   method: str | None = None, layer: str | None = None, tta: str | None = None,
                   explain: bool = True) -> Predictor:
    """Load ``model_dir`` (``models/<task>`` or an export folder) with its validated settings.

    Args:
        model_dir, threshold, metrics_path, method, layer, tta: See
            :func:`pipeline.predict.run_predict`.
        explain: Prepare Grad-CAM (not needed without pages).

    Raises:
        ValueError: A bad threshold or ``tta`` mode.
    """
    from pipeline.evaluate.tta import check_tta_mode, n_views
    from pipeline.export import is_export_dir
    from pipeline.train.card import card_ingest_params, matching_metrics, read_card

    served = is_export_dir(model_dir)  # exports/serving/<task>: a SavedModel, no Keras model
    card = read_card(model_dir)
    if metrics_path is None and card.get("task"):
        metrics_path = Path("metrics") / f"{card['task']}.json"  # the pipeline's layout, from the repo root
    notes = ["Research use only. Not for diagnosis or treatment decisions.",
             "These studies have no ground truth here: the pages show the model's output only."]
    metrics = matching_metrics(metrics_path, card)
    if metrics is None and served:  # the threshold and TTA mode recorded at export
        from pipeline.export import read_manifest, recorded_decision

        metrics = recorded_decision(read_manifest(model_dir))
    point = operating_point(card["problem"], tuple(card["labels"]), metrics, threshold, notes)
    recorded = (metrics or {}).get("explain", {})
    layer = layer if layer is not None else str(recorded.get("layer") or "auto")
    method = method if method is not None else str((recorded.get("methods") or ["gradcam"])[0])
    map_views = check_tta_mode(str(recorded.get("tta") or "none"))  # as the explain stage averaged them
    tta = check_tta_mode(resolve_tta(tta, metrics))
    log.info("predict: test-time augmentation %s (%d view(s))", tta, n_views(tta))
    if tta != "none":
        notes.append(f"Probabilities are the mean over {n_views(tta)} views of each study "
                     f"(test-time augmentation: {tta}).")
    model, explainer, predict_batch = _load(model_dir, card, served, layer, explain and not served)
    if served:
        notes.append(f"No heatmaps: {NO_HEATMAPS}")
        log.warning("predict: %s", NO_HEATMAPS)
    elif explain:
        notes.append(f"Heatmaps are the mean of the maps of {n_views(map_views)} views of each study "
                     f"({map_views}), as the explain stage made them for this model." if map_views != "none"
                     else "Heatmaps are of the original image.")
        log.info("predict: heatmaps from layer %s", explainer.layer)
        layer = explainer.layer
    return Predictor(card=card, point=point, ingest=card_ingest_params(card), tta=tta, map_views=map_views,
                     method=method, layer=layer, served=served, predict_batch=predict_batch, model=model,
                     explainer=explainer, model_hash=folder_hash(model_dir), notes=notes)


def _load(model_dir: Path, card: dict[str, Any], served: bool, layer: str,
          explain: bool) -> tuple[Any, Any, Callable[[Any], Any]]:
    """``(model, explainer, predict_batch)``: an export's serving function (uint8 grids in), or
    the Keras model (float32 in [0, 1] in) and, with ``explain``, its Grad-CAM."""
    if served:
        from pipeline.export import load_export

        return None, None, load_export(model_dir)
    from pipeline.train.card import load_model

    model = load_model(model_dir)
    explainer = None
    if explain:
        from pipeline.explain import Explainer

        explainer = Explainer(model, layer=layer, backbone=card.get("backbone"))
    return model, explainer, model.predict_on_batch


def folder_hash(path: Path) -> str:
    """SHA-256 over a folder's files (relative names and bytes, sorted), or a file's bytes."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_tta(tta: str | None, metrics: dict[str, Any] | None) -> str:
    """``tta`` if given, else the mode recorded by the evaluate stage, else ``none``."""
    recorded = str((metrics or {}).get("tta", {}).get("mode") or "none")
    if tta is None:
        return recorded
    if metrics is not None and tta != recorded:
        log.warning("predict: tta %r overrides the evaluate stage's %r; the validated threshold was "
                    "chosen with %r", tta, recorded, recorded)
    return tta


def operating_point(problem: str, labels: tuple[str, ...], metrics: dict[str, Any] | None,
                    threshold: float | None, notes: list[str]) -> Any:
    """The evaluate stage's operating point (per-label thresholds for multi-label tasks), or a
    binary ``threshold`` given by the caller; says in ``notes`` where 0.5 stands in."""
    from pipeline.evaluate import OperatingPoint

    if threshold is not None:
        if problem != "binary":
            raise ValueError(f"threshold applies to binary models only; this model is {problem}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1). Received: {threshold}")
        return OperatingPoint("binary", repr(float(threshold)), (float(threshold),))
    point = OperatingPoint.from_json(problem, labels, (metrics or {}).get("threshold"))
    if problem == "multiclass":
        return point
    if point.fallback:
        missing = [labels[1] if problem == "binary" else labels[i] for i in point.fallback]
        notes.append(f"No validated threshold was found for {', '.join(missing)} (metrics file "
                     "missing or incomplete): 0.5 is used; calls near it are unreliable.")
    else:
        shown = (f"{point.thresholds[0]:.3f}" if problem == "binary" else
                 ", ".join(f"{n} {t:.3f}" for n, t in zip(labels, point.thresholds, strict=True)))
        notes.append(f"Threshold{'s' if problem == 'multilabel' else ''} {shown} "
                     f"{'was' if problem == 'binary' else 'were'} chosen on the validation split "
                     "by the evaluate stage.")
    return point
