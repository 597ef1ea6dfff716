"""Subgroup performance: the test metrics per value of coded, non-PHI attributes.

A model that works overall can fail on one scanner, one view or one site; this breaks the
test-set performance down by attribute value so such gaps show up, with intervals that say how
little a small subgroup can tell.

Attributes (manifest columns): the coded header columns :data:`CODED_COLUMNS` (modality, view
position, manufacturer) and the labels.csv extras (``attr_<name>``). Skipped, with the reason
recorded: names on the PHI deny-list (:func:`pipeline.dataset.labels.is_phi_column`, a second
line of defence behind ingest), attributes with more than ``max_distinct`` distinct values (free
text or identifiers, not categories) and attributes with a single value (the subgroup would be
the whole test set). Of the remaining values, those with at least ``min_count`` cases are
measured, the ``max_values`` largest first; the others are only counted under ``omitted``
(metrics of a handful of cases are noise, and a rare value can single out a patient). Cases
with an empty value are counted under ``missing``.

Per value and class (binary: the positive class, ``labels[1]``; multiclass and multilabel: each
class one-vs-rest at the task's operating point):

- ``n``, ``n_patients``, ``n_positive``, ``tp``, ``fp``, ``tn``, ``fn``;
- ``auroc`` with a patient-level bootstrap percentile interval (the subgroup's patients are
  resampled, see :mod:`pipeline.evaluate.bootstrap`); null when only one class is present;
- ``sensitivity`` and ``specificity`` at the operating threshold with exact Clopper-Pearson
  intervals (:func:`pipeline.evaluate.bootstrap.clopper_pearson`). These treat images as
  independent: with several images per patient they are somewhat too narrow. Null (with null
  bounds) when the subgroup has no positives (negatives).

Layout of the ``subgroups`` section of ``metrics/<task>.json``::

    {"split": "test", "level": 0.95, "n_boot": 1000, "min_count": 10, "max_values": 8,
     "max_distinct": 20, "classes": ["opacity"],
     "attributes": {"modality": {"values": {"CR": {"n": 35, "n_patients": 14,
                                                    "classes": {"opacity": {"auroc": ..., ...}}}},
                                 "omitted": {"values": 1, "n": 3}, "missing": 0}},
     "skipped": {"attr_site": "57 distinct values (more than 20): free text or identifiers"}}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.evaluate.bootstrap import bootstrap, clopper_pearson
from pipeline.evaluate.decision import OperatingPoint
from pipeline.evaluate.metrics import BinaryStats
from pipeline.evaluate.predictions import Problem, check_problem

#: Coded (non-free-text) header attributes, as manifest columns.
CODED_COLUMNS = ("modality", "view_position", "manufacturer")
#: Manifest columns holding labels.csv extras start with this.
ATTRIBUTE_PREFIX = "attr_"
MIN_COUNT = 10
MAX_VALUES = 8
MAX_DISTINCT = 20


def candidate_columns(columns: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Split manifest columns into subgroup attributes and PHI-looking ones.

    Returns:
        ``(usable, skipped)``: usable attribute columns in the given order (coded columns and
        ``attr_*``; other columns are not attributes and are not listed), and skipped column ->
        reason.
    """
    from pipeline.dataset.labels import is_phi_column

    usable, skipped = [], {}
    for col in columns:
        if col not in CODED_COLUMNS and not col.startswith(ATTRIBUTE_PREFIX):
            continue
        name = col.removeprefix(ATTRIBUTE_PREFIX)
        if not name:
            skipped[col] = "no attribute name"
        elif is_phi_column(name):
            skipped[col] = "name on the PHI deny-list"
        else:
            usable.append(col)
    return usable, skipped


