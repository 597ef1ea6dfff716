"""Training callbacks: DVCLive logging, best-model checkpoint, early stopping, backup/restore.

``BackupAndRestore`` keeps its state in ``backup_dir``, which must NOT be a DVC output (DVC
deletes outputs before re-running a stage); a run killed mid-epoch resumes from the last
completed epoch when the same command runs again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MONITOR = "val_auroc"


def make_callbacks(*, best_path: Path, backup_dir: Path, live: Any | None, patience: int,
                   best_so_far: float | None, chief: bool) -> list[Any]:
    """Callbacks for one ``fit`` call (one fine-tuning phase).

    Args:
        best_path: Where the best model (by ``val_auroc``) is saved; on non-chief workers a
            private temp path (every worker must save, only the chief's file is kept).
        backup_dir: BackupAndRestore directory of this phase.
        live: A ``dvclive.Live`` (chief only) or None.
        patience: Early-stopping patience in epochs (0 disables early stopping).
        best_so_far: Best ``val_auroc`` of an earlier phase, so this phase only saves better.
        chief: Whether this process writes the outputs.
    """
    import keras

    callbacks: list[Any] = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor=MONITOR, mode="max",
                                        save_best_only=True, initial_value_threshold=best_so_far),
    ]
    if patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience))
    if live is not None and chief:
        from dvclive.keras import DVCLiveCallback

        callbacks.append(DVCLiveCallback(live=live))
    return callbacks
