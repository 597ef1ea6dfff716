"""``train.folds`` end to end on the tiny dataset: what each member sees, the saved ensemble, the
card's out-of-fold AUROC against the recorded predictions, DVCLive, resume, bad values. (folds=1,
the default, is what tests/train/test_trainer.py trains.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ParamsError, TaskParams
from pipeline.dataset.store import open_array
from pipeline.dataset.tables import read_table
from pipeline.models import ensemble_members
from pipeline.train.card import load_model, read_card
from pipeline.train.oof import OOF_FILE
from tests.train.test_trainer import make_task, run_train

FOLDS = {"folds": 2, "epochs": 1}


def _spy_datasets(monkeypatch) -> list[tuple[bool, np.ndarray, int]]:
    """Record ``(training, indices, seed)`` of every dataset the trainer builds."""
    import pipeline.dataset.tfdata as tfdata

    calls = []
    real = tfdata.make_dataset

    def spy(images, targets, indices, **kwargs):
        calls.append((kwargs["training"], np.array(indices), kwargs["seed"]))
        return real(images, targets, indices, **kwargs)

    monkeypatch.setattr(tfdata, "make_dataset", spy)
    return calls


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, tiny_data):
    """A k=2 run killed when member 1 starts, then run again to the end (spied on throughout)."""
    import pipeline.train.trainer as trainer

    tmp = tmp_path_factory.mktemp("folds")
    real, fitted = trainer._fit, []

    def killed_at_member_1(run, train_split, val_split, **kwargs):
        if kwargs.get("live_prefix") == "member_1" and "killed" not in fitted:
            fitted.append("killed")
            raise KeyboardInterrupt  # the process dies between the members
        fitted.append(kwargs.get("live_prefix"))
        return real(run, train_split, val_split, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        calls = _spy_datasets(mp)
        mp.setattr(trainer, "_fit", killed_at_member_1)
        with pytest.raises(KeyboardInterrupt):
            run_train(tmp, tiny_data, **FOLDS)
        [member_0] = (tmp / "backup").glob("*/member_0/member.keras")
        first = load_model(member_0).get_weights()
        result = run_train(tmp, tiny_data, **FOLDS)
    return tmp, result, calls, {"fitted": fitted, "member_0_weights": first}


def _rows(data: Path, split: str) -> list[dict[str, str]]:
    return [r for r in read_table(data / "manifest.csv") if r["split"] == split]


def test_each_member_trains_on_the_other_folds_and_never_on_val_or_test(cv_run, tiny_data):
    tmp, _, calls, _ = cv_run
    oof = read_table(tmp / "model" / OOF_FILE)
    train_rows = _rows(tiny_data, "train")
    assert [r["sample_id"] for r in oof] == [r["sample_id"] for r in train_rows]  # each once, in order
    fold_of = {int(t["index"]): int(r["fold"]) for t, r in zip(train_rows, oof, strict=True)}
    patients_of = {}
    for r in oof:
        patients_of.setdefault(r["patient"], set()).add(r["fold"])
    assert all(len(folds) == 1 for folds in patients_of.values())  # patient-grouped
    training = [(idx, seed) for is_training, idx, seed in calls if is_training]
    assert len(training) == 2  # one training set per member, nothing else trains
    for member, (indices, seed) in enumerate(training):
        assert seed == 3 + member  # member i: seed + i
        assert set(indices.tolist()) == {i for i, f in fold_of.items() if f != member}
    validation = [set(idx.tolist()) for is_training, idx, _ in calls if not is_training]
    for member in (0, 1):  # its held-out fold is what it is validated on
        assert {i for i, f in fold_of.items() if f == member} in validation


def test_card_dvclive_and_oof_file_agree(cv_run, tiny_data):
    from sklearn.metrics import roc_auc_score

    tmp, result, _, _ = cv_run
    card = read_card(tmp / "model")
    cv = card["cross_validation"]
    assert cv["folds"] == 2 and cv["oof_file"] == OOF_FILE and len(cv["member_val"]) == 2
    assert [m["validation_fold"] for m in cv["members"]] == [0, 1]
    train_patients = {r["patient"] for r in _rows(tiny_data, "train")}
    assert sum(m["fold_patients"] for m in cv["members"]) == len(train_patients)
    assert card["epochs_run"] == sum(m["epochs_run"] for m in cv["members"]) == result.epochs_run == 2
    assert card["val_metrics"] == result.val_metrics and card["checkpoint"]["epoch"] is None
    oof = read_table(tmp / "model" / OOF_FILE)
    y = [r["label"] == "opacity" for r in oof]
    p = [float(r["p_opacity"]) for r in oof]
    assert cv["oof_auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    live = json.loads((tmp / "live" / "metrics.json").read_text())
    assert live["cross_validation"]["oof_auroc"] == pytest.approx(cv["oof_auroc"])
    assert live["cross_validation"]["ensemble_val_auroc"] == pytest.approx(cv["ensemble_val_auroc"])
    assert {"member_0", "member_1"} <= set(live) and "auroc" in live["member_1"]["eval"]
    assert (tmp / "live" / "plots" / "metrics" / "member_1" / "eval" / "auroc.tsv").is_file()
    assert sorted(p.name for p in (tmp / "model").iterdir()) == ["model.keras", "model_card.json", OOF_FILE]
    assert not any((tmp / "backup").iterdir())  # finished: no resumable state left


def test_saved_model_is_the_mean_of_the_members_that_made_the_oof_predictions(cv_run, tiny_data):
    tmp, _, _, _ = cv_run
    model = load_model(tmp / "model")  # safe mode
    members = ensemble_members(model)
    assert [m.name for m in members] == ["member_0", "member_1"]
    oof = read_table(tmp / "model" / OOF_FILE)
    rows = {r["sample_id"]: int(r["index"]) for r in _rows(tiny_data, "train")}
    images = open_array(tiny_data / "images.npy")
    x = np.stack([images[rows[r["sample_id"]]] for r in oof]).astype(np.float32) / 255.0
    outs = [np.asarray(m.predict_on_batch(x))[:, 0] for m in members]
    np.testing.assert_allclose(np.asarray(model.predict_on_batch(x))[:, 0], np.mean(outs, axis=0),
                               rtol=1e-6, atol=1e-7)
    for r, a, b in zip(oof, *outs, strict=True):  # each row was predicted by its fold's member
        assert float(r["p_opacity"]) == pytest.approx(a if r["fold"] == "0" else b, abs=1e-5)


def test_a_run_killed_between_members_resumes_without_retraining_the_first(cv_run):
    tmp, _, _, resume = cv_run
    assert resume["fitted"] == ["member_0", "killed", "member_1"]  # member 0 was not fitted again
    kept = ensemble_members(load_model(tmp / "model"))[0].get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(resume["member_0_weights"], kept, strict=True))


def test_bad_fold_counts_name_the_key(tmp_path, tiny_data):
    with pytest.raises(ParamsError) as info:  # 4 opacity patients in the tiny train split
        run_train(tmp_path, tiny_data, folds=5)
    assert str(info.value).startswith("tasks.tiny.train.folds must be at most 4, the number of patients "
                                      "of the rarest class ('opacity')")
    assert str(info.value).endswith("Received: 5") and not (tmp_path / "model").exists()
    from pipeline.config import Params

    doc = make_task().model_dump(mode="json")
    doc.pop("name")
    doc["train"]["folds"] = 0
    params = Params.model_validate({"base": {"salt": "s"}, "tasks": {"tiny": doc}})
    with pytest.raises(ParamsError, match=r"tasks\.tiny\.train\.folds must be 'auto' or an integer >= 1 "
                                          r"\(1 = one model\)\. Received: 0$"):
        params.task("tiny")
    assert TaskParams.model_fields["train"].default.folds == "auto"  # 3 below 1000 training patients
