"""``predict``: a trained model on new, unlabeled studies -> the same case report.

Each input (a DICOM file, a DICOM series folder or a NIfTI file) goes through the ingest
preprocessing recorded in the model card, then the model and Grad-CAM; the output folder gets a
report (``index.html`` + one page per study) and ``predictions.csv``. Studies that cannot be read
are listed in ``rejected.csv`` with their reason, like ingest's quarantine. The probabilities use
the test-time augmentation the evaluate stage validated the threshold with (see
:mod:`pipeline.evaluate.tta`); heatmaps are averaged over the views the explain stage used
(``explain.tta``, recorded in the metrics; :mod:`pipeline.explain.averaged`). Multi-class and multi-label
models get a map for every label (the page's "Heatmap for" selector), as the report has.
``--model`` may also name an export folder (``python -m pipeline export``): its SavedModel gives
the probabilities, and the pages come without heatmaps (Grad-CAM needs the Keras model).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.csv"
REJECTED = "rejected.csv"
#: Why pages made from an export have no heatmaps (in the report's notes and the log).
NO_HEATMAPS = ("these probabilities come from an exported SavedModel, and explanations need the "
               "Keras model: run predict with --model models/<task> for heatmaps.")


@dataclass(frozen=True)
class Prediction:
    sample_id: str
    predicted_label: str
    probability: float
    probabilities: dict[str, float]


def study_id(path: Path) -> str:
    """A pseudonymous, stable id for an input: a hash of its bytes (never of its name, which may
    hold identifiers). A folder hashes its files' bytes in sorted order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "S" + digest.hexdigest()[:16]


