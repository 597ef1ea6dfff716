from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.evaluate import (
    ClassificationStats,
    OperatingPoint,
    bootstrap,
    choose_operating_point,
    resample_counts,
)
from tests.evaluate.synth import make_predictions


def _binary_stats(n: int = 60, seed: int = 0, per_patient: int = 3):
    p = make_predictions("binary", n=n, seed=seed, per_patient=per_patient)
    t = p.targets("binary")
    op = choose_operating_point("binary", t, p.probs, "youden")
    return ClassificationStats("binary", t, p.probs, op, p.label_names), p.patients


def test_cis_contain_the_estimate_and_are_reproducible():
    stats, patients = _binary_stats()
    a = bootstrap(stats, patients, n_boot=500, seed=7)
    b = bootstrap(stats, patients, n_boot=500, seed=7)
    c = bootstrap(stats, patients, n_boot=500, seed=8)
    assert a == b
    assert a[(None, "auroc")] != c[(None, "auroc")]
    for m in ("accuracy", "precision", "recall", "specificity", "npv", "f1", "auroc", "auprc",
              "brier", "ece"):
        e = a[(None, m)]
        assert e.low <= e.value <= e.high, m
        assert e.low < e.high, m
        assert e.n_valid == 500


def test_one_thousand_resamples_of_all_binary_metrics_are_all_valid():
    # (Its speed, about 0.03 s, is not timed here: tests assert behaviour, bench/ measures.)
    stats, patients = _binary_stats(n=60)
    est = bootstrap(stats, patients, n_boot=1000, seed=0)
    assert est[(None, "auroc")].n_valid == 1000
    assert est[(None, "auroc")].low < est[(None, "auroc")].value < est[(None, "auroc")].high


def test_resample_counts_draw_patients_with_replacement():
    patients = ["P0b", "P0a", "P0b", "P0c", "P0a", "P0a"]
    codes, counts = resample_counts(patients, n_boot=200, seed=1)
    np.testing.assert_array_equal(codes, [1, 0, 1, 2, 0, 0])  # numbered in sorted order
    assert counts.shape == (200, 3)
    assert (counts.sum(axis=1) == 3).all()
    assert (counts == 0).any() and (counts >= 2).any()  # some patients left out, some repeated
    # Each sample's weight is its patient's count: all samples of a patient move together.
    weights = counts[:, codes]
    assert (weights[:, 1] == weights[:, 4]).all() and (weights[:, 4] == weights[:, 5]).all()


def test_resamples_patients_not_samples():
    # One patient with 50 samples, ten with one: the resampled size jumps by 50 whenever the big
    # patient is drawn a different number of times. Sample-level resampling would keep n = 60.
    patients = ["P00"] * 50 + [f"P{i:02x}" for i in range(1, 11)]
    sizes = bootstrap(lambda w: {"n": w.sum(axis=1)}, patients, n_boot=400, seed=0)["n"]
    assert sizes.value == 60
    assert sizes.low <= 11 and sizes.high >= 110

    # The big patient is all correct and the others all wrong: accuracy swings between ~0 and ~1.
    correct = np.r_[np.ones(50), np.zeros(10)]
    acc = bootstrap(lambda w: {"acc": (w @ correct) / w.sum(axis=1)}, patients, n_boot=400, seed=0)
    assert acc["acc"].value == pytest.approx(50 / 60)
    assert acc["acc"].low < 0.1 and acc["acc"].high > 0.9


def test_cluster_intervals_are_wider_than_naive_ones_for_correlated_samples():
    # Each patient's samples share one outcome: correlation that sample resampling ignores.
    rng = np.random.default_rng(0)
    outcome = np.repeat(rng.random(12) < 0.5, 10).astype(float)
    patients = np.repeat([f"P{i:02x}" for i in range(12)], 10)
    mean = lambda w: {"m": (w @ outcome) / w.sum(axis=1)}  # noqa: E731
    clustered = bootstrap(mean, patients, n_boot=500, seed=0)["m"]
    naive = bootstrap(mean, [f"P{i:03x}" for i in range(120)], n_boot=500, seed=0)["m"]
    assert (clustered.high - clustered.low) > 2 * (naive.high - naive.low)


def test_undefined_resamples_are_skipped_and_counted():
    # Positives only in one patient of ten: resamples without that patient have no AUROC.
    n = 30
    t = np.zeros((n, 2), dtype=bool)
    t[:, 0] = True
    t[[0, 1, 2], 0], t[[0, 1, 2], 1] = False, True
    s = np.linspace(0.05, 0.95, n)
    probs = np.stack([1 - s, s], axis=1)
    stats = ClassificationStats("binary", t, probs, OperatingPoint("binary", "0.5", (0.5,)),
                                ("neg", "pos"))
    patients = [f"P{i // 3:02x}" for i in range(n)]
    est = bootstrap(stats, patients, n_boot=300, seed=0)
    auroc = est[(None, "auroc")]
    # P(patient 0 never drawn in 10 draws) = 0.9^10 ~ 35%
    assert 150 < auroc.n_valid < 260
    assert est[(None, "accuracy")].n_valid == 300
    assert np.isfinite(auroc.low) and auroc.low <= auroc.high


