"""The trainer on a tiny ingested dataset: outputs, model card, freezing, precision, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ParamsError, TaskParams
from pipeline.ingest import run_ingest
from pipeline.train.card import load_model, read_card
from pipeline.train.trainer import train
from tests.builders import make_2d_folder

FAST = {"backbone": "resnet18", "width": 8, "weights": None, "epochs": 2, "batch_size": 8,
        "early_stopping_patience": 0, "lr_head": 3e-3, "folds": 1}  # one model unless a test asks


def make_task(**train_kw) -> TaskParams:
    return TaskParams.model_validate({
        "name": "tiny", "kind": "2d", "labels": ["normal", "opacity"], "data": {"source": "x"},
        "ingest": {"image_size": [32, 32], "window": "percentile", "max_quarantine_fraction": 0.5},
        "train": {**FAST, **train_kw}})


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    folder = make_2d_folder(tmp_path_factory.mktemp("tiny_src"), n_patients=16, broken=False)
    out = tmp_path_factory.mktemp("tiny_interim")
    run_ingest(make_task(), source=folder, out_dir=out, seed=0, salt="s", workers=1)
    return out


def run_train(tmp_path: Path, data: Path, **train_kw):
    return train(make_task(**train_kw), data_dir=data, model_dir=tmp_path / "model",
                 live_dir=tmp_path / "live", backup_root=tmp_path / "backup", seed=3)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_data):
    tmp = tmp_path_factory.mktemp("trained")
    return tmp, run_train(tmp, tiny_data)


def test_outputs_model_card_and_dvclive(trained, tiny_data):
    tmp, result = trained
    card = read_card(tmp / "model")
    assert card["labels"] == ["normal", "opacity"] and card["problem"] == "binary"
    assert card["backbone"] == "resnet18" and card["input_shape"] == [32, 32, 1]
    assert len(card["training_data_sha256"]) == 64 and card["epochs_run"] == 2
    assert set(card["samples"]) == {"train", "val", "test"} and card["precision"] == "float32"
    assert 0.0 <= card["val_metrics"]["auroc"] <= 1.0 and card["val_metrics"] == result.val_metrics
    assert card["params"]["width"] == 8
    assert card["params"]["folds"] == 1 and "cross_validation" not in card  # one model, as before
    assert sorted(p.name for p in (tmp / "model").iterdir()) == ["model.keras", "model_card.json"]
    live = json.loads((tmp / "live" / "metrics.json").read_text())
    assert {"auroc", "loss"} <= set(live["eval"]) and live["step"] == 1  # last epoch index
    assert not any(key.startswith("member_") or key == "cross_validation" for key in live)
    rows = (tmp / "live" / "plots" / "metrics" / "eval" / "auroc.tsv").read_text().splitlines()
    assert len(rows) == 3  # header + one row per epoch
    kept = card["checkpoint"]  # which epoch was kept, and why, in the card and the DVCLive summary
    assert kept["rule"] == "auroc_then_loss" and kept["epoch"] in (1, 2)
    assert f"epoch {kept['epoch']}" in kept["reason"]
    assert live["checkpoint"] == {"epoch": kept["epoch"], "val_auroc": pytest.approx(kept["val_auroc"]),
                                  "val_loss": pytest.approx(kept["val_loss"])}
    assert card["val_metrics"]["auroc"] == pytest.approx(kept["val_auroc"], abs=1e-4)  # same model
    assert card["weight_averaging"] == "none"
    assert card["class_balance"]["param"] == card["class_balance"]["resolved"] == "none"
    assert not (tmp / "backup").exists() or not any((tmp / "backup").iterdir())


def test_model_loads_in_safe_mode_and_predicts_probabilities(trained):
    tmp, _ = trained
    from pipeline.models import ensemble_members

    model = load_model(tmp / "model")
    assert ensemble_members(model) is None  # folds=1: one flat model
    x = np.random.default_rng(0).random((3, 32, 32, 1), dtype=np.float32)
    p = np.asarray(model.predict(x, verbose=0))
    assert p.shape == (3, 1) and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(ValueError, match="only Keras v3"):
        load_model(tmp / "model" / "model_card.json")


@pytest.mark.graph  # many steps: tracing once is cheaper than eager steps; and graphs get tested here
def test_learns_the_easy_signal(tmp_path, tiny_data):
    # raw weights: ~20 steps are too few for an EMA of momentum 0.99 (a ~100-step horizon)
    result = run_train(tmp_path, tiny_data, epochs=8, width=16, lr_head=3e-3, ema=False)
    assert result.val_metrics["auroc"] >= 0.9


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_outputs(tmp_path, tiny_data, policy):
    """Both mixed policies train end to end on CPU: ``mixed_float16`` (the GPU path, with dynamic
    loss scaling; TF's CPU kernels run float16, slowly) and ``mixed_bfloat16``."""
    import keras

    try:
        result = run_train(tmp_path, tiny_data, precision=policy, epochs=1)
        assert result.precision == policy
        model = load_model(tmp_path / "model")
        assert model.get_layer("conv1_conv").compute_dtype == policy.removeprefix("mixed_")
        assert model.output.dtype == "float32"
        assert np.isfinite(result.val_metrics["loss"])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_deterministic_runs_give_identical_weights(tmp_path, tiny_data):
    """Two runs in two fresh processes. (Op determinism is process-wide and cannot be turned off:
    in this process it would slow every later test of this pytest worker.)"""
    import subprocess

    from tests.train.test_distribute import _cmd, _env

    # side by side: separate processes share nothing, and one process per core halves the wait
    procs = [subprocess.Popen(_cmd(tiny_data, tmp_path / name, {"deterministic": True, "epochs": 1}),
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2]) for name in ("a", "b")]
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0 and "RESULT" in out, err[-2000:]
    wa = load_model(tmp_path / "a" / "model" / "model.keras").get_weights()
    wb = load_model(tmp_path / "b" / "model" / "model.keras").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


