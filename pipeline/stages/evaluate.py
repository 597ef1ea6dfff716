"""``evaluate``: predictions for val and test, the operating threshold chosen on val, metrics with
patient-level bootstrap CIs, DVC metrics and plot data (``eval/<task>/``, ``metrics/<task>.json``).
The work, and the outputs' layout, is :func:`pipeline.evaluate.run.run_evaluate`.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def main(args: Any) -> int:
    """``python -m pipeline evaluate --task T --data ... --out eval/T --metrics metrics/T.json``."""
    from pipeline.config import load_params
    from pipeline.evaluate.run import run_evaluate

    params = load_params(args.params)
    task = params.task(args.task)
    result = run_evaluate(task, data_dir=args.data, model_dir=args.model, explain_dir=args.explain,
                          out_dir=args.out, metrics_path=args.metrics, seed=params.base.seed)
    test = result.metrics["test"]
    log.info("evaluate %s: test AUROC %s [%s, %s], F1 %s", task.name, test.get("auroc"),
             test.get("auroc_ci_low"), test.get("auroc_ci_high"), test.get("f1"))
    return 0
