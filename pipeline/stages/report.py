"""The ``report`` stage: the clinician-facing HTML site of the explained cases
(:func:`pipeline.report.run.run_report`); and ``export-dicom``: the same overlays as DICOM
Secondary Captures for PACS (:func:`pipeline.report.run.export_dicom`; opt-in, outside DVC).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def main(args: Any) -> int:
    """``python -m pipeline report --task T ...``: the HTML report."""
    from pipeline.config import load_params
    from pipeline.report.run import run_report
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
    from pipeline.report.run import export_dicom
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
