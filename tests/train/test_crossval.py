"""Cross-validation logic without TensorFlow: fold partitions (property-based), what each member
trains and validates on, resuming after a kill between members, out-of-fold scores."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import ParamsError
from pipeline.dataset.splits import assign_folds, patient_strata
from pipeline.train import crossval
from pipeline.train.crossval import Fitted, Split, fold_plan, oof_probs, summary, train_members
from pipeline.train.oof import auroc, cross_entropy, write_oof


@st.composite
def _cohorts(draw):
    """(patients, strata) per sample and a feasible k: 2-4 classes, 1-3 samples per patient."""
    n_classes = draw(st.integers(2, 4))
    counts = draw(st.lists(st.integers(2, 7), min_size=n_classes, max_size=n_classes))
    patients, strata = [], []
    for c, count in enumerate(counts):
        for p in range(count):
            for _ in range(draw(st.integers(1, 3))):
                patients.append(f"P{c}{p:02d}")
                strata.append(f"class{c}")
    order = draw(st.permutations(range(len(patients))))
    k = draw(st.integers(2, min(counts)))
    return [patients[i] for i in order], [strata[i] for i in order], k


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cohorts(), st.integers(0, 2**31 - 1))
def test_folds_are_a_stratified_patient_partition(cohort, seed):
    patients, strata, k = cohort
    folds = assign_folds(patients, strata, k=k, seed=seed)
    assert folds.shape == (len(patients),) and folds.min() >= 0 and folds.max() < k
    fold_of_patient = defaultdict(set)
    for p, f in zip(patients, folds, strict=True):
        fold_of_patient[p].add(int(f))
    assert all(len(f) == 1 for f in fold_of_patient.values())  # never a patient in two folds
    stratum_of = patient_strata(patients, strata)
    per_fold = Counter((next(iter(fold_of_patient[p])), s) for p, s in stratum_of.items())
    for stratum in set(stratum_of.values()):  # every fold holds every class, balanced within one
        counts = [per_fold[(f, stratum)] for f in range(k)]
        assert min(counts) >= 1 and max(counts) - min(counts) <= 1
    sizes = Counter(next(iter(f)) for f in fold_of_patient.values())
    assert max(sizes.values()) - min(sizes.values()) <= 1
    # deterministic under the seed, and the sample order does not matter
    np.testing.assert_array_equal(assign_folds(patients, strata, k=k, seed=seed), folds)
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = assign_folds([patients[i] for i in order], [strata[i] for i in order], k=k, seed=seed)
    np.testing.assert_array_equal(shuffled, folds[order])


def test_another_seed_gives_other_folds():
    patients = [f"P{i:02d}" for i in range(40)]
    strata = ["a" if i % 3 else "b" for i in range(40)]
    assert not np.array_equal(assign_folds(patients, strata, k=4, seed=0),
                              assign_folds(patients, strata, k=4, seed=1))


@pytest.mark.parametrize(("k", "message"), [
    (1, "folds must be an integer >= 2 to partition. Received: 1"),
    (3, "folds must be at most 2, the number of patients of the rarest class ('b')"),  # p6 is 'a'
])
def test_infeasible_fold_counts_are_refused(k, message):
    patients = ["p1", "p2", "p3", "p4", "p5", "p6", "p6"]
    with pytest.raises(ValueError) as info:
        assign_folds(patients, ["a", "a", "a", "b", "b", "b", "a"], k=k, seed=0)
    assert message in str(info.value)


def test_fold_plan_names_the_key():
    split = _split(n_patients=6, positives=2)
    with pytest.raises(ParamsError) as info:
        fold_plan(split, folds=3, seed=0, key="tasks.cxr.train")
    assert str(info.value).startswith("tasks.cxr.train.folds must be at most 2,")
    assert str(info.value).endswith("Received: 3")


def _split(n_patients: int = 9, positives: int = 3, per_patient: int = 2, offset: int = 0) -> Split:
    patients = tuple(f"P{offset + i:03x}" for i in range(n_patients) for _ in range(per_patient))
    labels = tuple("opacity" if int(p[1:], 16) - offset < positives else "normal" for p in patients)
    targets = np.array([[1.0 if lab == "opacity" else 0.0] for lab in labels], np.float32)
    n = len(patients)
    return Split(np.arange(offset, offset + n, dtype=np.int64), targets, patients, labels,
                 tuple(f"S{offset + i:04x}" for i in range(n)))


class _FakeModel:
    """Scores a sample by its image row (no TensorFlow); remembers which rows it trained on."""

    def __init__(self, trained_on: np.ndarray) -> None:
        self.trained_on = trained_on

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.trained_on.tolist()))


def _fake_predict(model: _FakeModel, split: Split) -> np.ndarray:
    return (np.sin(split.indices.astype(np.float64) + len(model.trained_on)) * 0.5 + 0.5)[:, None]


def test_members_train_on_the_other_folds_and_validate_on_their_own(tmp_path):
    train, val = _split(), _split(n_patients=4, positives=2, offset=100)
    folds = assign_folds(train.patients, train.labels, k=3, seed=0)
    seen = []

    def fit(i, inner, held, member_dir):
        seen.append((i, set(inner.indices.tolist()), set(held.indices.tolist())))
        return Fitted(_FakeModel(inner.indices), 3, {"epoch": 2}, "none")

    members = train_members(train, val, folds, fit=fit, predict=_fake_predict, member_root=tmp_path,
                            problem="binary")
    everything = set(train.indices.tolist())
    held_out = [held for _, _, held in seen]
    assert [i for i, _, _ in seen] == [0, 1, 2]
    for i, inner, held in seen:
        assert held == set(train.indices[folds == i].tolist()) and not inner & held
        assert inner | held == everything and not (inner | held) & set(val.indices.tolist())
    assert set().union(*held_out) == everything and sum(map(len, held_out)) == len(everything)
    oof = oof_probs(members, folds)
    for m in members:  # each sample's OOF prediction is its fold member's
        np.testing.assert_array_equal(oof[folds == m.index], m.fold_probs)
    section = summary(members, train, folds, val=val, ensemble_val_probs=_fake_predict(
        _FakeModel(np.arange(5)), val), problem="binary")
    assert section["folds"] == 3 and section["oof_samples"] == len(train)
    assert section["oof_auroc"] == pytest.approx(auroc(train.targets, oof), abs=1e-6)
    assert section["member_val"] == [m.record["val_auroc"] for m in members]
    assert [r["fold_patients"] for r in section["members"]] == [3, 3, 3]


def test_a_run_killed_between_members_does_not_refit_the_finished_ones(tmp_path):
    train, val = _split(), _split(n_patients=4, positives=2, offset=100)
    folds = assign_folds(train.patients, train.labels, k=3, seed=0)
    fitted = []

    def fit(i, inner, held, member_dir):
        if i == 2 and not fitted.count("resumed"):
            raise KeyboardInterrupt  # the process dies during member 2
        fitted.append(i)
        return Fitted(_FakeModel(inner.indices), 1, {}, "none")

    with pytest.raises(KeyboardInterrupt):
        train_members(train, val, folds, fit=fit, predict=_fake_predict, member_root=tmp_path,
                      problem="binary")
    assert fitted == [0, 1] and (tmp_path / "member_1" / crossval.MEMBER_RECORD).is_file()
    first = json.loads((tmp_path / "member_0" / crossval.MEMBER_MODEL).read_text())
    fitted.append("resumed")
    members = train_members(train, val, folds, fit=fit, predict=_fake_predict, member_root=tmp_path,
                            problem="binary")
    assert fitted == [0, 1, "resumed", 2]  # only the unfinished member is fitted again
    assert json.loads(members[0].model_path.read_text()) == first
    assert [m.index for m in members] == [0, 1, 2]


def test_a_member_without_its_record_is_not_committed(tmp_path):
    """The record is written last: model and predictions without it mean 'not finished'."""
    (tmp_path / "member_0").mkdir()
    (tmp_path / "member_0" / crossval.MEMBER_MODEL).write_text("partial")
    assert crossval.read_member(tmp_path / "member_0", 0) is None


def test_oof_scores_and_file(tmp_path):
    from sklearn.metrics import roc_auc_score

    from pipeline.dataset.tables import read_table

    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    p = np.array([[0.2], [0.7], [0.3], [0.4]])
    assert auroc(y, p) == pytest.approx(roc_auc_score(y[:, 0], p[:, 0])) == pytest.approx(0.75)
    bce = -np.mean(np.log([0.8, 0.7, 0.3, 0.6]))
    assert cross_entropy(y, p, problem="binary") == pytest.approx(bce)
    assert np.isnan(auroc(np.zeros((3, 1)), np.ones((3, 1))))  # one class only: undefined
    multi = np.eye(3)[[0, 1, 2, 0]]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    assert auroc(multi, probs) == pytest.approx(1.0)
    assert cross_entropy(multi, probs, problem="multiclass") == pytest.approx(
        -np.mean(np.log([0.8, 0.6, 0.7, 0.5])))
    write_oof(tmp_path / "oof.csv", sample_ids=["S1", "S2", "S3", "S4"], patients=["P1", "P1", "P2", "P3"],
              labels=["normal", "opacity", "opacity", "normal"], folds=np.array([0, 0, 1, 1]),
              probs=p + 1e-9, label_names=("normal", "opacity"))
    rows = read_table(tmp_path / "oof.csv")
    assert list(rows[0]) == ["sample_id", "patient", "label", "fold", "p_normal", "p_opacity"]
    np.testing.assert_array_equal([float(r["p_opacity"]) for r in rows], (p + 1e-9)[:, 0])  # exact


def test_auto_folds_ensemble_small_training_splits_only():
    small = _split(n_patients=12, positives=4)
    assert crossval.resolve_folds("auto", small)[0] == crossval.AUTO_FOLDS == 3
    assert "12 training patients" in crossval.resolve_folds("auto", small)[1]
    large = _split(n_patients=crossval.AUTO_MAX_PATIENTS, positives=300, per_patient=1)
    k, reason = crossval.resolve_folds("auto", large)
    assert k == 1 and "one model" in reason
    rare = _split(n_patients=12, positives=2)  # 2 positive patients cannot fill 3 folds
    k, reason = crossval.resolve_folds("auto", rare)
    assert k == 1 and "rarest class has 2" in reason
    assert crossval.resolve_folds(5, rare) == (5, "train.folds = 5")  # explicit: as given (checked later)
