"""``explain``: class activation maps for the selected cases, their faithfulness and the shortcut
audit (``explain/<task>/``). The work, and the outputs' layout, is
:func:`pipeline.explain.run.run_explain`.
"""

from __future__ import annotations

from typing import Any


def main(args: Any) -> int:
    """``python -m pipeline explain --task T --data data/interim/T --model models/T --out explain/T``."""
    from pipeline.config import load_params
    from pipeline.explain.run import run_explain

    params = load_params(args.params)
    run_explain(params.task(args.task), data_dir=args.data, model_dir=args.model, out_dir=args.out,
                seed=params.base.seed)
    return 0
