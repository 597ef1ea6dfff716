"""The ``ingest`` stage: a dataset folder -> arrays + manifest + quarantine
(:func:`pipeline.ingest.run_ingest`)."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.config import load_params

log = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    """``python -m pipeline ingest --task T --raw data/raw/T --out data/interim/T``."""
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
