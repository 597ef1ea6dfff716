"""The ``demo`` stage: generate a task's synthetic demo dataset, or fingerprint its external
folder (``data.source`` a path or ``medmnist:``) so that DVC sees when it changes."""

from __future__ import annotations

import argparse

from pipeline.config import load_params


def main(args: argparse.Namespace) -> int:
    """``python -m pipeline demo --task T --out data/raw/T``."""
    from pipeline.sources import prepare_source

    task = load_params(args.params).task(args.task)
    prepare_source(task, out_dir=args.out)
    return 0