def run_predict(model_dir: Path, inputs: Sequence[Path], out_dir: Path, *, threshold: float | None = None,
                metrics_path: Path | None = None, method: str | None = None, layer: str | None = None,
                show_free_text: bool = False, tta: str | None = None) -> list[Prediction]:
    """Predict and explain ``inputs`` with the model in ``model_dir``; write the report to ``out_dir``.

    Args:
        model_dir: ``models/<task>`` (model + card), or an export folder (``exports/serving/<task>``,
            :mod:`pipeline.export`): probabilities then come from its SavedModel's serving
            signature (fed the uint8 grid), and the pages have no heatmaps (explanations need the
            Keras model; the report's notes and the log say so). Without a matching metrics file
            the threshold and TTA mode recorded in the export's manifest are used.
        inputs: DICOM files, DICOM series folders or NIfTI files.
        out_dir: Report folder (replaced).
        threshold: Operating threshold for binary models; default: the one the evaluate stage
            chose on validation (``metrics_path``), else 0.5 (the report then says so).
        metrics_path: ``metrics/<task>.json`` holding that threshold (default: that path
            relative to the working directory, for the card's task).
        method: Explanation method shown (see :data:`pipeline.config.EXPLAIN_METHODS`); default:
            the method the explain stage reported for this model (recorded in ``metrics_path``,
            possibly chosen on validation by ``explain.methods: auto``), else ``gradcam``.
        layer: Grad-CAM target layer (a layer name, ``auto`` or ``auto:N``); default: the layer
            the explain stage used for this model (recorded in ``metrics_path``), so new studies
            get the same kind of map as the pipeline's report; else ``auto``. For a k-fold
            ensemble (``train.folds``) this is a layer of its members, found in each; the heatmap
            is the mean of the members' maps (:mod:`pipeline.explain.ensemble`).
        show_free_text: Also show free-text header fields (SeriesDescription) on the pages.
        tta: Test-time augmentation (:data:`pipeline.evaluate.tta.TTA_MODES`); default: the mode
            the evaluate stage used (recorded in ``metrics_path``), since its threshold was chosen
            on those averaged probabilities; else ``none``. Heatmaps are of the original image.

    Raises:
        ValueError: No readable input, a bad threshold or a bad ``tta`` mode.
    """
    from pipeline.dataset.tables import write_table
    from pipeline.evaluate.tta import check_tta_mode, n_views, tta_predict
    from pipeline.export import is_export_dir
    from pipeline.report import build_report
    from pipeline.train.card import matching_metrics, read_card

    served = is_export_dir(model_dir)  # exports/serving/<task>: a SavedModel, no Keras model
    card = read_card(model_dir)
    if metrics_path is None and card.get("task"):
        metrics_path = Path("metrics") / f"{card['task']}.json"  # the pipeline's layout, from the repo root
    labels = tuple(card["labels"])
    problem = card["problem"]
    notes = ["Research use only. Not for diagnosis or treatment decisions.",
             "These studies have no ground truth here: the pages show the model's output only."]
    metrics = matching_metrics(metrics_path, card)
    if metrics is None and served:  # the threshold and TTA mode recorded at export
        from pipeline.export import read_manifest, recorded_decision

        metrics = recorded_decision(read_manifest(model_dir))
    point = _operating_point(problem, labels, metrics, threshold, notes)
    threshold = point.binary_threshold
    recorded = (metrics or {}).get("explain", {})
    if layer is None:
        layer = str(recorded.get("layer") or "auto")
    if method is None:
        method = str((recorded.get("methods") or ["gradcam"])[0])
    map_views = check_tta_mode(str(recorded.get("tta") or "none"))  # as the explain stage averaged them
    tta = check_tta_mode(_resolve_tta(tta, metrics))
    log.info("predict: test-time augmentation %s (%d view(s))", tta, n_views(tta))
    if tta != "none":
        notes.append(f"Probabilities are the mean over {n_views(tta)} views of each study "
                     f"(test-time augmentation: {tta}).")
    if served:
        from pipeline.export import load_export

        model, explainer, predict_batch = None, None, load_export(model_dir)  # uint8 grids in
        notes.append(f"No heatmaps: {NO_HEATMAPS}")
        log.warning("predict: %s", NO_HEATMAPS)
    else:
        from pipeline.explain import Explainer
        from pipeline.train.card import load_model

        notes.append(f"Heatmaps are the mean of the maps of {n_views(map_views)} views of each study "
                     f"({map_views}), as the explain stage made them for this model." if map_views != "none"
                     else "Heatmaps are of the original image.")
        model = load_model(model_dir)
        explainer = Explainer(model, layer=layer, backbone=card.get("backbone"))
        predict_batch = model.predict_on_batch  # float32 in [0, 1] in
        log.info("predict: heatmaps from layer %s", explainer.layer)
    ingest = _ingest_params(card)
    results: list[Prediction] = []
    rejected: list[dict[str, str]] = []

    def cases() -> Iterator[Any]:
        for position, path in enumerate(inputs):
            prepared = _prepare(card["kind"], ingest, position, Path(path))
            if isinstance(prepared, str):
                rejected.append({"input": f"#{position + 1}", "reason": prepared})
                log.warning("predict: input #%d rejected: %s", position + 1, prepared)
                continue
            sid = study_id(Path(path))
            grid = prepared.image[None]  # uint8, as images.npy stores it
            x = grid.astype(np.float32) / np.float32(255.0)
            out = tta_predict(predict_batch, grid if served else x, mode=tta)[0]  # views move pixels only
            probs = np.array([1.0 - out[0], out[0]]) if problem == "binary" else out
            if explainer is None:
                heat, label_heats = None, {}
            elif problem == "binary":
                heat, label_heats = explainer.maps(x, method=method, tta=map_views)[0], {}
            else:  # every label's evidence, as the report has; the shown one is the most probable
                label_heats = {label: explainer.maps(x, method=method, class_index=k, tta=map_views)[0]
                               for k, label in enumerate(labels)}
                heat = label_heats[labels[int(np.argmax(model.predict_on_batch(x)[0]))]]
            predicted, probability = point.decide(probs, labels)
            per_label = dict(zip(labels, map(float, probs), strict=True))
            results.append(Prediction(sid, predicted, probability, per_label))
            log.info("predict %s: %s (p=%.3f%s)", sid, predicted, probability,
                     f", threshold {threshold:.3f}" if threshold is not None else "")
            yield _case_record(card, ingest, Path(path), prepared, sid, predicted, probability, probs, labels,
                               threshold, heat, method, show_free_text, label_heats)

    build_report(out_dir, task_name=f"{card.get('task', 'model')} (new studies)", kind=card["kind"],
                 labels=labels, cases=cases(), card=card, metrics=None, notes=notes)
    write_table(out_dir / PREDICTIONS, [
        {"sample_id": r.sample_id, "predicted_label": r.predicted_label,
         "probability": round(r.probability, 6),
         **{f"p_{k}": round(v, 6) for k, v in r.probabilities.items()}} for r in results],
        ("sample_id", "predicted_label", "probability"))
    write_table(out_dir / REJECTED, rejected, ("input", "reason"))
    if not results:
        raise ValueError(f"none of the {len(inputs)} input(s) could be read; see {out_dir / REJECTED}")
    return results


