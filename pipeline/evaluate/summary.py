"""The DVC metrics file ``metrics/<task>.json``: threshold from val, metrics with CIs for val and test.

Layout (``dvc metrics show`` flattens it to columns such as ``test.auroc``)::

    {
      "threshold": {"rule": "youden", "value": 0.43, "positive_label": "opacity"},
      "bootstrap": {"n_boot": 1000, "seed": 42, "level": 0.95, "unit": "patient",
                    "method": "percentile", "degenerate_method": "clopper-pearson"},
      "ece_bins": 10,
      "val":  {...same keys as test...},
      "test": {"n": 60, "n_patients": 18, "auroc": 0.91, "auroc_ci_low": 0.84,
               "auroc_ci_high": 0.97, "precision": ..., ..., "tp": 20, "fp": 3, ...,
               "valid_resamples": {"auroc": 1000, ...},
               "iou": ..., "iou_ci_low": ..., "pointing_game": ...}   # when localization given
    }

Every metric of :data:`pipeline.evaluate.metrics.RATE_METRICS` has flat ``<m>_ci_low`` and
``<m>_ci_high`` siblings, and ``<m>_ci_method`` saying which method produced them:
``"bootstrap"`` (the patient-level percentile interval), or ``"clopper-pearson"`` for a
proportion (accuracy, precision, recall, specificity, NPV) whose bootstrap interval collapsed to
a point because it had no events to resample (0 or all of n; see
:func:`pipeline.evaluate.bootstrap.exact_if_degenerate`). Binary sections hold the confusion
counts (``n_positive, tp, fp, tn, fn``) of the positive class; multiclass and multilabel
sections hold the macro values (see :mod:`pipeline.evaluate.metrics`) plus
``per_class.<label>`` with the same keys, and multiclass a ``confusion.<actual>.<predicted>``
count matrix. Undefined values (NaN) are written as null.
Val metrics are measured at a threshold chosen on val itself, so they are optimistic; test is the
estimate to report.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluate.bootstrap import CLOPPER_PEARSON, Estimate, bootstrap, exact_if_degenerate
from pipeline.evaluate.decision import OperatingPoint, choose_operating_point
from pipeline.evaluate.metrics import (
    COUNT_KEYS,
    N_CORRECT,
    RATE_METRICS,
    ClassificationStats,
    confusion_matrix,
    proportion_counts,
)
from pipeline.evaluate.predictions import Predictions, Problem, check_problem
from pipeline.evaluate.threshold import ThresholdRule
from pipeline.utils.atomic import write_json

CLASS_COUNTS = ("n_positive", "tp", "fp", "tn", "fn")
DIGITS = 6


@dataclass(frozen=True)
class Evaluation:
    """Result of :func:`evaluate_splits`: the metrics document and the operating point used."""

    metrics: dict[str, Any]
    operating_point: OperatingPoint


def classification_section(problem: Problem, targets: np.ndarray, probs: np.ndarray,
                           patients: Sequence[str], operating_point: OperatingPoint,
                           label_names: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
                           level: float = 0.95, n_bins: int = 10) -> dict[str, Any]:
    """Metrics of one split with patient-level bootstrap CIs (one section of the document)."""
    stats = ClassificationStats(problem, targets, probs, operating_point, label_names, n_bins=n_bins)
    est = bootstrap(stats, patients, n_boot=n_boot, seed=seed, level=level)
    est = exact_where_degenerate(est, [None, *stats.per_class], level=level)
    section: dict[str, Any] = {"n": len(targets), "n_patients": len(set(patients))}
    section.update(_block(est, None, counts=problem == "binary"))
    if problem != "binary":
        section["per_class"] = {name: _block(est, name, counts=True) for name in stats.per_class}
    if problem == "multiclass" and len(targets):
        cm = confusion_matrix(targets, stats.predicted)
        section["confusion"] = {a: {p: int(cm[i, j]) for j, p in enumerate(label_names)}
                                for i, a in enumerate(label_names)}
    return section


def exact_where_degenerate(est: Mapping[tuple[str | None, str], Estimate],
                           scopes: Sequence[str | None], *, level: float = 0.95
                           ) -> dict[tuple[str | None, str], Estimate]:
    """``est`` with every proportion whose bootstrap interval collapsed given its exact one.

    Args:
        est: From :func:`pipeline.evaluate.bootstrap.bootstrap` over
            :class:`~pipeline.evaluate.metrics.ClassificationStats`.
        scopes: ``None`` (the overall values) and the class names with their own counts.
        level: Coverage of the interval.
    """
    out = dict(est)
    for scope in scopes:
        counts = {c: est[(scope, c)].value for c in (*COUNT_KEYS, N_CORRECT) if (scope, c) in est}
        for m in RATE_METRICS:
            pair = proportion_counts(m, counts)
            if pair is not None and (scope, m) in est:
                out[(scope, m)] = exact_if_degenerate(est[(scope, m)], *pair, level=level)
    return out


def _block(est: Mapping[tuple[str | None, str], Estimate], scope: str | None, *, counts: bool
           ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in RATE_METRICS:
        e = est[(scope, m)]
        out.update({m: e.value, f"{m}_ci_low": e.low, f"{m}_ci_high": e.high,
                    f"{m}_ci_method": e.method})
    if counts:
        out.update({c: int(est[(scope, c)].value) for c in CLASS_COUNTS})
    out["valid_resamples"] = {m: est[(scope, m)].n_valid for m in RATE_METRICS}
    return out


def evaluate_splits(*, val: Predictions, test: Predictions, problem: Problem,
                    rule: str | float | ThresholdRule, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95, n_bins: int = 10, fallback: float | None = 0.5,
                    localization: Mapping[str, Any] | None = None) -> Evaluation:
    """Choose the operating point on val, then measure val and test.

    Args:
        val: Validation predictions (the threshold is chosen here, never on test).
        test: Test predictions.
        problem: Task problem type.
        rule: The ``threshold`` param.
        n_boot, seed, level: Patient-level bootstrap (see :mod:`pipeline.evaluate.bootstrap`).
        n_bins: Calibration bins of the ECE.
        fallback: Threshold where the rule is undefined on val (see
            :func:`pipeline.evaluate.decision.choose_operating_point`).
        localization: Flat keys from :func:`pipeline.evaluate.localization.localization_metrics`,
            merged into the test section.

    Raises:
        ValueError: val and test disagree on the labels, or a bad rule/problem.
    """
    check_problem(problem)
    if tuple(val.label_names) != tuple(test.label_names):
        raise ValueError(f"val and test must have the same labels. Received: "
                         f"{list(val.label_names)} and {list(test.label_names)}")
    names = tuple(test.label_names)
    op = choose_operating_point(problem, val.targets(problem), val.probs, rule, fallback=fallback)
    kwargs = {"n_boot": n_boot, "seed": seed, "level": level, "n_bins": n_bins}
    doc: dict[str, Any] = {
        "threshold": op.to_json(names),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": level, "unit": "patient",
                      "method": "percentile", "degenerate_method": CLOPPER_PEARSON},
        "ece_bins": n_bins,
    }
    for name, preds in (("val", val), ("test", test)):
        doc[name] = classification_section(problem, preds.targets(problem), preds.probs,
                                           preds.patients, op, names, **kwargs)
    if localization:
        doc["test"].update(localization)
    return Evaluation(metrics=to_jsonable(doc), operating_point=op)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: NaN/inf -> None, numpy scalars -> Python, floats rounded to 6 digits."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return round(float(obj), DIGITS) if math.isfinite(obj) else None
    return obj


def write_metrics(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> None:
    """Write the metrics document atomically as sorted, indented JSON (NaN written as null)."""
    write_json(path, to_jsonable(metrics))
