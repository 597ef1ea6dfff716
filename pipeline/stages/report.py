"""The ``report`` stage: the clinician-facing HTML site of the explained cases; and
``export-dicom``: the same overlays as DICOM Secondary Captures for PACS (opt-in, outside DVC).

Cases are shown at the source's own resolution where the source can be read again
(:mod:`pipeline.report.source` maps the model-grid heatmaps back through the ingest geometry);
otherwise on the model's input grid, and the page says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.dataset.layout import InterimLayout
from pipeline.explain.outputs import METHOD_NAMES
from pipeline.preprocess.geometry import geometry_of
from pipeline.report.notes import headline, report_notes
from pipeline.report.source import (
    full_resolution_2d,
    labels_csv_attributes,
    read_source_2d,
    source_path,
    source_view_3d,
)
from pipeline.utils.jsonio import read_json

log = logging.getLogger(__name__)

def run_report(task: TaskParams, *, data_dir: Path, source_dir: Path | None, model_dir: Path,
               explain_dir: Path, eval_dir: Path, metrics_path: Path, out_dir: Path) -> Path:
    """Build ``reports/<task>/`` from the explain and evaluate outputs.

    Args:
        task: Validated task params (``task.report`` holds the knobs).
        data_dir: ``data/interim/<task>``.
        source_dir: The dataset folder ingest read (full-resolution 2D images), or None.
        model_dir: ``models/<task>`` (the model card).
        explain_dir: ``explain/<task>``.
        eval_dir: ``eval/<task>`` (predictions).
        metrics_path: ``metrics/<task>.json``.
        out_dir: ``reports/<task>``; replaced as a whole.

    Returns:
        Path of ``index.html``.

    Raises:
        ValueError: Missing explain outputs or predictions for the explained cases.
    """
    from pipeline.evaluate import read_predictions
    from pipeline.explain.outputs import read_explained
    from pipeline.report import build_report
    from pipeline.train.card import read_card

    explained = read_explained(explain_dir)
    if explained is None:
        raise ValueError(f"no explain outputs in {explain_dir}; run the explain stage first")
    if explained.label_maps is not None and explained.label_maps.shape[1] != len(task.labels):
        raise ValueError(f"per-label maps in {explain_dir} have {explained.label_maps.shape[1]} labels, "
                         f"task {task.name!r} has {len(task.labels)}; rerun the explain stage")
    metrics = read_json(metrics_path)
    card = read_card(model_dir)
    preds = read_predictions(eval_dir / "predictions.csv")
    decide = _Decision(task, metrics)
    method = explained.methods[0]
    notes = report_notes(metrics, explained.faithfulness, method)
    cases = _cases(task, data_dir, source_dir, explained, preds, decide, method)
    shown = headline(metrics, decide.threshold, explained.faithfulness.get(method))
    return build_report(out_dir, task_name=task.name, kind=task.kind, labels=task.labels, cases=cases,
                        card=card, metrics=shown,
                        notes=notes,
                        low_confidence_margin=max(task.report.uncertain_band, 1e-6),
                        highlight_limit=task.report.highlight_limit,
                        **performance_inputs(task, metrics, eval_dir))


def performance_inputs(task: TaskParams, metrics: Mapping[str, Any], eval_dir: Path) -> dict[str, Any]:
    """What the index's figures and tables need from the evaluate outputs: the test curves
    (``eval/<task>/plots``; missing files are left out), each thresholded class's operating
    point, the confusion matrix at it (binary and multiclass) and the ``subgroups`` section."""
    from pipeline.evaluate import PLOT_FILES
    from pipeline.evaluate.curves import PLOTS
    from pipeline.report.performance import OperatingMark

    curves = {}
    for name in ("roc", "pr", "calibration"):
        path = eval_dir / PLOTS / PLOT_FILES[name]
        if path.is_file():
            curves[name] = json.loads(path.read_text(encoding="utf-8"))
    test = metrics.get("test", {})
    section = metrics.get("threshold", {})
    marks = {}
    if task.problem == "binary" and isinstance(section.get("value"), int | float):
        scopes = {task.labels[1]: (float(section["value"]), test)}
    elif task.problem == "multilabel" and isinstance(section.get("value"), Mapping):
        per_class = test.get("per_class", {})
        scopes = {n: (float(t), per_class.get(n, {})) for n, t in section["value"].items()}
    else:
        scopes = {}
    for name, (threshold, block) in scopes.items():
        marks[name] = OperatingMark(threshold, sensitivity=block.get("recall"),
                                    specificity=block.get("specificity"),
                                    precision=block.get("precision"))
    return {"curves": curves, "operating_points": marks, "subgroups": metrics.get("subgroups"),
            "confusion": _confusion(task, test)}


def _confusion(task: TaskParams, test: Mapping[str, Any]) -> list[list[int]] | None:
    """Test confusion counts, rows = truth, columns = prediction, in label order (None for
    multi-label tasks, whose labels are not exclusive)."""
    if task.problem == "binary" and all(isinstance(test.get(k), int) for k in ("tn", "fp", "fn", "tp")):
        return [[test["tn"], test["fp"]], [test["fn"], test["tp"]]]
    table = test.get("confusion")
    if task.problem == "multiclass" and isinstance(table, Mapping):
        return [[int(table.get(a, {}).get(p, 0)) for p in task.labels] for a in task.labels]
    return None


class _Decision:
    """The operating point recorded by the evaluate stage, applied to one case's probabilities
    (:meth:`pipeline.evaluate.OperatingPoint.decide`), plus the case's category against its truth."""

    def __init__(self, task: TaskParams, metrics: Mapping[str, Any]) -> None:
        from pipeline.evaluate import OperatingPoint

        self.problem = task.problem
        self.labels = task.labels
        self.point = OperatingPoint.from_json(task.problem, task.labels, metrics.get("threshold"))
        self.threshold = self.point.binary_threshold

    def __call__(self, probs: np.ndarray, true_label: str | None) -> tuple[str, float, str | None]:
        """``(predicted label, probability shown, category)``."""
        predicted, probability = self.point.decide(probs, self.labels)
        if self.problem != "binary" or true_label is None:
            return predicted, probability, None
        positive, truth = predicted == self.labels[1], true_label == self.labels[1]
        category = f"{'true' if positive == truth else 'false'} {'positive' if positive else 'negative'}"
        return predicted, probability, category


