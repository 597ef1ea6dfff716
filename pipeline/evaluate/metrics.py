"""Classification metrics as functions of weighted samples, so one code path gives both the point
estimate (every sample weight 1) and all bootstrap resamples at once (weights = how many times
each sample's patient was drawn; see :mod:`pipeline.evaluate.bootstrap`).

Binary definitions, with TP/FP/TN/FN the (weighted) counts at ``score >= threshold``:

- ``accuracy`` = (TP + TN) / n; ``precision`` (PPV) = TP / (TP + FP); ``recall`` (sensitivity)
  = TP / (TP + FN); ``specificity`` = TN / (TN + FP); ``npv`` = TN / (TN + FN);
  ``f1`` = 2 TP / (2 TP + FP + FN).
- ``auroc``: P(score of a positive > score of a negative) + 1/2 P(tie) (Mann-Whitney), equal to
  ``sklearn.metrics.roc_auc_score``.
- ``auprc``: average precision, sum over distinct thresholds (descending) of
  (R_k - R_{k-1}) P_k, equal to ``sklearn.metrics.average_precision_score`` (no interpolation).
- ``brier``: mean (score - y)^2.
- ``ece`` (expected calibration error): ``n_bins`` equal-width bins on [0, 1] (bin b holds
  b/n_bins <= score < (b+1)/n_bins; a score of 1 goes in the last bin);
  ECE = sum_b (n_b / n) |mean score in b - fraction positive in b|. Empty bins add nothing.

Undefined values are NaN, never a warning or an exception: any ratio with a zero denominator
(e.g. precision with no positive predictions, F1 with no positives and no positive predictions),
AUROC with one class present, AUPRC with no positives.

Multiclass (argmax decision) and multilabel (per-label thresholds) are computed one-vs-rest per
class with the binary definitions above; the overall value of each metric is the macro mean over
the classes where it is defined (as sklearn's ``zero_division=np.nan``), NaN if none, except:

- ``accuracy``: the fraction of samples whose whole prediction is right (multiclass: top-1;
  multilabel: exact match = sklearn's subset accuracy).
- ``brier`` (multiclass): mean over samples of sum over classes of (p_k - y_k)^2 (Brier's original
  definition, = ``sklearn.metrics.brier_score_loss`` for multiclass, = K x the macro OvR mean).
- ``ece`` (multiclass/multilabel): classwise ECE, the macro mean of the per-class ECEs.

:data:`PROPORTIONS` names the metrics that are a count of events over a count of trials
(accuracy, PPV, sensitivity, specificity, NPV; the macro means are not), and
:func:`proportion_counts` gives their ``(events, trials)``, so an exact binomial interval can
stand in where the bootstrap interval collapses (see :mod:`pipeline.evaluate.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.evaluate.decision import OperatingPoint
from pipeline.evaluate.predictions import Problem, check_problem

RATE_METRICS = ("accuracy", "precision", "recall", "specificity", "npv", "f1", "auroc", "auprc",
                "brier", "ece")
COUNT_KEYS = ("n", "n_positive", "tp", "fp", "tn", "fn")
Key = tuple[str | None, str]  # (class name or None for the overall value, metric)
#: Proportion metric -> (counts summed for the events, counts summed for the trials).
PROPORTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "accuracy": (("tp", "tn"), ("n",)),
    "precision": (("tp",), ("tp", "fp")),
    "recall": (("tp",), ("n_positive",)),
    "specificity": (("tn",), ("tn", "fp")),
    "npv": (("tn",), ("tn", "fn")),
}
#: Correctly decided samples of a multiclass (top-1) or multilabel (exact match) task, the
#: events of its overall accuracy.
N_CORRECT = "n_correct"


def proportion_counts(metric: str, counts: Mapping[str, float]) -> tuple[float, float] | None:
    """``(events, trials)`` of a proportion metric from the confusion counts of the same scope.

    Args:
        metric: A metric name; anything not in :data:`PROPORTIONS` gives None.
        counts: ``n``, ``n_positive``, ``tp``, ``fp``, ``tn``, ``fn`` (point values); for the
            overall accuracy of a multiclass/multilabel task, ``n`` and :data:`N_CORRECT`.

    Returns:
        The two counts, or None when the metric is not a proportion or a count is missing.
    """
    if metric == "accuracy" and N_CORRECT in counts and "n" in counts:
        return float(counts[N_CORRECT]), float(counts["n"])
    if metric not in PROPORTIONS:
        return None
    events, trials = PROPORTIONS[metric]
    if any(c not in counts for c in events + trials):
        return None
    return float(sum(counts[c] for c in events)), float(sum(counts[c] for c in trials))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0 (no warnings)."""
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


