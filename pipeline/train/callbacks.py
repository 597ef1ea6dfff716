"""Training callbacks of one fine-tuning phase: EMA validation, best-model checkpoint, backup and
restore, early stopping, DVCLive logging.

``BackupAndRestore`` keeps its state in ``backup_dir``, which must NOT be a DVC output (DVC
deletes outputs before re-running a stage); a run killed mid-epoch resumes from the last
completed epoch when the same command runs again.

Order matters at the end of an epoch (callbacks run in list order): the checkpoint is written
before the backup, so a process killed between the two repeats that epoch on resume (the
repeat only replaces the checkpoint if it scores better) instead of skipping a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.train.checkpoint import BestRecord, best_checkpoint, read_best
from pipeline.train.ema import ema_validation
from pipeline.train.stopping import early_stopping

__all__ = ["BestRecord", "make_callbacks", "read_best"]


def make_callbacks(*, checkpoint_dir: Path, backup_dir: Path, live: Any | None, patience: int,
                   rule: str, ema: bool, phase: int, chief: bool,
                   live_prefix: str | None = None) -> list[Any]:
    """Callbacks for one ``fit`` call (one fine-tuning phase).

    Args:
        checkpoint_dir: Resumable state folder holding the best model and its score record
            (a private one on non-chief workers: every worker saves, only the chief's is kept).
        backup_dir: BackupAndRestore directory of this phase.
        live: A ``dvclive.Live`` (chief only) or None.
        patience: Early-stopping patience in epochs (0 disables early stopping).
        rule: Model-selection rule, ``train.checkpoint`` (checkpoint and early stopping).
        ema: Validate on the optimizer's EMA weights (the optimizer must have ``use_ema``).
        phase: 1-based fine-tuning phase (early stopping counts per phase).
        chief: Whether this process writes the outputs.
        live_prefix: Folder for this model's DVCLive metrics (``member_0`` logs
            ``member_0/eval/auroc``; k-fold members), or None for DVCLive's own names.
    """
    import keras

    callbacks: list[Any] = [ema_validation()] if ema else []
    callbacks += [
        keras.callbacks.TerminateOnNaN(),
        best_checkpoint(checkpoint_dir, rule=rule),
        keras.callbacks.BackupAndRestore(str(backup_dir)),
    ]
    if patience > 0:
        callbacks.append(early_stopping(rule=rule, patience=patience,
                                        state_file=checkpoint_dir / f"early_stopping_phase{phase}.json"))
    if live is not None and chief:
        callbacks.append(_live_callback(live, live_prefix))
    return callbacks


def _live_callback(live: Any, prefix: str | None) -> Any:
    """DVCLive's Keras callback, its metric names under ``prefix/`` when one is given."""
    from dvclive.keras import DVCLiveCallback
    from dvclive.utils import standardize_metric_name

    if prefix is None:
        return DVCLiveCallback(live=live)

    class PrefixedLiveCallback(DVCLiveCallback):
        """Logs ``<prefix>/train/<metric>`` and ``<prefix>/eval/<metric>``; one step per epoch."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for metric, value in (logs or {}).items():
                name = standardize_metric_name(metric, "dvclive.keras")
                self.live.log_metric(f"{prefix}/{name}", value)
            self.live.next_step()

    return PrefixedLiveCallback(live=live)
