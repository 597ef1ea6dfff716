from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.dataset.splits import SplitLeakError, assign_splits


def _cohort(n_patients: int, seed: int):
    rng = np.random.default_rng(seed)
    patients, labels = [], []
    for p in range(n_patients):
        label = "pos" if rng.random() < 0.4 else "neg"
        for _ in range(int(rng.integers(1, 5))):
            patients.append(f"p{p}")
            labels.append(label)
    return patients, labels


def _patients_per_split(patients, splits):
    seen = defaultdict(set)
    for p, s in zip(patients, splits, strict=True):
        seen[p].add(s)
    return seen


@settings(max_examples=30, deadline=None)
@given(n_patients=st.integers(3, 60), seed=st.integers(0, 10_000))
def test_no_patient_in_two_splits(n_patients, seed):
    patients, labels = _cohort(n_patients, seed)
    splits = assign_splits(patients, labels, [None] * len(patients), val=0.15, test=0.2, seed=seed)
    assert all(len(s) == 1 for s in _patients_per_split(patients, splits).values())
    assert set(splits) <= {"train", "val", "test"}


def test_fractions_and_stratification():
    patients, labels = _cohort(200, 1)
    splits = assign_splits(patients, labels, [None] * len(patients), val=0.15, test=0.2, seed=3)
    by_patient = {p: s for p, s in zip(patients, splits, strict=True)}
    frac = {s: sum(v == s for v in by_patient.values()) / len(by_patient) for s in ("val", "test")}
    assert frac["test"] == pytest.approx(0.2, abs=0.05)
    assert frac["val"] == pytest.approx(0.15, abs=0.05)
    for split in ("train", "val", "test"):  # every split holds both classes, near the base rate
        ys = [y for y, s in zip(labels, splits, strict=True) if s == split]
        assert 0.25 < ys.count("pos") / len(ys) < 0.55


def test_seeded_and_deterministic():
    patients, labels = _cohort(80, 2)
    a = assign_splits(patients, labels, [None] * len(patients), val=0.15, test=0.2, seed=7)
    b = assign_splits(patients, labels, [None] * len(patients), val=0.15, test=0.2, seed=7)
    c = assign_splits(patients, labels, [None] * len(patients), val=0.15, test=0.2, seed=8)
    assert a == b and a != c


def test_explicit_splits_are_kept_and_extend_to_the_patient():
    patients = ["a", "a", "b", "c", "d", "e", "f", "g"]
    labels = ["pos", "pos", "neg", "pos", "neg", "pos", "neg", "neg"]
    fixed = ["test", None, "val", None, None, None, None, None]
    splits = assign_splits(patients, labels, fixed, val=0.2, test=0.2, seed=0)
    assert splits[0] == splits[1] == "test"
    assert splits[2] == "val"


def test_conflicting_explicit_splits_for_one_patient_fail():
    with pytest.raises(SplitLeakError, match="same patient in two splits"):
        assign_splits(["a", "a"], ["x", "x"], ["train", "test"], val=0.1, test=0.1, seed=0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(4, 200), n_classes=st.integers(2, 10), k=st.integers(2, 7),
       per_group=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), data_seed=st.integers(0, 10_000))
def test_stratified_group_fold_is_scikit_learns(n, n_classes, k, per_group, seed, data_seed):
    """Our vectorised pass gives scikit-learn's StratifiedGroupKFold (>= 1.8) first test fold,
    index for index: same algorithm, same RandomState stream, same tie rule."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    from pipeline.dataset.splits import stratified_group_fold

    rng = np.random.default_rng(data_seed)
    y = rng.integers(0, n_classes, n).astype(str)
    groups = np.array([f"p{g}" for g in rng.integers(0, max(k, n // per_group), n)])
    assume(len(set(groups.tolist())) >= k and len(set(y.tolist())) >= 2)
    assume(max(np.unique(y, return_counts=True)[1]) >= k)  # scikit-learn's own precondition
    with warnings.catch_warnings():  # a class rarer than k warns; the comparison still holds
        warnings.simplefilter("ignore", UserWarning)
        _, expected = next(StratifiedGroupKFold(k, shuffle=True, random_state=seed)
                           .split(np.zeros(n), y, groups))
    got = stratified_group_fold(y, groups, n_splits=k, seed=seed)
    np.testing.assert_array_equal(got, np.sort(expected))
