"""The best-model checkpoint driven with made-up epoch logs: rule, resume after a kill, phases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.train import checkpoint as ckpt
from pipeline.train.card import load_model
from pipeline.train.checkpoint import best_checkpoint, read_best
from pipeline.train.selection import EpochScore
from tests.train.test_selection import SATURATED


def _model():
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="out")])
    model.compile(optimizer="adam", loss="mse")
    return model


def _run_epochs(callback, model, scores):
    """What ``fit`` does around the checkpoint; the kernel is set to the epoch number so a saved
    model tells which epoch it is."""
    callback.set_model(model)
    callback.on_train_begin()
    for s in scores:
        model.get_layer("out").kernel.assign(np.full((2, 1), s.epoch, np.float32))
        callback.on_epoch_end(s.epoch - 1, {"val_auroc": s.auroc, "val_loss": s.loss, "loss": 9.0})


def _saved_epoch(record) -> int:
    return int(load_model(record.model_path).get_layer("out").get_weights()[0][0, 0])


@pytest.mark.parametrize(("rule", "epoch"), [("auroc_then_loss", 6), ("auroc", 2), ("loss", 6)])
def test_keeps_the_epoch_of_the_rule(tmp_path, rule, epoch):
    _run_epochs(best_checkpoint(tmp_path, rule=rule), _model(), SATURATED)
    best = read_best(tmp_path)
    assert best.score.epoch == epoch and best.rule == rule and _saved_epoch(best) == epoch
    assert [p.name for p in tmp_path.glob("best-e*.keras")] == [f"best-e{epoch:03d}.keras"]
    assert f"epoch {epoch}" in best.reason


def test_resumes_after_a_kill_and_hands_the_best_to_the_next_phase(tmp_path):
    model = _model()
    _run_epochs(best_checkpoint(tmp_path, rule="auroc_then_loss"), model, SATURATED[:4])
    assert read_best(tmp_path).score.epoch == 4  # then the process dies; a new one resumes
    _run_epochs(best_checkpoint(tmp_path, rule="auroc_then_loss"), _model(), SATURATED[4:7])
    assert read_best(tmp_path).score.epoch == 6 and _saved_epoch(read_best(tmp_path)) == 6
    # phase 2: a fresh callback only saves epochs that beat phase 1's best
    worse = [EpochScore(9, 1.0, 0.3), EpochScore(10, 0.97, 0.1)]
    _run_epochs(best_checkpoint(tmp_path, rule="auroc_then_loss"), _model(), worse)
    assert read_best(tmp_path).score.epoch == 6 and _saved_epoch(read_best(tmp_path)) == 6


def test_a_kill_between_model_and_record_keeps_the_previous_pair(tmp_path, monkeypatch):
    model = _model()
    _run_epochs(best_checkpoint(tmp_path, rule="loss"), model, SATURATED[:2])

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt  # the process dies after writing the epoch-3 model

    monkeypatch.setattr(ckpt, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        _run_epochs(best_checkpoint(tmp_path, rule="loss"), model, SATURATED[2:3])
    best = read_best(tmp_path)
    assert best.score.epoch == 2 and _saved_epoch(best) == 2  # the record still names a whole model
    record = json.loads((tmp_path / ckpt.BEST_SCORE_FILE).read_text())
    assert record == {"epoch": 2, "val_auroc": 1.0, "val_loss": 0.5, "rule": "loss",
                      "model": "best-e002.keras"}


def test_epochs_without_scores_are_skipped(tmp_path):
    cb = best_checkpoint(tmp_path, rule="auroc")
    cb.set_model(_model())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.0})  # no validation
    cb.on_epoch_end(1, {"val_auroc": float("nan"), "val_loss": 1.0})
    assert read_best(tmp_path) is None
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        best_checkpoint(tmp_path, rule="val_auroc")
