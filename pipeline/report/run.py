"""The report library's two runs over a task's stage outputs, behind :mod:`pipeline.stages.report`.

- :func:`run_report`: the clinician-facing HTML site (``reports/<task>``) of the explained cases,
  built by :func:`pipeline.report.site.build_report` from :mod:`pipeline.report.inputs`.
- :func:`export_dicom`: the same overlays as DICOM Secondary Captures in the source studies, for
  PACS (opt-in, outside DVC: the files carry the patients' identifiers).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.explain.outputs import METHOD_NAMES
from pipeline.preprocess.geometry import geometry_of
from pipeline.report.inputs import Decision, case_records, manifest_rows, performance_inputs
from pipeline.report.notes import headline, report_notes
from pipeline.report.source import read_source_2d, source_path
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
    from pipeline.report.site import build_report
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
    decide = Decision(task, metrics)
    method = explained.methods[0]
    notes = report_notes(metrics, explained.faithfulness, method)
    cases = case_records(task, data_dir, source_dir, explained, preds, decide, method)
    shown = headline(metrics, decide.threshold, explained.faithfulness.get(method))
    return build_report(out_dir, task_name=task.name, kind=task.kind, labels=task.labels, cases=cases,
                        card=card, metrics=shown,
                        notes=notes,
                        low_confidence_margin=max(task.report.uncertain_band, 1e-6),
                        highlight_limit=task.report.highlight_limit,
                        **performance_inputs(task, metrics, eval_dir))


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
    from pipeline.report.dicom_export import export_secondary_capture
    from pipeline.report.imaging import render_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    if task.kind != "2d":
        log.info("export-dicom applies to 2D DICOM tasks; nothing exported for %s", task.name)
        return 0
    manifest = {r["sample_id"]: r for r in manifest_rows(data_dir)}
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
