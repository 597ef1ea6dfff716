"""Patient-level, label-stratified, seeded train/val/test splits."""

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
