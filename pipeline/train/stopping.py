"""Early stopping under the same selection rule as the checkpoint, resumable.

Patience counts the epochs of the current fine-tuning phase since the phase's best epoch under
``train.checkpoint``'s rule (as Keras' ``EarlyStopping`` does per ``fit`` call, where the
monitored value is a single metric): with ``auroc_then_loss`` an epoch that ties the best AUROC
with a lower validation loss is progress, so a saturated AUROC no longer stops training while
the loss still improves.

The phase's best epoch is written atomically to ``state_file`` and read back when the phase
starts, so a killed run that resumes keeps counting where it was. Counting from the best
*epoch number* (not a counter incremented per epoch) makes repeating an epoch after a kill
harmless.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.train.selection import EpochScore, check_rule, improves
from pipeline.utils.atomic import write_json


def _read(state_file: Path) -> EpochScore | None:
    if not state_file.exists():
        return None
    raw = json.loads(state_file.read_text(encoding="utf-8"))
    return EpochScore(epoch=int(raw["epoch"]), auroc=float(raw["val_auroc"]), loss=float(raw["val_loss"]))


def early_stopping(*, rule: str, patience: int, state_file: Path) -> Any:
    """Callback stopping a phase after ``patience`` epochs without a better epoch under ``rule``.

    Args:
        rule: ``auroc_then_loss``, ``auroc`` or ``loss``.
        patience: Epochs without improvement before stopping (>= 1).
        state_file: This phase's resumable record of its best epoch.

    Raises:
        ValueError: Unknown rule or ``patience < 1``.
    """
    import keras

    check_rule(rule)
    if patience < 1:
        raise ValueError(f"patience must be >= 1 (0 disables early stopping: leave the callback "
                         f"out). Received: {patience}")

    class RuleEarlyStopping(keras.callbacks.Callback):
        """Sets ``model.stop_training`` after ``patience`` epochs without a new phase best."""

        def __init__(self) -> None:
            super().__init__()
            self.best: EpochScore | None = None
            self.stopped_epoch: int | None = None
            self._first: int | None = None  # 0-based first epoch this process ran

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.best = _read(state_file)

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if self._first is None:
                self._first = epoch

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            score = EpochScore.from_logs(epoch, logs)
            if improves(score, self.best, rule=rule):
                self.best = score
                write_json(state_file, {"epoch": score.epoch, "val_auroc": score.auroc,
                                        "val_loss": score.loss, "rule": rule})
            reference = self.best.epoch if self.best else (self._first or 0)  # 1-based
            since = epoch + 1 - reference
            if since >= patience:
                self.stopped_epoch = epoch + 1
                self.model.stop_training = True

    return RuleEarlyStopping()
