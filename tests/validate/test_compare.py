"""External - internal differences: paired when patients are shared, unpaired otherwise."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.evaluate import OperatingPoint
from pipeline.validate.compare import CITL, Scored, cohort_statistic, metric_differences, pairing

OP = OperatingPoint("binary", "youden", (0.5,))
METRICS = ("auroc", "ece", "recall", CITL)


def _cohort(seed: int, n: int, prefix: str = "P", shift: float = 0.0) -> Scored:
    rng = np.random.default_rng(seed)
    y = np.r_[True, False, rng.random(n - 2) < 0.4]  # both classes present
    p = np.clip(0.35 * y + 0.65 * rng.random(n) + shift, 0.0, 1.0)
    stat = cohort_statistic("binary", np.stack([~y, y], 1), np.stack([1 - p, p], 1), OP, ("neg", "pos"))
    return Scored(stat, tuple(f"{prefix}{i // 2:x}" for i in range(n)))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(6, 40), boot_seed=st.integers(0, 100))
def test_identical_cohorts_differ_by_exactly_zero(seed, n, boot_seed):
    cohort = _cohort(seed, n)
    diff = metric_differences(cohort, cohort, METRICS, n_boot=50, seed=boot_seed)
    assert diff["pairing"] == "paired" and diff["shared_patients"] == len(set(cohort.patients))
    for m in METRICS:
        assert diff[m] == 0.0
        if diff[f"{m}_valid_resamples"]:
            assert diff[f"{m}_ci_low"] == diff[f"{m}_ci_high"] == 0.0


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_disjoint_cohorts_are_unpaired_and_antisymmetric_in_the_point(seed):
    a, b = _cohort(seed, 30, "P"), _cohort(seed + 1, 24, "Pf0")
    ab = metric_differences(a, b, METRICS, n_boot=100, seed=1)
    ba = metric_differences(b, a, METRICS, n_boot=100, seed=1)
    assert ab["pairing"] == "unpaired" and ab["shared_patients"] == 0
    for m in METRICS:
        assert np.isclose(ab[m], -ba[m])
        assert ab[f"{m}_ci_low"] <= ab[m] + 1e-9 or ab[f"{m}_valid_resamples"] < 100


def test_pairing_narrows_the_interval_of_a_shared_cohort():
    base = _cohort(3, 60)
    shifted = _cohort(3, 60, shift=0.05)  # same patients, same labels, probabilities moved
    unshared = Scored(shifted.statistic, tuple("Q" + p[1:] for p in shifted.patients))
    paired = metric_differences(shifted, base, ("auroc", CITL), n_boot=300, seed=0)
    unpaired = metric_differences(unshared, base, ("auroc", CITL), n_boot=300, seed=0)
    assert paired["pairing"] == "paired" and unpaired["pairing"] == "unpaired"
    assert paired[CITL] == unpaired[CITL]  # the point does not depend on pairing
    width = {d["pairing"]: d[f"{CITL}_ci_high"] - d[f"{CITL}_ci_low"] for d in (paired, unpaired)}
    assert width["paired"] < width["unpaired"] / 2


def test_pairing_counts_shared_patients():
    assert pairing(["P1", "P2", "P2"], ["P2", "P3"]) == ("paired", 1)
    assert pairing(["P1"], ["P3"]) == ("unpaired", 0)


def test_no_resamples_gives_nan_intervals():
    a = _cohort(0, 10)
    diff = metric_differences(a, _cohort(1, 10, "Pa"), ("auroc",), n_boot=0)
    assert np.isnan(diff["auroc_ci_low"]) and diff["auroc_valid_resamples"] == 0
