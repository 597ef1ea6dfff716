"""Command line: ``python -m pipeline <stage> --task NAME ...``. One thin function per stage.

Each stage parses its arguments, loads params once, calls one library function and writes its
outputs. Paths come from the command line (dvc.yaml says them once), never from module constants.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.config import EXPLAIN_METHODS, ParamsError, load_params

log = logging.getLogger("pipeline")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="task name under 'tasks:' in params.yaml")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the task's demo dataset, or fingerprint its external folder."""
    from pipeline.sources import prepare_source

    params = load_params(args.params)
    task = params.task(args.task)
    prepare_source(task, out_dir=args.out)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest the task's dataset folder into arrays + manifest + quarantine."""
    from pipeline.ingest import run_ingest
    from pipeline.sources import resolve_source

    params = load_params(args.params)
    task = params.task(args.task)
    source = resolve_source(task, raw_dir=args.raw)
    summary = run_ingest(task, source=source, out_dir=args.out, seed=params.base.seed,
                         salt=params.base.resolved_salt(), workers=args.workers,
                         progress=sys.stderr.isatty() and not args.quiet)
    log.info("ingest %s: %d samples %s, %d rows and %d files quarantined", task.name,
             summary.samples, summary.per_split, summary.quarantined_rows, summary.quarantined_files)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the task's model on its ingested arrays."""
    from pipeline.train.trainer import train

    params = load_params(args.params)
    task = params.task(args.task)
    result = train(task, data_dir=args.data, model_dir=args.out, live_dir=args.live,
                   backup_root=args.backup, seed=params.base.seed)
    log.info("train %s: %d epochs in %.0f s (%s, %d replica(s)); val %s", task.name,
             result.epochs_run, result.seconds, result.precision, result.replicas,
             {k: result.val_metrics[k] for k in sorted(result.val_metrics) if k in ("auroc", "loss")})
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Class activation maps for the selected cases, and their deletion (faithfulness) test."""
    from pipeline.stages.explain import run_explain

    params = load_params(args.params)
    task = params.task(args.task)
    run_explain(task, data_dir=args.data, model_dir=args.model, out_dir=args.out, seed=params.base.seed)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Predictions, threshold on val, metrics with CIs on test, DVC metrics and plots."""
    from pipeline.stages.evaluate import run_evaluate

    params = load_params(args.params)
    task = params.task(args.task)
    result = run_evaluate(task, data_dir=args.data, model_dir=args.model, explain_dir=args.explain,
                          out_dir=args.out, metrics_path=args.metrics, seed=params.base.seed)
    test = result.metrics["test"]
    log.info("evaluate %s: test AUROC %s [%s, %s], F1 %s", task.name, test.get("auroc"),
             test.get("auroc_ci_low"), test.get("auroc_ci_high"), test.get("f1"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The clinician-facing HTML report of the explained cases."""
    from pipeline.sources import resolve_source
    from pipeline.stages.report import run_report

    params = load_params(args.params)
    task = params.task(args.task)
    index = run_report(task, data_dir=args.data, source_dir=resolve_source(task, raw_dir=args.raw),
                       model_dir=args.model, explain_dir=args.explain, eval_dir=args.eval,
                       metrics_path=args.metrics, out_dir=args.out)
    log.info("report %s: %s", task.name, index)
    return 0


def cmd_export_dicom(args: argparse.Namespace) -> int:
    """Overlays as DICOM Secondary Captures in new series of the source studies (PACS)."""
    from pipeline.sources import resolve_source
    from pipeline.stages.report import export_dicom

    params = load_params(args.params)
    task = params.task(args.task)
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


def cmd_predict(args: argparse.Namespace) -> int:
    """A trained model on new studies: preprocessing, prediction, Grad-CAM, case report."""
    from pipeline.stages.predict import run_predict

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


def build_parser() -> argparse.ArgumentParser:
    from pipeline.evaluate.tta import TTA_MODES

    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="medvision pipeline stages (normally run by `dvc repro`).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    demo = sub.add_parser("demo", help="generate the demo dataset (or fingerprint a task's folder)")
    _common(demo)
    demo.add_argument("--out", type=Path, required=True, help="raw data folder, data/raw/<task>")
    demo.set_defaults(func=cmd_demo)

    ingest = sub.add_parser("ingest", help="DICOM/NIfTI + labels.csv -> arrays, manifest, quarantine")
    _common(ingest)
    ingest.add_argument("--raw", type=Path, required=True,
                        help="folder the demo stage wrote (used for demo:* sources)")
    ingest.add_argument("--out", type=Path, required=True, help="output folder, data/interim/<task>")
    ingest.add_argument("--workers", type=int, default=None, help="override ingest.workers")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(func=cmd_ingest)

    train = sub.add_parser("train", help="fine-tune the task's model (2D backbone or 3D CNN)")
    _common(train)
    train.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    train.add_argument("--out", type=Path, required=True, help="model folder, models/<task>")
    train.add_argument("--live", type=Path, default=None, help="DVCLive folder, dvclive/<task>")
    train.add_argument("--backup", type=Path, required=True,
                       help="resumable training state (not a DVC output), .cache/train/<task>")
    train.set_defaults(func=cmd_train)

    explain = sub.add_parser("explain", help="Grad-CAM (2D/3D), Grad-CAM++, Score-CAM maps and deletion test")
    _common(explain)
    explain.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    explain.add_argument("--model", type=Path, required=True, help="model folder, models/<task>")
    explain.add_argument("--out", type=Path, required=True, help="output folder, explain/<task>")
    explain.set_defaults(func=cmd_explain)

    evaluate = sub.add_parser("evaluate", help="metrics with bootstrap CIs, threshold chosen on val")
    _common(evaluate)
    evaluate.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    evaluate.add_argument("--model", type=Path, required=True, help="model folder, models/<task>")
    evaluate.add_argument("--explain", type=Path, default=None,
                          help="explain outputs, explain/<task> (for IoU and faithfulness)")
    evaluate.add_argument("--out", type=Path, required=True, help="predictions and plot data, eval/<task>")
    evaluate.add_argument("--metrics", type=Path, required=True, help="metrics file, metrics/<task>.json")
    evaluate.set_defaults(func=cmd_evaluate)

    report = sub.add_parser("report", help="static HTML report of the explained cases, for clinicians")
    _common(report)
    report.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    report.add_argument("--raw", type=Path, required=True,
                        help="folder the demo stage wrote (full-resolution images of demo:* sources)")
    report.add_argument("--model", type=Path, required=True, help="model folder, models/<task>")
    report.add_argument("--explain", type=Path, required=True, help="explain outputs, explain/<task>")
    report.add_argument("--eval", type=Path, required=True, help="evaluate outputs, eval/<task>")
    report.add_argument("--metrics", type=Path, required=True, help="metrics file, metrics/<task>.json")
    report.add_argument("--out", type=Path, required=True, help="report folder, reports/<task>")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export-dicom", help="overlays as DICOM Secondary Captures for PACS (opt-in)")
    _common(export)
    export.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    export.add_argument("--raw", type=Path, required=True, help="folder the demo stage wrote")
    export.add_argument("--explain", type=Path, required=True, help="explain outputs, explain/<task>")
    export.add_argument("--out", type=Path, required=True,
                        help="destination, e.g. exports/<task> (files carry patient identifiers)")
    export.add_argument("--patient-orientation", default=None,
                        help="for sources without orientation, e.g. 'L\\F' (PA chest, conventional display)")
    export.set_defaults(func=cmd_export_dicom)

    predict = sub.add_parser("predict", help="run a trained model on new studies and write the case report")
    predict.add_argument("--model", type=Path, required=True, help="model folder, models/<task>")
    predict.add_argument("--input", type=Path, nargs="+", required=True,
                         help="DICOM file(s), DICOM series folder(s) or NIfTI file(s)")
    predict.add_argument("--out", type=Path, required=True, help="report folder (replaced)")
    predict.add_argument("--threshold", type=float, default=None,
                         help="operating threshold (binary); default: the one evaluate chose on val")
    predict.add_argument("--metrics", type=Path, default=None,
                         help="metrics/<task>.json holding the validated threshold")
    predict.add_argument("--method", default=None, choices=list(EXPLAIN_METHODS),
                         help="explanation method; default: the one the explain stage reported, from "
                              "--metrics, else gradcam")
    predict.add_argument("--layer", default=None,
                         help="Grad-CAM target layer (name, 'auto' or 'auto:N'); default: the layer the "
                              "explain stage used, from --metrics")
    predict.add_argument("--tta", default=None, choices=TTA_MODES,
                         help="test-time augmentation (mean of probabilities over views); default: the "
                              "mode the evaluate stage used, from --metrics, else none")
    predict.add_argument("--show-free-text", action="store_true",
                         help="also show free-text header fields (SeriesDescription; may hold PHI)")
    predict.set_defaults(func=cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ParamsError as exc:
        log.error("bad params: %s", exc)
        return 2
    except Exception as exc:
        from pipeline.dataset.labels import DatasetError
        from pipeline.ingest import QuarantineLimitExceeded

        if isinstance(exc, DatasetError | QuarantineLimitExceeded):
            log.error("%s", exc)
            return 1
        raise