def subgroup_metrics(problem: Problem, targets: np.ndarray, probs: np.ndarray,
                     patients: Sequence[str], operating_point: OperatingPoint,
                     label_names: Sequence[str], *, attributes: Mapping[str, Sequence[str]],
                     skipped: Mapping[str, str] | None = None, split: str = "test",
                     min_count: int = MIN_COUNT, max_values: int = MAX_VALUES,
                     max_distinct: int = MAX_DISTINCT, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict[str, Any]:
    """The ``subgroups`` section (layout in the module docstring); NaN where undefined.

    Args:
        problem: Task problem type.
        targets: ``(N, K)`` boolean true labels; ``probs``: ``(N, K)`` probabilities.
        patients: ``(N,)`` patient pseudonyms (the bootstrap resamples them).
        operating_point: The decision rule chosen on val.
        label_names: The K labels.
        attributes: Attribute column -> ``(N,)`` values (pick them with
            :func:`candidate_columns`); empty strings are missing values.
        skipped: Columns already skipped (e.g. by :func:`candidate_columns`) with their reason.
        split: Name of the split measured (recorded).
        min_count: Fewest cases a value needs to be measured (>= 1).
        max_values: Most values measured per attribute (>= 1), the largest first.
        max_distinct: Attributes with more distinct values are skipped (>= 2).
        n_boot, seed, level: Patient-level bootstrap of the AUROC; ``level`` also for the
            Clopper-Pearson intervals.

    Raises:
        ValueError: Bad settings or arrays whose lengths disagree.
    """
    check_problem(problem)
    targets, probs = np.asarray(targets, dtype=bool), np.asarray(probs, dtype=np.float64)
    _check(targets, probs, patients, label_names, attributes, min_count, max_values, max_distinct)
    columns = [1] if problem == "binary" else list(range(len(label_names)))
    predicted = operating_point.predict(probs)
    patients_arr = np.asarray(patients, dtype=str)
    out_skipped = dict(skipped or {})
    measured: dict[str, Any] = {}
    for name, values in attributes.items():
        cells = np.asarray([str(v).strip() for v in values], dtype=object)
        counts = Counter(v for v in cells if v)
        if len(counts) > max_distinct:
            out_skipped[name] = (f"{len(counts)} distinct values (more than {max_distinct}): "
                                 "free text or identifiers")
            continue
        if len(counts) < 2:
            out_skipped[name] = "a single value" if counts else "no values"
            continue
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [v for v, c in ranked if c >= min_count][:max_values]
        groups = {}
        for value in kept:
            rows = np.flatnonzero(cells == value)
            groups[value] = _group(rows, targets, probs, predicted, patients_arr, columns,
                                   label_names, n_boot=n_boot, seed=seed, level=level)
        measured[name] = {
            "values": groups,
            "omitted": {"values": len(ranked) - len(kept),
                        "n": int(sum(c for v, c in ranked if v not in kept))},
            "missing": int(sum(1 for v in cells if not v)),
        }
    return {"split": split, "level": level, "n_boot": n_boot, "min_count": min_count,
            "max_values": max_values, "max_distinct": max_distinct,
            "classes": [label_names[k] for k in columns], "attributes": measured,
            "skipped": out_skipped}


def _check(targets: np.ndarray, probs: np.ndarray, patients: Sequence[str],
           label_names: Sequence[str], attributes: Mapping[str, Sequence[str]], min_count: int,
           max_values: int, max_distinct: int) -> None:
    n = len(patients)
    if targets.shape != probs.shape or targets.ndim != 2 or targets.shape != (n, len(label_names)):
        raise ValueError(f"targets and probs must both be ({n}, {len(label_names)}): one row per "
                         f"patient entry. Received: {targets.shape} and {probs.shape}")
    bad = {k: len(v) for k, v in attributes.items() if len(v) != n}
    if bad:
        raise ValueError(f"every attribute needs one value per sample ({n}). Received lengths: {bad}")
    if min_count < 1 or max_values < 1 or max_distinct < 2:
        raise ValueError(f"need min_count >= 1, max_values >= 1, max_distinct >= 2. Received: "
                         f"{min_count}, {max_values}, {max_distinct}")


def _group(rows: np.ndarray, targets: np.ndarray, probs: np.ndarray, predicted: np.ndarray,
           patients: np.ndarray, columns: list[int], label_names: Sequence[str], *, n_boot: int,
           seed: int, level: float) -> dict[str, Any]:
    """Counts and metrics of one subgroup (``rows`` of the arrays)."""
    group_patients = patients[rows].tolist()
    out: dict[str, Any] = {"n": len(rows), "n_patients": len(set(group_patients)), "classes": {}}
    for k in columns:
        y, s, pred = targets[rows, k], probs[rows, k], predicted[rows, k]
        out["classes"][label_names[k]] = _class_block(y, s, pred, group_patients, n_boot=n_boot,
                                                      seed=seed, level=level)
    return out


def _class_block(y: np.ndarray, score: np.ndarray, pred: np.ndarray, patients: list[str], *,
                 n_boot: int, seed: int, level: float) -> dict[str, Any]:
    tp, fn = int(np.sum(y & pred)), int(np.sum(y & ~pred))
    tn, fp = int(np.sum(~y & ~pred)), int(np.sum(~y & pred))
    block: dict[str, Any] = {"n_positive": tp + fn, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    nan = float("nan")
    if tp + fn and tn + fp:
        stats = BinaryStats(y, score, pred)
        est = bootstrap(lambda w: {"auroc": stats(w)["auroc"]}, patients, n_boot=n_boot,
                        seed=seed, level=level)["auroc"]
        block.update(auroc=est.value, auroc_ci_low=est.low, auroc_ci_high=est.high)
    else:
        block.update(auroc=nan, auroc_ci_low=nan, auroc_ci_high=nan)
    for name, k, n in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp)):
        low, high = clopper_pearson(k, n, level=level) if n else (nan, nan)
        block.update({name: k / n if n else nan, f"{name}_ci_low": low, f"{name}_ci_high": high})
    return block
