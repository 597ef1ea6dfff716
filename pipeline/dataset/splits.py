"""Patient-level, label-stratified, seeded train/val/test splits and cross-validation folds."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np


class SplitLeakError(ValueError):
    """A patient was given two different explicit splits in labels.csv."""


def assign_splits(
    patients: Sequence[str],
    labels: Sequence[str],
    fixed: Sequence[str | None],
    *,
    val: float,
    test: float,
    seed: int,
) -> list[str]:
    """Assign every sample to train/val/test so that no patient spans two splits.

    Explicit splits (``fixed``, from labels.csv) are honoured and extend to the patient's other
    rows. The remaining patients are split with scikit-learn's ``StratifiedGroupKFold`` (groups =
    patients, stratified on the label), first test, then val from the rest.

    Args:
        patients: Patient key per sample (pseudonym).
        labels: Class name per sample.
        fixed: Explicit split per sample or None.
        val: Fraction of the free patients for validation.
        test: Fraction of the free patients for test.
        seed: Random seed (same inputs + seed = same splits).

    Returns:
        Split name per sample.

    Raises:
        SplitLeakError: A patient has two different explicit splits.
    """
    if not len(patients) == len(labels) == len(fixed):
        raise ValueError("patients, labels and fixed must have the same length")
    pinned: dict[str, str] = {}
    for patient, split in zip(patients, fixed, strict=True):
        if split is None:
            continue
        if pinned.setdefault(patient, split) != split:
            raise SplitLeakError(
                "labels.csv puts the same patient in two splits "
                f"({pinned[patient]!r} and {split!r}); splits must be patient-level"
            )
    free = [i for i, p in enumerate(patients) if p not in pinned]
    out = [pinned.get(p, "train") for p in patients]
    if free:
        f_groups = np.array([patients[i] for i in free])
        f_labels = np.array([labels[i] for i in free])
        rng_seed = int(seed)
        test_mask = _take_fraction(f_labels, f_groups, test, rng_seed)
        rest = ~test_mask
        val_frac = val / (1.0 - test) if test < 1 else 0.0
        val_mask = np.zeros_like(test_mask)
        val_mask[rest] = _take_fraction(f_labels[rest], f_groups[rest], val_frac, rng_seed + 1)
        for j, i in enumerate(free):
            out[i] = "test" if test_mask[j] else "val" if val_mask[j] else "train"
    return out


def _take_fraction(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask selecting about ``fraction`` of the groups, stratified by label."""
    n_groups = len(set(groups.tolist()))
    if fraction <= 0 or n_groups < 2:
        return np.zeros(len(y), dtype=bool)
    n_splits = min(max(2, round(1.0 / fraction)), n_groups)
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    min_class = min(Counter(_group_labels(y, groups).values()).values())
    if min_class >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, chosen = next(splitter.split(np.zeros(len(y)), y, groups))
    else:  # too few patients of some class to stratify: plain grouped shuffle
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        _, chosen = next(splitter.split(np.zeros(len(y)), y, groups))
    mask = np.zeros(len(y), dtype=bool)
    mask[chosen] = True
    return mask


def _group_labels(y: np.ndarray, groups: np.ndarray) -> dict[str, str]:
    """Most common label per group (used only to check stratification is feasible)."""
    per: dict[str, Counter] = defaultdict(Counter)
    for label, group in zip(y.tolist(), groups.tolist(), strict=True):
        per[group][label] += 1
    return {g: c.most_common(1)[0][0] for g, c in per.items()}


def assign_folds(patients: Sequence[str], strata: Sequence[str], *, k: int, seed: int) -> np.ndarray:
    """Assign every sample to one of ``k`` patient-grouped, stratified folds (cross-validation).

    Each patient gets one stratum, its most frequent ``strata`` value (ties: the first in sorted
    order). Strata are visited in sorted order; the patients of a stratum, sorted by key and then
    shuffled with ``seed``, are dealt round-robin to folds ``0..k-1``, the deal continuing where
    the previous stratum stopped. Hence a patient is in exactly one fold, and per stratum and
    overall the folds' patient counts differ by at most one; the result depends on the
    (patient, stratum) pairs and ``seed`` only, not on the sample order.

    Args:
        patients: Patient key per sample (pseudonym).
        strata: Stratum per sample: the class name (binary, multi-class) or the whole label cell
            (multi-label: the label combination).
        k: Number of folds (>= 2).
        seed: Random seed (same inputs + seed = same folds).

    Returns:
        int64 ``(N,)`` fold number per sample, in ``[0, k)``.

    Raises:
        ValueError: ``k < 2``, inputs of different lengths, or a stratum with fewer than ``k``
            patients (some fold would not hold it; the message names it, never a patient).
    """
    if len(patients) != len(strata):
        raise ValueError("patients and strata must have the same length")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"folds must be an integer >= 2 to partition. Received: {k!r}")
    stratum_of = patient_strata(patients, strata)
    members: dict[str, list[str]] = defaultdict(list)
    for patient, stratum in sorted(stratum_of.items()):
        members[stratum].append(patient)
    rarest = min(members, key=lambda s: (len(members[s]), s), default=None)
    if rarest is not None and len(members[rarest]) < k:
        raise ValueError(f"folds must be at most {len(members[rarest])}, the number of patients of the "
                         f"rarest class ({rarest!r}) in the split being divided, so that every fold "
                         f"holds every class. Received: {k}")
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    dealt = 0
    for stratum in sorted(members):
        for patient in rng.permutation(np.array(members[stratum], dtype=object)).tolist():
            fold_of[patient] = dealt % k
            dealt += 1
    return np.array([fold_of[p] for p in patients], dtype=np.int64)


def patient_strata(patients: Sequence[str], strata: Sequence[str]) -> dict[str, str]:
    """Each patient's stratum: its most frequent value in ``strata``, ties to the smallest."""
    per: dict[str, Counter] = defaultdict(Counter)
    for patient, stratum in zip(patients, strata, strict=True):
        per[patient][stratum] += 1
    return {p: min(c, key=lambda s: (-c[s], s)) for p, c in per.items()}