def _nanmean(stack: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (no warning) where every value is NaN."""
    finite = np.isfinite(stack)
    return _ratio(np.where(finite, stack, 0.0).sum(axis=axis), finite.sum(axis=axis))


def calibration_bins(score: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin index in ``[0, n_bins)`` of each score (1.0 goes in the last bin)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1. Received: {n_bins}")
    return np.clip(np.floor(np.asarray(score, np.float64) * n_bins), 0, n_bins - 1).astype(np.intp)


class BinaryStats:
    """Sufficient statistics of one binary problem; calling it with sample weights gives metrics.

    Sorting and binning happen once here; a call costs a matrix product and a few cumulative sums
    over the ``(B, N)`` weights.

    Args:
        y_true: ``(N,)`` bool, True = positive.
        score: ``(N,)`` probability of the positive class, in [0, 1].
        predicted: ``(N,)`` bool decision at the operating point.
        n_bins: Calibration bins for ECE.
    """

    def __init__(self, y_true: np.ndarray, score: np.ndarray, predicted: np.ndarray, *,
                 n_bins: int = 10) -> None:
        y = np.asarray(y_true, dtype=bool)
        s = np.asarray(score, dtype=np.float64)
        pred = np.asarray(predicted, dtype=bool)
        if not (y.ndim == 1 and s.shape == y.shape == pred.shape):
            raise ValueError(f"y_true, score and predicted must be 1-D of equal length. "
                             f"Received: {y.shape}, {s.shape}, {pred.shape}")
        if not np.isin(np.asarray(y_true), (0, 1)).all():
            raise ValueError("y_true must hold only 0/1 (or booleans)")
        if not np.all(np.isfinite(s)):
            raise ValueError("score must be finite")
        self.n_samples = len(y)
        self.n_bins = n_bins
        bins = calibration_bins(s, n_bins)
        onehot = np.zeros((len(y), n_bins))
        onehot[np.arange(len(y)), bins] = 1.0
        yf = y.astype(np.float64)
        # Columns: 1, y, TP, FP, squared error, then per bin: sum of scores, positives.
        self._linear = np.column_stack([np.ones(len(y)), yf, (y & pred), (~y & pred),
                                        (s - yf) ** 2, onehot * s[:, None], onehot * yf[:, None]])
        order = np.argsort(s, kind="stable")
        self._order = order
        self._y_sorted = yf[order]
        self._starts = np.r_[0, np.flatnonzero(np.diff(s[order])) + 1] if len(y) else np.array([0])

    def __call__(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics for each row of ``weights`` (``(B, N)`` sample multiplicities) -> ``(B,)``."""
        w = np.asarray(weights, dtype=np.float64)
        if self.n_samples == 0:
            nan = np.full(w.shape[0], np.nan)
            return {**{m: nan for m in RATE_METRICS}, **{c: np.zeros(w.shape[0]) for c in COUNT_KEYS}}
        sums = w @ self._linear
        n, pos, tp, fp, sq = (sums[:, i] for i in range(5))
        nb = self.n_bins
        b_score, b_pos = sums[:, 5:5 + nb], sums[:, 5 + nb:]
        neg, fn = n - pos, pos - tp
        tn = neg - fp
        out = {
            "accuracy": _ratio(tp + tn, n),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, pos),
            "specificity": _ratio(tn, neg),
            "npv": _ratio(tn, tn + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "brier": _ratio(sq, n),
            "ece": _ratio(np.abs(b_score - b_pos).sum(axis=1), n),
            "n": n, "n_positive": pos, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        }
        out.update(self._ranking(w, pos, neg))
        return out

    def _ranking(self, w: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> dict[str, np.ndarray]:
        w_sorted = w[:, self._order]
        pos_w = w_sorted * self._y_sorted
        # Per distinct score (ascending): weighted positives and negatives.
        pos_g = np.add.reduceat(pos_w, self._starts, axis=1)
        neg_g = np.add.reduceat(w_sorted - pos_w, self._starts, axis=1)
        neg_below = np.cumsum(neg_g, axis=1) - neg_g
        auroc = _ratio((pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1), pos * neg)
        pos_d, neg_d = pos_g[:, ::-1], neg_g[:, ::-1]  # descending thresholds
        tp_c = np.cumsum(pos_d, axis=1)
        called = tp_c + np.cumsum(neg_d, axis=1)
        precision = np.divide(tp_c, called, out=np.zeros_like(tp_c), where=called > 0)
        auprc = _ratio((pos_d * precision).sum(axis=1), pos)
        return {"auroc": auroc, "auprc": auprc}


class ClassificationStats:
    """All metrics of a task (overall and per class) as a function of sample weights.

    Args:
        problem: ``binary``, ``multiclass`` or ``multilabel``.
        targets: ``(N, K)`` boolean true labels.
        probs: ``(N, K)`` probabilities (binary: ``[1 - p, p]``).
        operating_point: The decision rule (threshold chosen on val).
        label_names: The K label names.
        n_bins: Calibration bins.

    Calling it with ``(B, N)`` weights returns ``{(class or None, metric): (B,) array}``; binary
    tasks report only overall keys (the positive class, ``label_names[1]``).
    """

    def __init__(self, problem: Problem, targets: np.ndarray, probs: np.ndarray,
                 operating_point: OperatingPoint, label_names: Sequence[str], *,
                 n_bins: int = 10) -> None:
        check_problem(problem)
        targets = np.asarray(targets, dtype=bool)
        probs = np.asarray(probs, dtype=np.float64)
        if targets.shape != probs.shape or targets.ndim != 2 or targets.shape[1] != len(label_names):
            raise ValueError(f"targets and probs must both be (N, {len(label_names)}). "
                             f"Received: {targets.shape} and {probs.shape}")
        self.problem = problem
        self.label_names = tuple(label_names)
        self.predicted = operating_point.predict(probs)
        columns = [1] if problem == "binary" else range(len(label_names))
        self.per_class = {self.label_names[k]: BinaryStats(targets[:, k], probs[:, k],
                                                           self.predicted[:, k], n_bins=n_bins)
                          for k in columns}
        self._exact = np.column_stack([np.ones(len(targets)),
                                       (self.predicted == targets).all(axis=1),
                                       ((probs - targets) ** 2).sum(axis=1)])

    def __call__(self, weights: np.ndarray) -> dict[Key, np.ndarray]:
        per = {name: stats(weights) for name, stats in self.per_class.items()}
        if self.problem == "binary":
            return {(None, m): v for m, v in next(iter(per.values())).items()}
        out: dict[Key, np.ndarray] = {(c, m): v for c, vals in per.items() for m, v in vals.items()}
        for m in RATE_METRICS:
            out[(None, m)] = _nanmean(np.stack([vals[m] for vals in per.values()]))
        sums = np.asarray(weights, dtype=np.float64) @ self._exact
        out[(None, "n")] = sums[:, 0]
        out[(None, N_CORRECT)] = sums[:, 1]
        out[(None, "accuracy")] = _ratio(sums[:, 1], sums[:, 0])
        if self.problem == "multiclass":
            out[(None, "brier")] = _ratio(sums[:, 2], sums[:, 0])
        return out


def classification_metrics(problem: Problem, targets: np.ndarray, probs: np.ndarray,
                           operating_point: OperatingPoint, label_names: Sequence[str], *,
                           n_bins: int = 10) -> dict[Key, float]:
    """Point estimates (each sample once) of every metric; see the module docstring."""
    stats = ClassificationStats(problem, targets, probs, operating_point, label_names, n_bins=n_bins)
    return {k: float(v[0]) for k, v in stats(np.ones((1, len(targets)))).items()}


def binary_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float, *,
                   n_bins: int = 10) -> dict[str, float]:
    """Point estimates of the binary metrics and counts at ``score >= threshold``."""
    s = np.asarray(score, dtype=np.float64)
    stats = BinaryStats(np.asarray(y_true), s, s >= threshold, n_bins=n_bins)
    return {k: float(v[0]) for k, v in stats(np.ones((1, len(s)))).items()}


def confusion_matrix(targets: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """``(K, K)`` counts, row = actual class, column = predicted class, for one-hot inputs."""
    t = np.argmax(np.asarray(targets), axis=1)
    p = np.argmax(np.asarray(predicted), axis=1)
    k = np.asarray(targets).shape[1]
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)