def _cases(task: TaskParams, data_dir: Path, source_dir: Path | None, explained: Any, preds: Any,
           decide: _Decision, method: str) -> Iterator[Any]:
    """One :class:`~pipeline.report.CaseRecord` at a time (images are read lazily)."""
    from pipeline.dataset.store import open_array
    from pipeline.report import NONE_PRESENT, CaseRecord

    images = open_array(InterimLayout(data_dir).images)
    masks = open_array(InterimLayout(data_dir).masks)
    manifest = {r["sample_id"]: r for r in _manifest(data_dir)}
    row_of = {sid: i for i, sid in enumerate(preds.sample_ids)}
    maps = explained.maps[method]
    for k, case in enumerate(explained.rows):
        sid = case["sample_id"]
        if sid not in row_of:
            raise ValueError(f"case {sid} was explained but has no prediction; rerun evaluate")
        probs = preds.probs[row_of[sid]]
        predicted, probability, category = decide(probs, case["label"])
        row = manifest[sid]
        index = int(row["index"])
        heat = np.asarray(maps[k], dtype=np.float32)
        label_heats = ({} if explained.label_maps is None else
                       dict(zip(task.labels, np.asarray(explained.label_maps[k], np.float32), strict=True)))
        mask = np.asarray(masks[index])[..., 0] if row.get("has_mask") == "1" else None
        image = np.asarray(images[index])[..., 0]
        attributes: dict[str, str] = {}
        shown: dict[str, Any] = {"image": image, "heatmap": heat, "mask": mask, "label_heatmaps": label_heats}
        if task.kind == "2d":
            full = full_resolution_2d(task.ingest, source_dir, row, heat, mask,
                                      free_text=task.report.show_free_text, label_heats=label_heats)
            if full is not None:
                shown.update(full)
                attributes = shown.pop("attributes")
            else:
                attributes["Shown at"] = "model input resolution (source image not available)"
        else:
            shown["spacing"] = task.ingest.target_spacing
            full3d = source_view_3d(task.ingest, source_dir, row, heat, mask, label_heats)
            if full3d is not None:
                shown.update(full3d._asdict())
            else:
                attributes["Shown at"] = "model input grid (source volume not available)"
        attributes.update(labels_csv_attributes(row))
        yield CaseRecord(
            sample_id=sid, split=case["split"], true_label=case["label"] or NONE_PRESENT,
            predicted_label=predicted or NONE_PRESENT,
            probability=probability, probabilities=dict(zip(task.labels, map(float, probs), strict=True)),
            threshold=decide.threshold, category=category, attributes=attributes,
            method=METHOD_NAMES.get(method, method), **shown)


def _manifest(data_dir: Path) -> list[dict[str, str]]:
    from pipeline.dataset.tables import read_table

    return read_table(InterimLayout(data_dir).manifest)