def test_intervals_do_not_depend_on_sample_order():
    stats, patients = _binary_stats(n=45)
    p = make_predictions("binary", n=45, seed=0)
    perm = np.random.default_rng(3).permutation(45)
    t = p.targets("binary")
    op = choose_operating_point("binary", t, p.probs, "youden")
    shuffled = ClassificationStats("binary", t[perm], p.probs[perm], op, p.label_names)
    a = bootstrap(stats, patients, n_boot=200, seed=2)
    b = bootstrap(shuffled, [patients[i] for i in perm], n_boot=200, seed=2)
    for key in a:
        assert a[key].value == pytest.approx(b[key].value, nan_ok=True)
        assert a[key].low == pytest.approx(b[key].low, nan_ok=True)
        assert a[key].high == pytest.approx(b[key].high, nan_ok=True)


def test_blocks_give_the_same_result(monkeypatch):
    bs = sys.modules["pipeline.evaluate.bootstrap"]  # the package re-exports a function of that name
    stats, patients = _binary_stats(n=60)
    whole = bootstrap(stats, patients, n_boot=100, seed=4)
    monkeypatch.setattr(bs, "MAX_BLOCK_ELEMENTS", 60 * 7)  # blocks of 7 resamples
    assert bootstrap(stats, patients, n_boot=100, seed=4) == whole


def test_no_resamples_and_bad_level():
    stats, patients = _binary_stats(n=12)
    est = bootstrap(stats, patients, n_boot=0)
    e = est[(None, "auroc")]
    assert np.isfinite(e.value) and np.isnan(e.low) and np.isnan(e.high) and e.n_valid == 0
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap(stats, patients, level=1.0)
    with pytest.raises(ValueError, match="n_boot must be >= 0"):
        bootstrap(stats, patients, n_boot=-1)


def test_exact_interval_of_zero_and_all_events():
    from pipeline.evaluate.bootstrap import clopper_pearson

    low, high = clopper_pearson(0, 55)
    assert low == 0.0 and high == pytest.approx(0.0649, abs=1e-4)
    low, high = clopper_pearson(55, 55)
    assert low == pytest.approx(0.935, abs=5e-4) and high == 1.0  # 0 FP among 55 negatives
    assert clopper_pearson(0, 1, level=0.95) == (0.0, pytest.approx(0.975))
    for bad in ((-1, 5), (6, 5), (0, 0), (1.5, 3)):
        with pytest.raises(ValueError, match="0 <= events <= trials"):
            clopper_pearson(*bad)
    with pytest.raises(ValueError, match="level must be in"):
        clopper_pearson(1, 3, level=0.0)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 400), data=st.data(), level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_exact_interval_properties(n, data, level):
    from scipy.stats import binomtest

    from pipeline.evaluate.bootstrap import clopper_pearson

    k = data.draw(st.integers(0, n))
    low, high = clopper_pearson(k, n, level=level)
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert high - low > 0.0  # never collapses, even at 0 or n events
    ref = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    assert (low, high) == (pytest.approx(ref.low, abs=1e-9), pytest.approx(ref.high, abs=1e-9))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 200), data=st.data(), seed=st.integers(0, 2**16))
def test_collapsed_bootstrap_intervals_of_proportions_become_exact(n, data, seed):
    """A proportion at 0 or 1 has a zero-width bootstrap interval; the replacement contains the
    estimate, stays in [0, 1] and has width; other intervals are left alone."""
    from pipeline.evaluate.bootstrap import CLOPPER_PEARSON, exact_if_degenerate

    events = data.draw(st.sampled_from([0, n]))
    hits = np.zeros(n)
    hits[:events] = 1.0
    patients = [f"P{i % 7}" for i in range(n)]

    def rate(weights):
        return {"p": (weights @ hits) / weights.sum(axis=1)}

    raw = bootstrap(rate, patients, n_boot=50, seed=seed)["p"]
    assert raw.low == raw.high == raw.value == events / n
    e = exact_if_degenerate(raw, events, n)
    assert e.method == CLOPPER_PEARSON and e.value == raw.value and e.n_valid == raw.n_valid
    assert 0.0 <= e.low <= e.value <= e.high <= 1.0 and e.high - e.low > 0.0


def test_exact_fallback_leaves_wide_nan_and_undefined_intervals_alone():
    from pipeline.evaluate.bootstrap import BOOTSTRAP, Estimate, exact_if_degenerate

    wide = Estimate(0.5, 0.3, 0.7, 100)
    assert exact_if_degenerate(wide, 5, 10) is wide and wide.method == BOOTSTRAP
    none = Estimate(1.0, float("nan"), float("nan"), 0)  # n_boot = 0: no interval asked for
    assert exact_if_degenerate(none, 10, 10) is none
    undefined = Estimate(float("nan"), float("nan"), float("nan"), 0)
    assert exact_if_degenerate(undefined, 0, 0) is undefined
