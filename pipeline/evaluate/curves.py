"""Plot data for DVC plots: ROC and PR curves, confusion rows and a reliability diagram.

Each plot is a JSON list of flat rows (what ``dvc plots show`` reads). Curves are one-vs-rest per
class with a ``class`` column (binary: only the positive class, ``labels[1]``); a class whose curve
is undefined (no positives, or for ROC no negatives) is left out. Files (see :data:`PLOT_FILES`):

- ``roc.json``: ``class, fpr, tpr, threshold`` (sklearn ``roc_curve``; the first point's threshold
  is null: "predict nothing positive").
- ``pr.json``: ``class, recall, precision, threshold`` (sklearn ``precision_recall_curve``,
  recall ascending; the recall-0 end point has a null threshold).
- ``confusion.json``: one row per sample, ``actual, predicted`` (DVC's ``confusion`` template
  counts them). Multi-label: one row per sample and label, values ``<label>=present|absent``.
- ``calibration.json``: ``class, bin, bin_low, bin_high, mean_predicted, observed_fraction,
  count`` for every non-empty equal-width bin (the bins of the ECE).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.evaluate.decision import OperatingPoint
from pipeline.evaluate.metrics import calibration_bins
from pipeline.evaluate.predictions import Problem, check_problem
from pipeline.utils.atomic import write_text

#: The folder under ``eval/<task>/`` that holds the plot data (DVC plots in dvc.yaml).
PLOTS = "plots"
PLOT_FILES = {"roc": "roc.json", "pr": "pr.json", "confusion": "confusion.json",
              "calibration": "calibration.json"}
Row = dict[str, Any]


def _num(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None


def _curve_classes(problem: Problem, label_names: Sequence[str]) -> list[int]:
    check_problem(problem)
    return [1] if problem == "binary" else list(range(len(label_names)))


def roc_rows(problem: Problem, targets: np.ndarray, probs: np.ndarray,
             label_names: Sequence[str]) -> list[Row]:
    """ROC curve points per class (see module docstring)."""
    from sklearn.metrics import roc_curve

    rows: list[Row] = []
    for k in _curve_classes(problem, label_names):
        y = np.asarray(targets[:, k], dtype=bool)
        if y.all() or not y.any():
            continue
        fpr, tpr, thr = roc_curve(y, probs[:, k])
        rows += [{"class": label_names[k], "fpr": _num(f), "tpr": _num(t), "threshold": _num(h)}
                 for f, t, h in zip(fpr, tpr, thr, strict=True)]
    return rows


def pr_rows(problem: Problem, targets: np.ndarray, probs: np.ndarray,
            label_names: Sequence[str]) -> list[Row]:
    """Precision-recall curve points per class, recall ascending (see module docstring)."""
    from sklearn.metrics import precision_recall_curve

    rows: list[Row] = []
    for k in _curve_classes(problem, label_names):
        y = np.asarray(targets[:, k], dtype=bool)
        if not y.any():
            continue
        precision, recall, thr = precision_recall_curve(y, probs[:, k])
        thr = np.r_[thr, np.nan]
        rows += [{"class": label_names[k], "recall": _num(r), "precision": _num(p),
                  "threshold": _num(h)}
                 for r, p, h in zip(recall[::-1], precision[::-1], thr[::-1], strict=True)]
    return rows


def confusion_rows(problem: Problem, targets: np.ndarray, predicted: np.ndarray,
                   label_names: Sequence[str]) -> list[Row]:
    """``actual``/``predicted`` rows for DVC's confusion template (see module docstring)."""
    check_problem(problem)
    targets, predicted = np.asarray(targets, dtype=bool), np.asarray(predicted, dtype=bool)
    if problem != "multilabel":
        names = np.asarray(label_names, dtype=object)
        return [{"actual": a, "predicted": p} for a, p in
                zip(names[targets.argmax(axis=1)], names[predicted.argmax(axis=1)], strict=True)]
    word = {True: "present", False: "absent"}
    return [{"actual": f"{name}={word[bool(t[k])]}", "predicted": f"{name}={word[bool(p[k])]}"}
            for t, p in zip(targets, predicted, strict=True) for k, name in enumerate(label_names)]


def calibration_rows(problem: Problem, targets: np.ndarray, probs: np.ndarray,
                     label_names: Sequence[str], *, n_bins: int = 10) -> list[Row]:
    """Reliability diagram rows per class and non-empty bin (see module docstring)."""
    rows: list[Row] = []
    for k in _curve_classes(problem, label_names):
        s = np.asarray(probs[:, k], dtype=np.float64)
        bins = calibration_bins(s, n_bins)
        count = np.bincount(bins, minlength=n_bins)
        mean_s = np.bincount(bins, weights=s, minlength=n_bins)
        pos = np.bincount(bins, weights=np.asarray(targets[:, k], np.float64), minlength=n_bins)
        for b in np.flatnonzero(count):
            rows.append({"class": label_names[k], "bin": int(b), "bin_low": _num(b / n_bins),
                         "bin_high": _num((b + 1) / n_bins),
                         "mean_predicted": _num(mean_s[b] / count[b]),
                         "observed_fraction": _num(pos[b] / count[b]), "count": int(count[b])})
    return rows


def write_plot_data(out_dir: str | os.PathLike[str], *, problem: Problem, targets: np.ndarray,
                    probs: np.ndarray, label_names: Sequence[str], operating_point: OperatingPoint,
                    n_bins: int = 10) -> dict[str, Path]:
    """Write the four plot files (names in :data:`PLOT_FILES`) atomically into ``out_dir``.

    Args:
        out_dir: Folder, e.g. ``eval/<task>/plots`` (the test split's predictions are expected).
        problem: Task problem type.
        targets: ``(N, K)`` boolean true labels.
        probs: ``(N, K)`` probabilities.
        label_names: The K labels.
        operating_point: Decision used for the confusion rows.
        n_bins: Calibration bins (use the same as for the ECE).

    Returns:
        Plot name -> written path.
    """
    rows = {
        "roc": roc_rows(problem, targets, probs, label_names),
        "pr": pr_rows(problem, targets, probs, label_names),
        "confusion": confusion_rows(problem, targets, operating_point.predict(probs), label_names),
        "calibration": calibration_rows(problem, targets, probs, label_names, n_bins=n_bins),
    }
    paths = {}
    for name, data in rows.items():
        path = Path(out_dir) / PLOT_FILES[name]
        write_text(path, json.dumps(data, indent=1) + "\n")
        paths[name] = path
    return paths