def export_dicom(task: TaskParams, *, data_dir: Path, source_dir: Path | None, explain_dir: Path,
                 out_dir: Path, patient_orientation: tuple[str, str] | None = None) -> int:
    """Write each explained 2D case's overlay as a DICOM Secondary Capture in a new series of its
    source study, so it opens next to the original in any DICOM viewer.

    These files carry the source's patient identifiers (PACS files them under the right patient),
    so they are written to their own folder (``exports/<task>``), never into the PHI-free report
    or a DVC output.

    Args:
        task: Validated task params.
        data_dir: ``data/interim/<task>``.
        source_dir: The dataset folder ingest read.
        explain_dir: ``explain/<task>``.
        out_dir: Destination folder; files are named by sample pseudonym.
        patient_orientation: Row/column direction letters for sources without Patient
            Orientation or Image Orientation (Patient) (e.g. ``("L", "F")`` for a PA chest shown
            conventionally); without it such sources are skipped with a warning.

    Returns:
        How many overlays were written.
    """
    from pipeline.explain.outputs import read_explained

    explained = read_explained(explain_dir)
    if explained is None:
        raise ValueError(f"no explain outputs in {explain_dir}; run the explain stage first")
    method = explained.methods[0]
    from pipeline.io.errors import InputRejected
    from pipeline.report import export_secondary_capture, render_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    if task.kind != "2d":
        log.info("export-dicom applies to 2D DICOM tasks; nothing exported for %s", task.name)
        return 0
    manifest = {r["sample_id"]: r for r in _manifest(data_dir)}
    maps = explained.maps[method]
    written = 0
    for k, case in enumerate(explained.rows):
        row = manifest[case["sample_id"]]
        path = source_path(source_dir if not task.ingest.redact_paths else None, row)
        if path is None:
            continue
        try:
            source = read_source_2d(task.ingest, path)
        except (InputRejected, OSError):
            continue
        if source.dataset is None:
            log.warning("export-dicom: %s has no DICOM source (image file); no overlay",
                        case["sample_id"])
            continue
        ds, image = source.dataset, source.image
        heat = geometry_of(row).to_source(np.asarray(maps[k], np.float32), nearest=False, shape=image.shape)
        overlay = render_overlay(np.rint(image * 255).astype(np.uint8), heat)
        orientation = None if _has_orientation(ds) else patient_orientation
        try:
            export_secondary_capture(ds, overlay, out_dir / f"{case['sample_id']}.dcm",
                                     series_description=f"medvision {METHOD_NAMES.get(method, method)} "
                                                        "overlay (not for diagnosis)",
                                     patient_orientation=orientation)
        except ValueError as exc:
            log.warning("export-dicom: no overlay for %s (%s)", case["sample_id"], exc)
            continue
        written += 1
    log.info("export %s: %d DICOM Secondary Capture overlay(s) in %s", task.name, written, out_dir)
    return written


def _has_orientation(ds: Any) -> bool:
    return bool(ds.get("PatientOrientation") or ds.get("ImageOrientationPatient"))


def main(args: Any) -> int:
    """``python -m pipeline report --task T ...``: the HTML report."""
    from pipeline.config import load_params
    from pipeline.sources import resolve_source

    task = load_params(args.params).task(args.task)
    index = run_report(task, data_dir=args.data, source_dir=resolve_source(task, raw_dir=args.raw),
                       model_dir=args.model, explain_dir=args.explain, eval_dir=args.eval,
                       metrics_path=args.metrics, out_dir=args.out)
    log.info("report %s: %s", task.name, index)
    return 0


def main_export_dicom(args: Any) -> int:
    """``python -m pipeline export-dicom --task T ...``: overlays as DICOM Secondary Captures."""
    from pipeline.config import load_params
    from pipeline.sources import resolve_source

    task = load_params(args.params).task(args.task)
    orientation = tuple(args.patient_orientation.split("\\")) if args.patient_orientation else None
    if orientation is not None and len(orientation) != 2:
        log.error("--patient-orientation must be two letters groups separated by a backslash, e.g. "
                  "'L\\F'. Received: %r", args.patient_orientation)
        return 2
    n = export_dicom(task, data_dir=args.data, source_dir=resolve_source(task, raw_dir=args.raw),
                     explain_dir=args.explain, out_dir=args.out, patient_orientation=orientation)
    log.info("export-dicom %s: %d file(s) in %s (they carry patient identifiers: keep them inside "
             "the hospital network)", task.name, n, args.out)
    return 0
