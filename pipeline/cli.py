"""Command line: ``python -m pipeline <stage> --task NAME ...`` (or ``medvision <stage> ...``).

This module only parses arguments and dispatches: each stage's entry point is ``main(args)`` in
its own thin module in :mod:`pipeline.stages`, imported when that stage runs. A stage loads
params once, calls its library function and writes its outputs. Paths come from the command line
(dvc.yaml says them once), never from module constants.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.config import EXPLAIN_METHODS, ParamsError
from pipeline.errors import UserInputError
from pipeline.rules import TTA_MODES

log = logging.getLogger("pipeline")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="task name under 'tasks:' in params.yaml")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")


def _stage(target: str) -> Callable[[argparse.Namespace], int]:
    """A stage's ``main``, imported when the stage runs (``"module:function"``), so that running
    one stage imports only that stage's code (and dvc.yaml lists exactly that as its deps)."""

    def run(args: argparse.Namespace) -> int:
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name or "main")(args)

    return run


def program_name(argv0: str | None = None) -> str:
    """``medvision`` when run through the console script, else ``python -m pipeline``."""
    name = Path(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")).name
    return "medvision" if name.startswith("medvision") else "python -m pipeline"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The CLI: one subcommand per stage, each declared by its ``_add_<stage>``."""
    parser = argparse.ArgumentParser(
        prog=prog or program_name(),
        description="medvision pipeline stages (normally run by `dvc repro`).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s (medvision) {__version__}")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for add in (_add_demo, _add_ingest, _add_train, _add_explain, _add_evaluate, _add_report,
                _add_export_dicom, _add_validate, _add_export, _add_predict):
        add(sub)
    return parser


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser("demo", help="generate the demo dataset (or fingerprint a task's folder)")
    _common(demo)
    demo.add_argument("--out", type=Path, required=True, help="raw data folder, data/raw/<task>")
    demo.set_defaults(func=_stage("pipeline.stages.demo"))


def _add_ingest(sub: Any) -> None:
    ingest = sub.add_parser("ingest", help="DICOM/NIfTI + labels.csv -> arrays, manifest, quarantine")
    _common(ingest)
    ingest.add_argument("--raw", type=Path, required=True,
                        help="folder the demo stage wrote (used for demo:* sources)")
    ingest.add_argument("--out", type=Path, required=True, help="output folder, data/interim/<task>")
    ingest.add_argument("--workers", type=int, default=None, help="override ingest.workers")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(func=_stage("pipeline.stages.ingest"))


def _add_train(sub: Any) -> None:
    train = sub.add_parser("train", help="fine-tune the task's model (2D backbone or 3D CNN)")
    _common(train)
    train.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    train.add_argument("--out", type=Path, required=True, help="model folder, models/<task>")
    train.add_argument("--live", type=Path, default=None, help="DVCLive folder, dvclive/<task>")
    train.add_argument("--backup", type=Path, required=True,
                       help="resumable training state (not a DVC output), .cache/train/<task>")
    train.set_defaults(func=_stage("pipeline.stages.train"))


def _add_explain(sub: Any) -> None:
    explain = sub.add_parser("explain", help="Grad-CAM (2D/3D), Grad-CAM++, Score-CAM maps and deletion test")
    _common(explain)
    explain.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    explain.add_argument("--model", type=Path, required=True, help="model folder, models/<task>")
    explain.add_argument("--out", type=Path, required=True, help="output folder, explain/<task>")
    explain.set_defaults(func=_stage("pipeline.stages.explain"))


def _add_evaluate(sub: Any) -> None:
    evaluate = sub.add_parser("evaluate", help="metrics with bootstrap CIs, threshold chosen on val")
    _common(evaluate)
    evaluate.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    evaluate.add_argument("--model", type=Path, required=True, help="model folder, models/<task>")
    evaluate.add_argument("--explain", type=Path, default=None,
                          help="explain outputs, explain/<task> (for IoU and faithfulness)")
    evaluate.add_argument("--out", type=Path, required=True, help="predictions and plot data, eval/<task>")
    evaluate.add_argument("--metrics", type=Path, required=True, help="metrics file, metrics/<task>.json")
    evaluate.set_defaults(func=_stage("pipeline.stages.evaluate"))


def _add_report(sub: Any) -> None:
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
    report.set_defaults(func=_stage("pipeline.stages.report"))


def _add_export_dicom(sub: Any) -> None:
    export = sub.add_parser("export-dicom", help="overlays as DICOM Secondary Captures for PACS (opt-in)")
    _common(export)
    export.add_argument("--data", type=Path, required=True, help="ingest outputs, data/interim/<task>")
    export.add_argument("--raw", type=Path, required=True, help="folder the demo stage wrote")
    export.add_argument("--explain", type=Path, required=True, help="explain outputs, explain/<task>")
    export.add_argument("--out", type=Path, required=True,
                        help="destination, e.g. exports/<task> (files carry patient identifiers)")
    export.add_argument("--patient-orientation", default=None,
                        help="for sources without orientation, e.g. 'L\\F' (PA chest, conventional display)")
    export.set_defaults(func=_stage("pipeline.stages.report:main_export_dicom"))


def _add_validate(sub: Any) -> None:
    validate = sub.add_parser("validate", help="external validation: locked model and threshold on "
                                               "the task's external cohorts")
    _common(validate)
    validate.add_argument("--model", type=Path, required=True, help="model folder, models/<task>")
    validate.add_argument("--metrics", type=Path, required=True,
                          help="metrics/<task>.json: locked threshold, TTA, explanation method and layer")
    validate.add_argument("--eval", type=Path, required=True,
                          help="evaluate outputs, eval/<task> (internal test predictions)")
    validate.add_argument("--work", type=Path, required=True,
                          help="ingested cohorts, data/external/<task> (replaced)")
    validate.add_argument("--out-eval", type=Path, required=True,
                          help="predictions and plot data, eval/<task>/external (replaced)")
    validate.add_argument("--out-metrics", type=Path, required=True,
                          help="one metrics file per cohort, metrics/<task>/external (replaced)")
    validate.add_argument("--out-report", type=Path, required=True,
                          help="HTML pages, reports/<task>-external (replaced)")
    validate.add_argument("--workers", type=int, default=None, help="override ingest.workers")
    validate.add_argument("--quiet", action="store_true", help="no progress bar")
    validate.set_defaults(func=_stage("pipeline.stages.validate"))


def _add_export(sub: Any) -> None:
    serving = sub.add_parser("export", help="SavedModel, TFLite (and ONNX) exports for serving, verified")
    serving.add_argument("--model", type=Path, required=True, help="model folder, models/<task>")
    serving.add_argument("--out", type=Path, required=True,
                         help="export folder, e.g. exports/serving/<task> (an earlier export is replaced)")
    serving.add_argument("--metrics", type=Path, default=None,
                         help="metrics/<task>.json holding the validated threshold (default: that path)")
    serving.add_argument("--data", type=Path, default=None,
                         help="ingest outputs, data/interim/<task>: verify on rows of its images.npy "
                              "(default: random uint8 grids)")
    serving.add_argument("--accuracy-split", default="test",
                         help="with --data: also run every export on this split's labelled cases and "
                              "record each AUROC and its change from the Keras model (the quantized "
                              "variants' cost); 'none' to skip (default: test)")
    serving.add_argument("--samples", type=int, default=8, help="verification inputs (default: 8)")
    serving.add_argument("--seed", type=int, default=0, help="seed of the random verification grids")
    serving.add_argument("--onnx", action="store_true",
                         help="also write model.onnx (needs: pip install 'medvision[onnx]')")
    serving.set_defaults(func=_stage("pipeline.stages.export"))


def _add_predict(sub: Any) -> None:
    predict = sub.add_parser("predict", help="run a trained model on new studies and write the case report")
    predict.add_argument("--model", type=Path, required=True,
                         help="model folder, models/<task>, or an export folder, exports/serving/<task> "
                              "(SavedModel: no heatmaps)")
    predict.add_argument("--input", type=Path, nargs="+", required=True,
                         help="DICOM/PNG/JPEG file(s), DICOM series folder(s), NIfTI file(s), folders "
                              "(searched recursively) or CSV files of paths (a 'path' column)")
    predict.add_argument("--out", type=Path, required=True,
                         help="output folder (replaced at the end; a killed run resumes in it)")
    predict.add_argument("--no-pages", action="store_true",
                         help="predictions.csv and rejected.csv only: no case pages or heatmaps (fast)")
    predict.add_argument("--workers", type=int, default=None,
                         help="decoding processes (default: all cores)")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.add_argument("--restart", action="store_true",
                         help="discard an unfinished run in --out made with other inputs or settings")
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
    predict.set_defaults(func=_stage("pipeline.stages.predict"))


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
    except UserInputError as exc:  # the dataset folder, a quarantine limit...
        log.error("%s", exc)
        return 1