def test_pretrained_two_phase_freezes_then_fine_tunes(tmp_path, tiny_data):
    """With a weights file: phase 1 trains the head only (backbone, BN included, unchanged)."""
    from pipeline.models.resnet2d import ResNet18

    weights = tmp_path / "pre.weights.h5"
    pre = ResNet18(input_shape=(32, 32, 1), base_width=8)
    pre.save_weights(weights)
    reference = pre.get_layer("conv1_conv").get_weights()[0]
    bn_ref = pre.get_layer("conv1_bn").get_weights()
    # phase 1 only: unfreeze 0 blocks afterwards keeps the backbone frozen throughout
    run_train(tmp_path / "p1", tiny_data, weights=str(weights), freeze_epochs=1, epochs=2, unfreeze=0)
    frozen = load_model(tmp_path / "p1" / "model")
    np.testing.assert_array_equal(frozen.get_layer("conv1_conv").get_weights()[0], reference)
    for got, ref in zip(frozen.get_layer("conv1_bn").get_weights(), bn_ref, strict=True):
        np.testing.assert_array_equal(got, ref)  # moving statistics untouched (inference mode)
    run_train(tmp_path / "p2", tiny_data, weights=str(weights), freeze_epochs=1, epochs=2, unfreeze="all")
    tuned = load_model(tmp_path / "p2" / "model")
    assert not np.array_equal(tuned.get_layer("conv1_conv").get_weights()[0], reference)
    for got, ref in zip(tuned.get_layer("conv1_bn").get_weights(), bn_ref, strict=True):
        np.testing.assert_array_equal(got, ref)  # BatchNormalization stays frozen when fine-tuning


def test_ema_through_both_phases_keeps_card_and_model_consistent(tmp_path, tiny_data):
    """EMA with the two-phase fine-tuning (a new optimizer, so a new average, per phase) and
    ``class_balance: auto``: the card's validation metrics are those of the kept epoch."""
    from pipeline.models.resnet2d import ResNet18
    from pipeline.train.objective import AUTO_BALANCE_RATIO

    weights = tmp_path / "pre.weights.h5"
    ResNet18(input_shape=(32, 32, 1), base_width=8).save_weights(weights)
    run_train(tmp_path, tiny_data, weights=str(weights), freeze_epochs=1, epochs=2, ema=True,
              ema_momentum=0.9, class_balance="auto")
    card = read_card(tmp_path / "model")
    assert card["weight_averaging"].startswith("EMA") and "BatchNorm" in card["weight_averaging"]
    kept = card["checkpoint"]
    assert kept["epoch"] in (1, 2)
    assert card["val_metrics"]["auroc"] == pytest.approx(kept["val_auroc"], abs=1e-4)
    assert card["val_metrics"]["loss"] == pytest.approx(kept["val_loss"], rel=1e-4)
    balance = card["class_balance"]
    assert balance["param"] == "auto" and balance["resolved"] == (
        "class_weights" if balance["train_majority_minority_ratio"] > AUTO_BALANCE_RATIO else "none")
    live = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert live["checkpoint"]["epoch"] == kept["epoch"]


@pytest.mark.parametrize("change,message", [
    ({"backbone": "resnet5"}, "tasks.tiny.train.backbone must be one of"),
    ({"augment": [{"transform": "Flipp"}]}, "tasks.tiny.train.augment[0].transform must be one of"),
])
def test_bad_train_params_name_the_key(tmp_path, tiny_data, change, message):
    with pytest.raises(ParamsError) as info:
        run_train(tmp_path, tiny_data, **change)
    assert message in str(info.value)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_augment_preset_reaches_training_and_an_explicit_list_wins(kind):
    from pipeline.augment import STRONG_2D, STRONG_3D, validate_spec
    from pipeline.config import TaskParams
    from pipeline.train.inputs import augment_spec

    shape = {"image_size": [32, 32]} if kind == "2d" else {"volume_shape": [8, 16, 16]}
    doc = {"name": "t", "kind": kind, "labels": ["a", "b"], "data": {"source": "x"}, "ingest": shape,
           "train": {"weights": None, "augment_preset": "strong"}}
    strong = STRONG_2D if kind == "2d" else STRONG_3D
    assert augment_spec(TaskParams.model_validate(doc)) == validate_spec(strong, kind=kind, key="k")
    doc["train"] = {"weights": None, "augment": [{"transform": "GaussNoise", "p": 1.0}]}
    assert [t["transform"] for t in augment_spec(TaskParams.model_validate(doc))] == ["GaussNoise"]
