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

from pipeline.config import ParamsError, load_params

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


def build_parser() -> argparse.ArgumentParser:
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
