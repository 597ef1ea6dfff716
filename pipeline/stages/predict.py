"""``predict``: a trained model on new, unlabeled studies -> ``predictions.csv`` and the case
report (:func:`pipeline.predict.run_predict`). Not a DVC stage: run it on new data by hand."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    """``python -m pipeline predict --model models/T --input ... --out ...``."""
    from pipeline.predict import run_predict

    try:
        results = run_predict(args.model, args.input, args.out, threshold=args.threshold,
                              metrics_path=args.metrics, method=args.method, layer=args.layer,
                              show_free_text=args.show_free_text, tta=args.tta, pages=not args.no_pages,
                              workers=args.workers, progress=sys.stderr.isatty() and not args.quiet,
                              restart=args.restart)
    except ValueError as exc:
        log.error("predict: %s", exc)
        return 1
    for r in results:
        print(f"{r.sample_id}\t{r.predicted_label}\t{r.probability:.4f}")
    return 0
