"""Early stopping follows the checkpoint's rule and resumes its count after a kill."""

from __future__ import annotations

import pytest

from pipeline.train.selection import EpochScore
from pipeline.train.stopping import early_stopping
from tests.train.test_selection import SATURATED


class _Model:
    stop_training = False


def _run(callback, scores) -> int | None:
    """Feed epochs until the callback stops training; return the last epoch run (1-based)."""
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    for s in scores:
        callback.on_epoch_begin(s.epoch - 1)
        callback.on_epoch_end(s.epoch - 1, {"val_auroc": s.auroc, "val_loss": s.loss})
        if model.stop_training:
            return s.epoch
    return None


@pytest.mark.parametrize(("rule", "stopped"), [("auroc", 4), ("auroc_then_loss", 8), ("loss", 8)])
def test_patience_counts_epochs_without_improvement_under_the_rule(tmp_path, rule, stopped):
    """A saturated AUROC stops 'auroc' two epochs after epoch 2; the falling loss keeps the
    other rules going until two epochs after epoch 6."""
    assert _run(early_stopping(rule=rule, patience=2, state_file=tmp_path / "es.json"), SATURATED) == stopped


def test_a_resumed_run_keeps_counting(tmp_path):
    state = tmp_path / "es.json"
    assert _run(early_stopping(rule="auroc", patience=3, state_file=state), SATURATED[:3]) is None
    # killed after epoch 3; epoch 3 is repeated on resume (its backup was never written)
    assert _run(early_stopping(rule="auroc", patience=3, state_file=state), SATURATED[2:]) == 5


def test_epochs_without_scores_count_too_and_bad_patience_is_refused(tmp_path):
    nan = [EpochScore(e, float("nan"), 1.0) for e in (4, 5, 6)]  # a phase starting at epoch 4
    assert _run(early_stopping(rule="auroc", patience=2, state_file=tmp_path / "es.json"), nan) == 5
    with pytest.raises(ValueError, match="patience must be >= 1"):
        early_stopping(rule="auroc", patience=0, state_file=tmp_path / "x.json")
