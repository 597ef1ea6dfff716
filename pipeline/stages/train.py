"""The ``train`` stage: fit the task's model on its ingested arrays
(:func:`pipeline.train.trainer.train`)."""

from __future__ import annotations

import argparse
import logging

from pipeline.config import load_params

log = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    """``python -m pipeline train --task T --data data/interim/T --out models/T ...``."""
    from pipeline.train.trainer import train

    params = load_params(args.params)
    task = params.task(args.task)
    result = train(task, data_dir=args.data, model_dir=args.out, live_dir=args.live,
                   backup_root=args.backup, seed=params.base.seed)
    log.info("train %s: %d epochs in %.0f s (%s, %d replica(s)); val %s", task.name,
             result.epochs_run, result.seconds, result.precision, result.replicas,
             {k: result.val_metrics[k] for k in sorted(result.val_metrics) if k in ("auroc", "loss")})
    return 0
