"""The model-selection rule on made-up validation histories (no TensorFlow)."""

from __future__ import annotations

import math

import pytest

from pipeline.train.selection import AUROC_TIE, EpochScore, choose, improves, reason

# AUROC saturates at 1.0 from epoch 2 while the val loss keeps falling until epoch 6.
SATURATED = [EpochScore(epoch, auroc, loss) for epoch, auroc, loss in [
    (1, 0.91, 0.60), (2, 1.0, 0.50), (3, 1.0, 0.41), (4, 1.0, 0.33), (5, 1.0, 0.25),
    (6, 1.0, 0.19), (7, 1.0, 0.22), (8, 0.99, 0.30)]]


@pytest.mark.parametrize(("rule", "epoch"), [("auroc_then_loss", 6), ("auroc", 2), ("loss", 6)])
def test_saturated_auroc_picks_the_epoch_the_loss_prefers(rule, epoch):
    assert choose(SATURATED, rule=rule).epoch == epoch


def test_a_clearly_higher_auroc_beats_a_lower_loss():
    history = [EpochScore(1, 0.95, 0.2), EpochScore(2, 0.97, 0.4), EpochScore(3, 0.96, 0.1)]
    assert choose(history, rule="auroc_then_loss").epoch == 2
    assert choose(history, rule="loss").epoch == 3


def test_ties_are_within_the_tolerance_only():
    best = EpochScore(1, 0.99, 0.5)
    near = EpochScore(2, 0.99 - AUROC_TIE / 2, 0.4)
    far = EpochScore(3, 0.99 - 3 * AUROC_TIE, 0.1)
    assert improves(near, best, rule="auroc_then_loss")  # a tie with a lower loss
    assert not improves(far, best, rule="auroc_then_loss")  # a real AUROC drop
    assert not improves(EpochScore(2, 0.99, 0.5), best, rule="auroc_then_loss")  # equal: keep first
    assert not improves(near, best, rule="auroc")


def test_an_earlier_phase_best_is_the_incumbent():
    """Phase 2 only replaces phase 1's best if it beats it."""
    phase1 = EpochScore(2, 0.98, 0.3)
    phase2 = [EpochScore(3, 0.90, 0.5), EpochScore(4, 0.97, 0.2)]
    assert choose(phase2, rule="auroc_then_loss", incumbent=phase1) is phase1
    assert choose(phase2, rule="loss", incumbent=phase1).epoch == 4


def test_scores_from_keras_logs():
    logs = {"val_auroc": 0.9, "val_loss": 0.3, "loss": 1.0}
    assert EpochScore.from_logs(5, logs) == EpochScore(6, 0.9, 0.3)  # Keras' epoch 5 is "Epoch 6/.."
    assert EpochScore.from_logs(0, {"val_auroc": 0.9}) is None  # no validation loss
    assert EpochScore.from_logs(0, {"val_auroc": math.nan, "val_loss": 0.3}) is None
    assert EpochScore.from_logs(0, None) is None
    assert not improves(None, None, rule="auroc")  # an epoch without scores is never kept


def test_reason_names_the_epoch_and_scores_and_bad_rules_name_the_choices():
    text = reason(EpochScore(6, 1.0, 0.19), rule="auroc_then_loss")
    assert "epoch 6" in text and "1.0000" in text and "0.1900" in text and "ties" in text
    with pytest.raises(ValueError, match=r"checkpoint must be one of \['auroc_then_loss', 'auroc', "
                                         r"'loss'\]. Received: 'f1'"):
        improves(SATURATED[0], None, rule="f1")
