"""Predictions file: one row per sample with pseudonymous ids, the true label and the probabilities.

Columns: ``sample_id, split, patient, label, p_<label>...`` with one probability column per name
in the task's ``labels``, in that order. Binary models have one sigmoid output = P(labels[1]);
the file still holds both columns (``p_<labels[0]> = 1 - p``), so every problem reads back as an
``(N, K)`` matrix with ``K = len(labels)``. Multi-label ``label`` cells join the present names
with ``|`` (empty = none), as in ``manifest.csv``. Probabilities are written with 6 decimals.

Only pseudonyms reach this file (``S<hex>`` samples, ``P<hex>`` patients, as written by ingest);
anything else is refused without echoing it, since it could be an identifier.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.dataset.tables import write_table

Problem = Literal["binary", "multiclass", "multilabel"]
PROBLEMS = ("binary", "multiclass", "multilabel")
LEADING = ("sample_id", "split", "patient", "label")
PROB_PREFIX = "p_"
MULTILABEL_SEP = "|"
_SAMPLE_RE = re.compile(r"S[0-9a-f]+")
_PATIENT_RE = re.compile(r"P[0-9a-f]+")


@dataclass(frozen=True, eq=False)
class Predictions:
    """Predictions of one model on a set of samples.

    Attributes:
        sample_ids: Sample pseudonyms (``S...``).
        splits: ``train``/``val``/``test`` per sample.
        patients: Patient pseudonyms (``P...``); the bootstrap resamples these.
        labels: True label strings (multi-label: names joined by ``|``).
        probs: ``(N, K)`` float probabilities, column k = ``label_names[k]``.
        label_names: The task's labels, in model-output order.
    """

    sample_ids: tuple[str, ...]
    splits: tuple[str, ...]
    patients: tuple[str, ...]
    labels: tuple[str, ...]
    probs: np.ndarray
    label_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.sample_ids)

    def select(self, split: str) -> Predictions:
        """The rows of one split (``val``, ``test``, ...)."""
        keep = np.array([s == split for s in self.splits], dtype=bool)
        idx = np.flatnonzero(keep)
        return Predictions(
            sample_ids=tuple(self.sample_ids[i] for i in idx),
            splits=tuple(self.splits[i] for i in idx),
            patients=tuple(self.patients[i] for i in idx),
            labels=tuple(self.labels[i] for i in idx),
            probs=self.probs[idx],
            label_names=self.label_names,
        )

    def targets(self, problem: Problem) -> np.ndarray:
        """True labels as an ``(N, K)`` boolean indicator matrix (one-hot unless multi-label)."""
        return label_indicators(self.labels, self.label_names, problem)


def label_indicators(labels: Sequence[str], label_names: Sequence[str], problem: Problem) -> np.ndarray:
    """Turn label strings into an ``(N, K)`` boolean indicator matrix.

    Raises:
        ValueError: Unknown problem, or a label that is not one of ``label_names``.
    """
    check_problem(problem)
    index = {name: k for k, name in enumerate(label_names)}
    out = np.zeros((len(labels), len(label_names)), dtype=bool)
    for i, cell in enumerate(labels):
        names = ([n for n in cell.split(MULTILABEL_SEP) if n] if problem == "multilabel" else [cell])
        for name in names:
            if name not in index:
                raise ValueError(f"label must be one of {list(label_names)}"
                                 f"{' (joined by |)' if problem == 'multilabel' else ''}. "
                                 f"Received: {name!r}")
            out[i, index[name]] = True
    return out


def as_probability_matrix(probs: np.ndarray | Sequence[float], n_labels: int) -> np.ndarray:
    """Return probabilities as ``(N, K)`` float64.

    A 1-D array or ``(N, 1)`` column with ``n_labels == 2`` is the binary model's sigmoid output
    P(labels[1]); it is expanded to ``[1 - p, p]``.

    Raises:
        ValueError: Wrong shape, non-finite values or values outside [0, 1].
    """
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1 and n_labels == 2):
        if n_labels != 2:
            raise ValueError(f"a single probability column is only valid for 2 labels (binary). "
                             f"Received: {n_labels} labels")
        p = arr.reshape(-1)
        arr = np.stack([1.0 - p, p], axis=1)
    if arr.ndim != 2 or arr.shape[1] != n_labels:
        raise ValueError(f"probs must have shape (N, {n_labels}) (or (N,) for binary). "
                         f"Received: {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError("probs must be finite and in [0, 1]")
    return arr


def write_predictions(path: str | os.PathLike[str], *, sample_ids: Sequence[str],
                      patients: Sequence[str], splits: Sequence[str], labels: Sequence[str],
                      probs: np.ndarray | Sequence[float], label_names: Sequence[str]) -> None:
    """Write the predictions CSV atomically (see module docstring for the columns).

    Args:
        path: Destination, e.g. ``eval/<task>/predictions.csv``.
        sample_ids: Sample pseudonyms (``S`` + hex).
        patients: Patient pseudonyms (``P`` + hex).
        splits: Split of each sample.
        labels: True label strings (multi-label: ``|``-joined names, may be empty).
        probs: ``(N, K)`` probabilities, or ``(N,)``/``(N, 1)`` = P(labels[1]) for binary.
        label_names: The task's labels, in model-output order.

    Raises:
        ValueError: Mismatched lengths, bad probabilities, or an id that is not a pseudonym.
    """
    label_names = tuple(label_names)
    if len(set(label_names)) != len(label_names) or len(label_names) < 2:
        raise ValueError(f"label_names must be >= 2 unique names. Received: {list(label_names)}")
    matrix = as_probability_matrix(probs, len(label_names))
    columns = {"sample_ids": sample_ids, "patients": patients, "splits": splits, "labels": labels}
    lengths = {name: len(col) for name, col in columns.items()} | {"probs": len(matrix)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"all columns must have the same length. Received: {lengths}")
    _check_pseudonyms(sample_ids, _SAMPLE_RE, "sample_ids", "'S' + hex")
    _check_pseudonyms(patients, _PATIENT_RE, "patients", "'P' + hex")
    prob_cols = [PROB_PREFIX + name for name in label_names]
    rows = []
    for i in range(len(matrix)):
        row: dict[str, object] = {"sample_id": sample_ids[i], "split": splits[i],
                                  "patient": patients[i], "label": labels[i]}
        row.update({c: float(v) for c, v in zip(prob_cols, matrix[i], strict=True)})
        rows.append(row)
    write_table(path, rows, leading=(*LEADING, *prob_cols))


def read_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read a predictions CSV written by :func:`write_predictions`.

    Raises:
        ValueError: Missing leading columns or no ``p_`` columns.
    """
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    missing = [c for c in LEADING if c not in header]
    prob_cols = [c for c in header if c.startswith(PROB_PREFIX)]
    if missing or len(prob_cols) < 2:
        raise ValueError(f"{path}: predictions file needs columns {list(LEADING)} and >= 2 "
                         f"'{PROB_PREFIX}<label>' columns. Found: {header}")
    probs = np.array([[float(r[c]) for c in prob_cols] for r in rows], dtype=np.float64)
    return Predictions(
        sample_ids=tuple(r["sample_id"] for r in rows),
        splits=tuple(r["split"] for r in rows),
        patients=tuple(r["patient"] for r in rows),
        labels=tuple(r["label"] for r in rows),
        probs=probs.reshape(len(rows), len(prob_cols)),
        label_names=tuple(c[len(PROB_PREFIX):] for c in prob_cols),
    )


def _check_pseudonyms(values: Sequence[str], pattern: re.Pattern[str], name: str, expected: str) -> None:
    bad = sum(1 for v in values if not pattern.fullmatch(str(v)))
    if bad:
        # The offending values are not echoed: they may be real identifiers.
        raise ValueError(f"{name}: {bad} value(s) are not pseudonyms (expected {expected}, as "
                         "written by ingest); refusing to write possible identifiers")


def check_problem(problem: str) -> None:
    """Raise ValueError unless ``problem`` is ``binary``, ``multiclass`` or ``multilabel``."""
    if problem not in PROBLEMS:
        raise ValueError(f"problem must be one of {list(PROBLEMS)}. Received: {problem!r}")
