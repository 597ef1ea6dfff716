"""The ``validate`` stage: external validation of a task's locked model on every cohort of
``tasks.<t>.external`` (:func:`pipeline.validate.run.run_validate`).

Outputs: ``data/external/<task>/<name>/`` (ingested cohort), ``eval/<task>/external/`` (predictions
and DVC plots), ``metrics/<task>/external/<name>.json`` (DVC metrics) and
``reports/<task>-external/`` (HTML); a task without cohorts writes placeholders and an index page
that says so.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def main(args: Any) -> int:
    """``python -m pipeline validate --task T --model models/T --metrics metrics/T.json ...``."""
    from pipeline.config import load_params
    from pipeline.validate.layout import ValidateLayout
    from pipeline.validate.run import run_validate

    params = load_params(args.params)
    task = params.task(args.task)
    layout = ValidateLayout(work=args.work, eval=args.out_eval, metrics=args.out_metrics,
                            report=args.out_report)
    docs = run_validate(task, model_dir=args.model, metrics_path=args.metrics, eval_dir=args.eval,
                        layout=layout, seed=params.base.seed, salt=params.base.resolved_salt(),
                        workers=args.workers, progress=sys.stderr.isatty() and not args.quiet)
    log.info("validate %s: %d external cohort(s) %s", task.name, len(docs), sorted(docs))
    return 0
