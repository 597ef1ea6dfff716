"""External minus internal: metric differences with patient-level bootstrap intervals.

Both cohorts are scored by the locked model at the locked threshold; the question is how much
each metric moved (AUROC, calibration). The interval of a difference depends on whether the two
cohorts share patients, which pseudonyms show (ingest uses the same salt for both):

- **paired** (some patient in both): one draw of the union of patients per resample; each
  cohort takes the samples of the drawn patients it has, so a shared patient moves both sides
  together and their correlation narrows the interval, as it should. Identical cohorts give a
  difference of exactly 0 in every resample.
- **unpaired** (no shared patient): each cohort is resampled on its own (independent streams of
  the same seed), the usual two-sample bootstrap.

The interval is the percentile interval of the resampled differences; resamples where either
side is undefined (NaN, e.g. AUROC without positives) are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.evaluate.bootstrap import MAX_BLOCK_ELEMENTS, resample_counts
from pipeline.evaluate.decision import OperatingPoint
from pipeline.evaluate.metrics import ClassificationStats
from pipeline.evaluate.predictions import Problem

Pairing = Literal["paired", "unpaired"]
WeightedStatistic = Callable[[np.ndarray], Mapping[str, np.ndarray]]
#: Mean predicted probability minus observed fraction positive (0 = calibrated in the large).
CITL = "calibration_in_the_large"


@dataclass(frozen=True)
class Scored:
    """One cohort for :func:`metric_differences`.

    Attributes:
        statistic: ``(B, N)`` sample weights -> ``{metric: (B,) values}`` (see
            :func:`cohort_statistic`).
        patients: ``(N,)`` patient pseudonym of each sample.
    """

    statistic: WeightedStatistic
    patients: tuple[str, ...]


def cohort_statistic(problem: Problem, targets: np.ndarray, probs: np.ndarray,
                     operating_point: OperatingPoint, label_names: Sequence[str], *,
                     n_bins: int = 10) -> WeightedStatistic:
    """The overall metrics of :class:`~pipeline.evaluate.metrics.ClassificationStats` (same
    names as ``metrics/<task>.json``) plus :data:`CITL`, as a function of sample weights.

    :data:`CITL` is of the positive class for binary tasks, the macro mean over classes
    otherwise.
    """
    stats = ClassificationStats(problem, targets, probs, operating_point, label_names, n_bins=n_bins)
    columns = [1] if problem == "binary" else list(range(len(label_names)))
    gap = (np.asarray(probs, np.float64)[:, columns]
           - np.asarray(targets, np.float64)[:, columns]).mean(axis=1)

    def statistic(weights: np.ndarray) -> dict[str, np.ndarray]:
        w = np.asarray(weights, np.float64)
        out = {m: v for (scope, m), v in stats(w).items() if scope is None}
        total = w.sum(axis=1)
        out[CITL] = np.divide(w @ gap, total, out=np.full(total.shape, np.nan), where=total > 0)
        return out

    return statistic


def pairing(external: Sequence[str], internal: Sequence[str]) -> tuple[Pairing, int]:
    """``("paired", shared)`` when the cohorts share ``shared`` > 0 patients, else unpaired."""
    shared = len(set(external) & set(internal))
    return ("paired" if shared else "unpaired"), shared


def metric_differences(external: Scored, internal: Scored, metrics: Sequence[str], *,
                       n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, object]:
    """``external - internal`` of each metric, with its bootstrap interval (module docstring).

    Returns:
        Flat keys: ``pairing``, ``shared_patients``, ``n_boot``, ``level``, and per metric
        ``<m>`` (the difference of the point values), ``<m>_ci_low``, ``<m>_ci_high`` (NaN
        without valid resamples or with ``n_boot = 0``) and ``<m>_valid_resamples``.

    Raises:
        ValueError: ``level`` outside (0, 1) or negative ``n_boot``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1). Received: {level}")
    mode, shared = pairing(external.patients, internal.patients)
    point_e = external.statistic(np.ones((1, len(external.patients))))
    point_i = internal.statistic(np.ones((1, len(internal.patients))))
    diffs: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for w_e, w_i in _weight_blocks(external.patients, internal.patients, paired=mode == "paired",
                                   n_boot=n_boot, seed=seed):
        v_e, v_i = external.statistic(w_e), internal.statistic(w_i)
        for m in metrics:
            diffs[m].append(np.asarray(v_e[m], np.float64) - np.asarray(v_i[m], np.float64))
    out: dict[str, object] = {"pairing": mode, "shared_patients": shared, "n_boot": n_boot,
                              "level": level, "unit": "patient"}
    alpha = 100.0 * (1.0 - level) / 2.0
    for m in metrics:
        values = np.concatenate(diffs[m]) if diffs[m] else np.empty(0)
        valid = values[np.isfinite(values)]
        low, high = (np.percentile(valid, [alpha, 100.0 - alpha]) if len(valid) else (np.nan, np.nan))
        out.update({m: float(point_e[m][0] - point_i[m][0]), f"{m}_ci_low": float(low),
                    f"{m}_ci_high": float(high), f"{m}_valid_resamples": int(len(valid))})
    return out


def _weight_blocks(external: Sequence[str], internal: Sequence[str], *, paired: bool, n_boot: int,
                   seed: int):
    """``(B, N_ext)`` and ``(B, N_int)`` sample weights of the resamples, a block at a time."""
    if paired:
        union = np.unique(np.asarray([*external, *internal], dtype=str))
        _, counts = resample_counts(list(union), n_boot=n_boot, seed=seed)
        codes_e = np.searchsorted(union, np.asarray(external, dtype=str))
        codes_i = np.searchsorted(union, np.asarray(internal, dtype=str))
        counts_e = counts_i = counts
    else:
        codes_e, counts_e = resample_counts(external, n_boot=n_boot, seed=seed)
        # An independent stream for the other cohort: same seed, spawned child.
        child = int(np.random.SeedSequence(seed).spawn(1)[0].generate_state(1)[0])
        codes_i, counts_i = resample_counts(internal, n_boot=n_boot, seed=child)
    block = max(1, MAX_BLOCK_ELEMENTS // max(len(external), len(internal), 1))
    for start in range(0, n_boot, block):
        stop = start + block
        yield (counts_e[start:stop][:, codes_e].astype(np.float64),
               counts_i[start:stop][:, codes_i].astype(np.float64))
