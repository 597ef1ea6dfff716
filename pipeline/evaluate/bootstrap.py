"""Patient-level (cluster) bootstrap confidence intervals.

Each resample draws as many patients as there are, with replacement, and takes all samples of
every drawn patient (a patient drawn twice counts twice). Samples of one patient are correlated
(several images, both lungs, follow-ups), so resampling samples instead would give intervals that
are too narrow. A resample is a row of sample weights (how many times each sample occurs); a
statistic maps a ``(B, N)`` weight matrix to ``(B,)`` values, so all resamples are evaluated with
a few array operations (see :class:`pipeline.evaluate.metrics.BinaryStats`).

Intervals are percentile intervals of the resampled values. Resamples where a metric is undefined
(NaN, e.g. AUROC of a resample without positives) are skipped for that metric; ``n_valid`` says
how many were used. No valid resample (or ``n_boot = 0``) gives a NaN interval.

A percentile interval has zero width when every resample gives the same value, which is what
happens to a proportion with no events (0 of n, e.g. specificity with no false positive among 55
negatives, read "1.000 to 1.000") or with n of n. Such intervals are replaced by the exact
Clopper-Pearson binomial interval of the k of n samples (:func:`exact_if_degenerate`; 0 of 55
gives 0 to 0.065 at 95%), and :attr:`Estimate.method` records which method produced the interval.
The exact interval treats samples as independent (it cannot see patients), so with several
images per patient it is somewhat too narrow, but unlike the collapsed bootstrap it is not
zero.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
Statistic = Callable[[np.ndarray], Mapping[K, np.ndarray]]
#: Upper bound on the elements of one block of resample weights (B_block x N), ~32 MB of float64.
MAX_BLOCK_ELEMENTS = 1 << 22
#: Interval methods recorded in :attr:`Estimate.method` (and ``<metric>_ci_method`` in the metrics).
BOOTSTRAP, CLOPPER_PEARSON = "bootstrap", "clopper-pearson"
CIMethod = Literal["bootstrap", "clopper-pearson"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval.

    Attributes:
        value: The statistic on the original samples.
        low: Lower bound (e.g. 2.5th percentile for a 95% interval); NaN if no valid resample.
        high: Upper bound.
        n_valid: Resamples where the statistic was defined.
        method: ``"bootstrap"`` (percentile interval) or ``"clopper-pearson"`` (exact binomial
            interval, used where the bootstrap interval of a proportion has zero width).
    """

    value: float
    low: float
    high: float
    n_valid: int
    method: CIMethod = BOOTSTRAP


def resample_counts(patients: Sequence[str], *, n_boot: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Draw patient resamples.

    Patients are numbered in sorted order of their pseudonyms, so the draws depend on the set of
    patients and the seed, not on the order of the samples.

    Returns:
        ``codes``: ``(N,)`` patient number of each sample; ``counts``: ``(n_boot, P)`` how many
        times each patient was drawn in each resample (each row sums to P).
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0. Received: {n_boot}")
    unique, codes = np.unique(np.asarray(patients, dtype=str), return_inverse=True)
    n_patients = len(unique)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, max(n_patients, 1), size=(n_boot, n_patients))
    offsets = (np.arange(n_boot) * n_patients)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_patients)
    return codes.reshape(-1), counts.reshape(n_boot, n_patients)


def bootstrap(statistic: Statistic[K], patients: Sequence[str], *, n_boot: int = 1000,
              seed: int = 0, level: float = 0.95) -> dict[K, Estimate]:
    """Point estimates and patient-level bootstrap percentile intervals of a statistic.

    Args:
        statistic: Maps ``(B, N)`` sample weights to ``{key: (B,) values}``.
        patients: ``(N,)`` patient pseudonym of each sample.
        n_boot: Number of resamples (0 = no interval).
        seed: Seed of the resampling (same seed, same intervals).
        level: Coverage of the interval, e.g. 0.95.

    Raises:
        ValueError: ``level`` outside (0, 1) or negative ``n_boot``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1). Received: {level}")
    n = len(patients)
    point = {k: float(np.asarray(v)[0]) for k, v in statistic(np.ones((1, n))).items()}
    codes, counts = resample_counts(patients, n_boot=n_boot, seed=seed)
    block = max(1, MAX_BLOCK_ELEMENTS // max(n, 1))
    parts: dict[K, list[np.ndarray]] = {k: [] for k in point}
    for start in range(0, n_boot, block):
        values = statistic(counts[start:start + block][:, codes].astype(np.float64))
        for k in point:
            parts[k].append(np.asarray(values[k], dtype=np.float64))
    alpha = 100.0 * (1.0 - level) / 2.0
    out: dict[K, Estimate] = {}
    for k, value in point.items():
        resampled = np.concatenate(parts[k]) if parts[k] else np.empty(0)
        valid = resampled[np.isfinite(resampled)]
        low, high = (np.percentile(valid, [alpha, 100.0 - alpha]) if len(valid)
                     else (np.nan, np.nan))
        out[k] = Estimate(value, float(low), float(high), int(len(valid)))
    return out


def clopper_pearson(events: int, trials: int, *, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval of a binomial proportion ``events / trials``.

    The bounds are beta quantiles: ``Beta(alpha/2; k, n-k+1)`` and ``Beta(1-alpha/2; k+1, n-k)``,
    with 0 for the lower bound when ``k = 0`` and 1 for the upper bound when ``k = n``; equal to
    ``scipy.stats.binomtest(k, n).proportion_ci(level, method="exact")``. 0 of 55 at 95%:
    ``(0.0, 0.0649)``; 55 of 55: ``(0.9351, 1.0)``.

    Args:
        events: ``k``, the number of events, ``0 <= k <= n``.
        trials: ``n`` >= 1.
        level: Coverage, in (0, 1).

    Raises:
        ValueError: ``n < 1``, ``k`` outside ``[0, n]`` or ``level`` outside (0, 1).
    """
    from scipy.stats import beta

    k, n = int(events), int(trials)
    if n < 1 or not 0 <= k <= n or k != events or n != trials:
        raise ValueError(f"need integers 0 <= events <= trials and trials >= 1. "
                         f"Received: events={events!r}, trials={trials!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1). Received: {level}")
    alpha = 1.0 - level
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def is_degenerate(estimate: Estimate) -> bool:
    """True when the interval is finite but has (numerically) zero width."""
    low, high = estimate.low, estimate.high
    return bool(np.isfinite(low) and np.isfinite(high) and high - low <= 1e-12)


def exact_if_degenerate(estimate: Estimate, events: float, trials: float, *, level: float = 0.95
                        ) -> Estimate:
    """The estimate of the proportion ``events / trials`` with its collapsed bootstrap interval
    replaced by the Clopper-Pearson one (``method = "clopper-pearson"``); unchanged otherwise.

    Only zero-width intervals are replaced: a NaN interval (``n_boot = 0`` or no valid
    resample) stays NaN, and ``trials < 1`` (an undefined proportion) changes nothing.

    Args:
        estimate: From :func:`bootstrap`.
        events, trials: Counts behind the point estimate (weights 1; rounded to integers).
        level: Coverage of the interval.
    """
    n = int(round(float(trials))) if np.isfinite(trials) else 0
    if n < 1 or not is_degenerate(estimate):
        return estimate
    k = min(max(int(round(float(events))), 0), n)
    low, high = clopper_pearson(k, n, level=level)
    return replace(estimate, low=low, high=high, method=CLOPPER_PEARSON)
