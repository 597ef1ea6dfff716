"""``export``: a trained ``models/<task>`` -> ``exports/serving/<task>`` for serving (outside the DAG).

Writes a SavedModel (uint8 grid in, probabilities out), TFLite float32/float16/int8-dynamic
models, optionally ONNX (``--onnx``), and ``export.json``; every export is run on the same
inputs as the Keras model and the command fails (writing nothing) when a float32 export differs
beyond its tolerance. The work is :func:`pipeline.export.export_model`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def main(args: Any) -> int:
    """``python -m pipeline export --model models/T --out exports/serving/T [--data data/interim/T]``."""
    from pipeline.export import ExportMismatchError, export_model, verification_grids
    from pipeline.export.accuracy import NO_SPLIT, labelled_split
    from pipeline.train.card import read_card

    try:
        card = read_card(args.model)
        metrics = args.metrics
        if metrics is None and card.get("task"):
            metrics = Path("metrics") / f"{card['task']}.json"  # the pipeline's layout, from the repo root
        grids, source = verification_grids(tuple(int(n) for n in card["input_shape"]), data_dir=args.data,
                                           samples=args.samples, seed=args.seed)
        labelled = None
        if args.data is not None and args.accuracy_split != NO_SPLIT:
            labelled = labelled_split(args.data, args.accuracy_split, labels=card["labels"],
                                      problem=card["problem"])
        manifest = export_model(args.model, args.out, metrics_path=metrics, grids=grids,
                                grids_source=source, onnx=args.onnx, labelled=labelled)
    except (ExportMismatchError, ValueError, OSError) as exc:
        log.error("export: %s", exc)
        return 1
    for name, entry in manifest["exports"].items():
        print(f"{name}\t{entry['path']}\t{_verification_line(entry.get('verification', {}))}")
    accuracy = manifest.get("accuracy")
    if accuracy:
        print(f"keras\t{accuracy['split']} ({accuracy['n_cases']} cases)\t{accuracy['measure']} "
              f"{_number(accuracy['keras']['auroc'])}")
        for name, entry in accuracy["exports"].items():
            print(f"{name}\t{accuracy['split']}\t{accuracy['measure']} {_number(entry['auroc'])} "
                  f"(change {_number(entry['auroc_change'], signed=True)}), "
                  f"{entry['decisions_changed']} decision(s) changed")
    if manifest["decision"]["threshold"] is None:
        log.warning("export: %s", manifest["decision"]["note"])
    return 0


def _verification_line(check: dict[str, Any]) -> str:
    if check.get("max_abs_diff") is None:
        return str(check.get("status", "not verified"))
    return f"max|diff| {check['max_abs_diff']:.3g}\tdecision agreement {check['decision_agreement']:.3f}"


def _number(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
