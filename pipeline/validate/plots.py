"""DVC plot data of one cohort: ROC, precision-recall and reliability rows of the external cohort
beside the internal test split's (so one chart compares them), and the cohort's confusion rows.

The rows are :mod:`pipeline.evaluate.curves`' with the ``class`` column naming the cohort as
well (``opacity: external site_b``, ``opacity: internal test``), which is what the class-coloured
templates draw as separate curves.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.evaluate.curves import calibration_rows, confusion_rows, pr_rows, roc_rows
from pipeline.evaluate.decision import OperatingPoint
from pipeline.evaluate.predictions import Predictions, Problem
from pipeline.utils.atomic import write_text
from pipeline.validate.layout import ValidateLayout

Rows = list[dict[str, object]]


def cohort_plot_rows(problem: Problem, name: str, external: Predictions, internal: Predictions | None,
                     operating_point: OperatingPoint, *, n_bins: int = 10) -> dict[str, Rows]:
    """Plot name (:data:`pipeline.validate.layout.PLOT_KINDS`) -> rows."""
    names = tuple(external.label_names)
    sides = [(f"external {name}", external)] + ([("internal test", internal)] if internal else [])
    out: dict[str, Rows] = {"roc": [], "pr": [], "calibration": []}
    for side, preds in sides:
        targets = preds.targets(problem)
        for kind, rows in (("roc", roc_rows(problem, targets, preds.probs, names)),
                           ("pr", pr_rows(problem, targets, preds.probs, names)),
                           ("calibration", calibration_rows(problem, targets, preds.probs, names,
                                                            n_bins=n_bins))):
            out[kind] += [{**r, "class": f"{r['class']}: {side}"} for r in rows]
    out["confusion"] = confusion_rows(problem, external.targets(problem),
                                      operating_point.predict(external.probs), names)
    return out


def write_cohort_plots(layout: ValidateLayout, name: str, rows: dict[str, Rows]) -> dict[str, Path]:
    """Write each plot's rows atomically to ``eval/<task>/external/plots/<kind>/<name>.json``."""
    paths = {}
    for kind, data in rows.items():
        path = layout.plot(kind, name)
        write_text(path, json.dumps(data, indent=1) + "\n")
        paths[kind] = path
    return paths
