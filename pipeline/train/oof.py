"""Out-of-fold predictions of a k-fold run: their scores and the table the model card points to.

Every training sample is predicted once, by the member that did not train on it (its fold's
member), so the out-of-fold (OOF) AUROC estimates how the training recipe generalises, from the
whole training split instead of the small ``val`` split.

Scores are exact and computed here from the probabilities (no 200-threshold Keras
approximation): AUROC is scikit-learn's ``roc_auc_score`` (the Mann-Whitney statistic, ties
counted 1/2), the macro average over outputs that have both classes for multi-class (one
versus rest) and multi-label tasks; the loss is plain cross-entropy (no label smoothing, no
focal term, probabilities clipped to [1e-7, 1 - 1e-7] as Keras does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

OOF_FILE = "oof_predictions.csv"
OOF_COLUMNS = ("sample_id", "patient", "label", "fold")
_EPS = 1e-7


def auroc(targets: np.ndarray, probs: np.ndarray) -> float:
    """Exact AUROC of ``(N, K)`` probabilities against ``(N, K)`` 0/1 targets.

    Returns:
        The AUROC (binary: ``K == 1``), or the mean over the outputs that have positives and
        negatives; NaN when none has both.
    """
    from sklearn.metrics import roc_auc_score

    targets, probs = _checked(targets, probs)
    values = [roc_auc_score(targets[:, j], probs[:, j]) for j in range(targets.shape[1])
              if 0 < targets[:, j].sum() < len(targets)]
    return float(np.mean(values)) if values else math.nan


def cross_entropy(targets: np.ndarray, probs: np.ndarray, *, problem: str) -> float:
    """Mean cross-entropy: categorical for ``multiclass``, binary (mean over outputs) otherwise."""
    targets, probs = _checked(targets, probs)
    if not len(targets):
        return math.nan
    p = np.clip(probs, _EPS, 1.0 - _EPS)
    if problem == "multiclass":
        p = p / p.sum(axis=1, keepdims=True)
        return float(-(targets * np.log(p)).sum(axis=1).mean())
    return float(-(targets * np.log(p) + (1.0 - targets) * np.log(1.0 - p)).mean())


def write_oof(path: Path, *, sample_ids: Sequence[str], patients: Sequence[str],
              labels: Sequence[str], folds: np.ndarray, probs: np.ndarray,
              label_names: Sequence[str]) -> None:
    """Write the OOF table: ``sample_id, patient, label, fold, p_<label>...``.

    One probability column per name in ``label_names`` (binary: ``p_<labels[0]> = 1 - p``, as
    in ``eval/<task>/predictions.csv``), written with full float precision so the card's
    scores are reproducible from the file. Only pseudonyms (from the manifest) are written.
    """
    from pipeline.dataset.tables import write_table

    probs = np.asarray(probs, np.float64)
    if probs.shape[1] == 1 and len(label_names) == 2:
        probs = np.concatenate([1.0 - probs, probs], axis=1)
    columns = [f"p_{name}" for name in label_names]
    rows = [{"sample_id": s, "patient": p, "label": lab, "fold": int(f),
             **{c: repr(float(v)) for c, v in zip(columns, row, strict=True)}}
            for s, p, lab, f, row in zip(sample_ids, patients, labels, folds, probs, strict=True)]
    write_table(path, rows, (*OOF_COLUMNS, *columns))


def _checked(targets: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    targets = np.asarray(targets, np.float64)
    probs = np.asarray(probs, np.float64)
    if targets.ndim != 2 or targets.shape != probs.shape:
        raise ValueError(f"targets and probs must both be (N, K). Received: targets.shape="
                         f"{targets.shape}, probs.shape={probs.shape}")
    return targets, probs
