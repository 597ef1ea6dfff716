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
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
Statistic = Callable[[np.ndarray], Mapping[K, np.ndarray]]
#: Upper bound on the elements of one block of resample weights (B_block x N), ~32 MB of float64.
MAX_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap percentile interval.

    Attributes:
        value: The statistic on the original samples.
        low: Lower bound (e.g. 2.5th percentile for a 95% interval); NaN if no valid resample.
        high: Upper bound.
        n_valid: Resamples where the statistic was defined.
    """

    value: float
    low: float
    high: float
    n_valid: int


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
