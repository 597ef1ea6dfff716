"""Training callbacks: DVCLive logging, best-model checkpoint, early stopping, backup/restore.

``BackupAndRestore`` keeps its state in ``backup_dir``, which must NOT be a DVC output (DVC
deletes outputs before re-running a stage); a run killed mid-epoch resumes from the last
completed epoch when the same command runs again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline.utils.atomic import write_json

MONITOR = "val_auroc"
BEST_SCORE_FILE = "best_score.json"


def read_best(state_dir: Path) -> float | None:
    """Best ``val_auroc`` recorded so far in this run's state (survives a killed process)."""
    path = state_dir / BEST_SCORE_FILE
    return json.loads(path.read_text())[MONITOR] if path.exists() else None


def _best_score_recorder(state_dir: Path, best_so_far: float | None) -> Any:
    """Callback recording the best monitored score next to the best model, atomically."""
    import keras

    class BestScoreRecorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = -math.inf if best_so_far is None else best_so_far

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            score = (logs or {}).get(MONITOR)
            if score is not None and score > self.best:
                self.best = float(score)
                write_json(state_dir / BEST_SCORE_FILE, {MONITOR: self.best, "epoch": epoch + 1})

    return BestScoreRecorder()


def make_callbacks(*, best_path: Path, backup_dir: Path, live: Any | None, patience: int,
                   best_so_far: float | None, chief: bool, state_dir: Path) -> list[Any]:
    """Callbacks for one ``fit`` call (one fine-tuning phase).

    Args:
        best_path: Where the best model (by ``val_auroc``) is saved; on non-chief workers a
            private temp path (every worker must save, only the chief's file is kept).
        backup_dir: BackupAndRestore directory of this phase.
        live: A ``dvclive.Live`` (chief only) or None.
        patience: Early-stopping patience in epochs (0 disables early stopping).
        best_so_far: Best ``val_auroc`` of an earlier phase, so this phase only saves better.
        chief: Whether this process writes the outputs.
        state_dir: Resumable state folder (best score record).
    """
    import keras

    callbacks: list[Any] = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor=MONITOR, mode="max",
                                        save_best_only=True, initial_value_threshold=best_so_far),
        _best_score_recorder(state_dir, best_so_far),
    ]
    if patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience))
    if live is not None and chief:
        from dvclive.keras import DVCLiveCallback

        callbacks.append(DVCLiveCallback(live=live))
    return callbacks