def _resolve_tta(tta: str | None, metrics: dict[str, Any] | None) -> str:
    """``tta`` if given, else the mode recorded by the evaluate stage, else ``none``."""
    recorded = str((metrics or {}).get("tta", {}).get("mode") or "none")
    if tta is None:
        return recorded
    if metrics is not None and tta != recorded:
        log.warning("predict: tta %r overrides the evaluate stage's %r; the validated threshold was "
                    "chosen with %r", tta, recorded, recorded)
    return tta


def _ingest_params(card: dict[str, Any]) -> Any:
    """The ingest settings the model was trained with (model card), as IngestParams."""
    from pipeline.train.card import card_ingest_params

    return card_ingest_params(card)


def _prepare(kind: str, ingest: Any, position: int, path: Path) -> Any:
    """Ingest preprocessing of one input: a SampleResult, or the rejection reason."""
    from pipeline.ingest.samples import SampleJob, process

    if not path.exists():
        return "input not found"
    result = process(SampleJob(position=position, path=path, mask=None, kind=kind, settings=ingest,
                               needs_patient_id=False, keep_source=True))
    if result.rejection is not None:
        return result.rejection[0]
    return result


def _operating_point(problem: str, labels: tuple[str, ...], metrics: dict[str, Any] | None,
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
    section = (metrics or {}).get("threshold")
    point = OperatingPoint.from_json(problem, labels, section)
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


def _case_record(card: dict[str, Any], ingest: Any, path: Path, prepared: Any, sid: str, predicted: str,
                 probability: float, probs: np.ndarray, labels: tuple[str, ...], threshold: float | None,
                 heat: np.ndarray | None, method: str, show_free_text: bool,
                 label_heats: dict[str, np.ndarray]) -> Any:
    """The case page of one new study, from the source decoded once for the model."""
    from pipeline.explain.outputs import METHOD_NAMES
    from pipeline.preprocess.geometry import geometry_from_json
    from pipeline.report import NONE_PRESENT, CaseRecord
    from pipeline.report.source import display_2d, display_3d

    geometry = geometry_from_json(prepared.meta["geometry"])
    on_grid = heat if heat is not None else np.zeros(prepared.image.shape[:-1], np.float32)
    if card["kind"] == "2d":
        shown = display_2d(prepared.source, path, ingest, geometry, on_grid, None, free_text=show_free_text,
                           label_heats=label_heats)
        attributes = shown.pop("attributes")
        shown.pop("mask")
    else:
        volume, meta = prepared.source
        shown = display_3d(volume, meta, ingest, geometry, on_grid, None, label_heats)._asdict()
        shown.pop("mask")
        attributes = {}
    if heat is None:  # a prediction from an export: the page says no heatmap was computed
        shown["heatmap"] = None
    return CaseRecord(sample_id=sid, split="new", true_label=None, predicted_label=predicted or NONE_PRESENT,
                      probability=probability,
                      probabilities=dict(zip(labels, map(float, probs), strict=True)),
                      threshold=threshold, attributes=attributes, method=METHOD_NAMES.get(method, method),
                      **shown)


def main(args: Any) -> int:
    """``python -m pipeline predict --model models/T --input ... --out ...``."""
    try:
        results = run_predict(args.model, args.input, args.out, threshold=args.threshold,
                              metrics_path=args.metrics, method=args.method, layer=args.layer,
                              show_free_text=args.show_free_text, tta=args.tta)
    except ValueError as exc:
        log.error("predict: %s", exc)
        return 1
    for r in results:
        print(f"{r.sample_id}\t{r.predicted_label}\t{r.probability:.4f}")
    return 0
