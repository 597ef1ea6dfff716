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
    rows. The remaining patients are split by :func:`stratified_group_fold` (scikit-learn's
    ``StratifiedGroupKFold``; groups = patients, stratified on the label), first test, then val
    from the rest.

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
    min_class = min(Counter(_group_labels(y, groups).values()).values())
    if min_class >= n_splits:
        chosen = stratified_group_fold(y, groups, n_splits=n_splits, seed=seed)
    else:  # too few patients of some class to stratify: plain grouped shuffle
        from sklearn.model_selection import GroupShuffleSplit

        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        _, chosen = next(splitter.split(np.zeros(len(y)), y, groups))
    mask = np.zeros(len(y), dtype=bool)
    mask[chosen] = True
    return mask


def stratified_group_fold(y: np.ndarray, groups: np.ndarray, *, n_splits: int, seed: int) -> np.ndarray:
    """Sample indices of the first test fold of scikit-learn's ``StratifiedGroupKFold(n_splits,
    shuffle=True, random_state=seed)`` as released from 1.8 on: the same result, index for index.

    Why not call scikit-learn: its greedy pass makes one small NumPy call per group and
    candidate fold (about 0.4 ms per patient; 2 s of a 3,000-patient ingest, more than all of
    the decoding on 2 cores). This pass scores all candidate folds of a group in one call (about
    20 us). And scikit-learn before 1.8 shuffled the groups' class counts without their indices
    (its PR #32540), so its folds, and our splits, changed with the installed release; ours do
    not. The algorithm: shuffle the groups (``RandomState(seed)``), visit them by decreasing
    standard deviation of their class counts (stable), and put each in the fold whose per-class
    shares of the dataset then have the lowest mean standard deviation across folds, ties (within
    ``np.isclose``) to the fold with fewer samples.
    """
    _, y_inv, y_cnt = np.unique(y, return_inverse=True, return_counts=True)
    _, groups_inv, groups_cnt = np.unique(groups, return_inverse=True, return_counts=True)
    n_groups, n_classes = len(groups_cnt), len(y_cnt)
    counts = np.zeros((n_groups, n_classes))
    np.add.at(counts, (groups_inv.ravel(), y_inv.ravel()), 1)
    perm = np.arange(n_groups)
    np.random.RandomState(seed).shuffle(perm)
    counts = counts[perm]
    inv_perm = np.empty_like(perm)
    inv_perm[perm] = np.arange(perm.size)
    groups_inv = inv_perm[groups_inv.ravel()]
    order = np.argsort(-np.std(counts, axis=1), kind="stable")

    per_fold = np.zeros((n_splits, n_classes))
    share = y_cnt.reshape(1, 1, -1).astype(float)
    in_first = np.zeros(n_groups, dtype=bool)
    candidates = np.empty((n_splits, n_splits, n_classes))
    shares = np.empty_like(candidates)
    moved = candidates.reshape(n_splits * n_splits, n_classes)[:: n_splits + 1]  # [c, c]: a view
    sizes = [0.0] * n_splits  # per_fold.sum(axis=1): integer counts, so exact in any order
    group_sizes = counts.sum(axis=1).tolist()
    for g in order:
        candidates[:] = per_fold  # [c] = the folds if g goes to fold c
        np.add(moved, counts[g], out=moved)
        scores = _mean_std_across_folds(np.divide(candidates, share, out=shares)).tolist()
        best, best_score, best_size = 0, np.inf, np.inf
        for fold, (score, size) in enumerate(zip(scores, sizes, strict=True)):
            tie = abs(score - best_score) <= 1e-8 + 1e-5 * abs(best_score)  # np.isclose
            if score < best_score or (tie and size < best_size):
                best, best_score, best_size = fold, score, size
        per_fold[best] += counts[g]
        sizes[best] += group_sizes[g]
        in_first[g] = best == 0
    return np.flatnonzero(in_first[groups_inv])


def _mean_std_across_folds(shares: np.ndarray) -> np.ndarray:
    """``np.std(shares, axis=1).mean(axis=1)`` through the same ufunc calls NumPy makes (so the
    same bits, which the tie rule depends on), without its Python wrappers."""
    n_folds, n_classes = shares.shape[1], shares.shape[2]
    mean = np.add.reduce(shares, axis=1, keepdims=True)
    np.true_divide(mean, n_folds, out=mean)
    dev = shares - mean
    np.multiply(dev, dev, out=dev)
    var = np.add.reduce(dev, axis=1)
    np.true_divide(var, n_folds, out=var)
    np.sqrt(var, out=var)
    score = np.add.reduce(var, axis=1)
    return np.true_divide(score, n_classes, out=score)


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
