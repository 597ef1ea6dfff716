"""Operating threshold, chosen on the validation split only, never on test.

A sample is predicted positive when ``score >= threshold``. Candidate thresholds are the distinct
validation scores plus one just above the highest score (predict nothing positive; only when that
score is below 1), so every chosen value is a score the model actually produced (or that "none"
point) and lies in [0, 1]. If negatives score exactly 1.0, ``specificity@x`` may be unreachable:
the threshold is then 1.0, with a warning.
Rules (the ``threshold`` param):

- ``youden``: maximise sensitivity + specificity - 1.
- ``f1``: maximise F1.
- ``sensitivity@x``: the highest threshold whose sensitivity is >= x (x in (0, 1]), i.e. the most
  specific operating point that still finds a fraction x of the positives.
- ``specificity@x``: the lowest threshold whose specificity is >= x.
- a number in (0, 1): used as is.

Ties between equally good thresholds go to the highest one (fewer positive calls).
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.rules import (  # noqa: F401  (public names of this module)
    RULE_FORMS,
    RuleKind,
    ThresholdRule,
    parse_threshold_rule,
    validate_threshold_rule,
)

log = logging.getLogger(__name__)

_TOL = 1e-9  # sensitivity@0.95 must accept 19/20 despite float rounding

class UndefinedThresholdError(ValueError):
    """The rule needs a class that the validation data lacks (e.g. youden with no positives)."""


def choose_threshold(y_true: np.ndarray, score: np.ndarray, rule: str | float | ThresholdRule,
                     ) -> float:
    """Pick the operating threshold on validation data.

    Args:
        y_true: ``(N,)`` 0/1 or bool, 1 = positive.
        score: ``(N,)`` probability of the positive class, in [0, 1].
        rule: See the module docstring.

    Returns:
        The threshold in [0, 1]; predict positive when ``score >= threshold``.

    Raises:
        ValueError: Bad rule or inputs.
        UndefinedThresholdError: The rule needs positives/negatives that ``y_true`` lacks
            (including an empty validation set).
    """
    parsed = parse_threshold_rule(rule)
    y, s = _check_inputs(y_true, score)
    if parsed.kind == "fixed":
        return float(parsed.target)  # type: ignore[arg-type]
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    missing = [c for c in parsed.needs if (n_pos if c == "positive" else n_neg) == 0]
    if missing:
        raise UndefinedThresholdError(
            f"threshold rule {str(parsed)!r} needs {' and '.join(parsed.needs)} validation "
            f"samples; there are {n_pos} positive and {n_neg} negative")
    thresholds, tp, fp = _operating_points(y, s)
    fn = n_pos - tp
    if parsed.kind == "youden":
        best = np.argmax(tp / n_pos - fp / n_neg)
    elif parsed.kind == "f1":
        best = np.argmax(2 * tp / (2 * tp + fp + fn))
    elif parsed.kind == "sensitivity":
        best = np.flatnonzero(tp >= parsed.target * n_pos - _TOL)[0]
    else:  # specificity: non-increasing as the threshold falls; take the last that qualifies
        ok = np.flatnonzero(n_neg - fp >= parsed.target * n_neg - _TOL)
        if not len(ok):
            log.warning("no threshold <= 1 reaches specificity %s (negatives scored 1.0); "
                        "using 1.0", parsed.target)
        best = ok[-1] if len(ok) else 0
    return float(thresholds[best])


def _operating_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (descending) with the true/false positives each one gives."""
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_desc)), len(s_desc) - 1]
    tp = np.cumsum(y_desc)[last_of_group].astype(np.float64)
    fp = (last_of_group + 1) - tp
    thresholds = s_desc[last_of_group]
    if s_desc[0] < 1.0:  # "predict nothing positive" exists within [0, 1] only below a score of 1
        return (np.r_[np.nextafter(s_desc[0], np.inf), thresholds], np.r_[0.0, tp], np.r_[0.0, fp])
    return thresholds, tp, fp


def _check_inputs(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"y_true and score must be 1-D arrays of equal length. "
                         f"Received: shapes {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must hold only 0/1. Received values: {np.unique(y)[:5].tolist()}")
    if len(s) and (not np.all(np.isfinite(s)) or s.min() < 0.0 or s.max() > 1.0):
        raise ValueError("score must be finite probabilities in [0, 1]")
    return y.astype(bool), s
