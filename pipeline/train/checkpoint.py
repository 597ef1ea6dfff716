"""Keep the best model of a run under a selection rule, resumably.

One callback (replacing ``ModelCheckpoint`` plus a score recorder) saves the model whenever an
epoch beats the recorded best under :mod:`pipeline.train.selection`'s rule, with the EMA
weights when the optimizer averages (what validation scored).

On disk, in the checkpoint folder (resumable state, not a DVC output):

- ``best-eNNN.keras``: the best model so far, written to a temp file then renamed;
- ``best_score.json``: ``{"epoch", "val_auroc", "val_loss", "rule", "model"}``, written
  atomically *after* the model it names. The record is the commit point: a process killed
  between the two leaves the previous record pointing at the previous, complete model.

Every phase's callback starts from the record on disk, so a resumed run and the second
fine-tuning phase only save an epoch that beats the best so far.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.train.ema import ema_weights_loaded
from pipeline.train.selection import EpochScore, check_rule, improves, reason
from pipeline.utils.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

BEST_SCORE_FILE = "best_score.json"
MODEL_PATTERN = "best-e*.keras"


@dataclass(frozen=True)
class BestRecord:
    """The kept epoch: its validation scores, the rule that kept it and its model file."""

    score: EpochScore
    rule: str
    model_path: Path

    @property
    def reason(self) -> str:
        """Why this epoch was kept, in one sentence."""
        return reason(self.score, rule=self.rule)


def read_best(checkpoint_dir: Path) -> BestRecord | None:
    """The best epoch recorded in ``checkpoint_dir`` (survives a killed process), or None."""
    path = checkpoint_dir / BEST_SCORE_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    score = EpochScore(epoch=int(raw["epoch"]), auroc=float(raw["val_auroc"]),
                       loss=float(raw["val_loss"]))
    return BestRecord(score, raw["rule"], checkpoint_dir / raw["model"])


def save_best(model: Any, checkpoint_dir: Path, score: EpochScore, *, rule: str) -> BestRecord:
    """Save ``model`` (EMA weights if it averages) as the best, then record it; drop older ones.
    A training wrapper (``train.mask_guidance``) saves its ``classifier`` alone."""
    path = checkpoint_dir / f"best-e{score.epoch:03d}.keras"
    with ema_weights_loaded(model), atomic_path(path, suffix=".keras") as tmp:
        getattr(model, "classifier", model).save(tmp)
    write_json(checkpoint_dir / BEST_SCORE_FILE, {
        "epoch": score.epoch, "val_auroc": score.auroc, "val_loss": score.loss, "rule": rule,
        "model": path.name})
    for old in checkpoint_dir.glob(MODEL_PATTERN):
        if old != path:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
    return BestRecord(score, rule, path)


def best_checkpoint(checkpoint_dir: Path, *, rule: str) -> Any:
    """Callback saving the best model under ``rule`` into ``checkpoint_dir``.

    Args:
        checkpoint_dir: Resumable state folder; on non-chief workers a private one (every
            worker saves, only the chief's model is kept).
        rule: ``auroc_then_loss``, ``auroc`` or ``loss`` (see :mod:`pipeline.train.selection`).

    Raises:
        ValueError: Unknown rule.
    """
    import keras

    check_rule(rule)

    class BestCheckpoint(keras.callbacks.Callback):
        """Saves an epoch's model when it beats the recorded best (``best`` holds that record)."""

        def __init__(self) -> None:
            super().__init__()
            self.best: BestRecord | None = None

        def on_train_begin(self, logs: dict | None = None) -> None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            self.best = read_best(checkpoint_dir)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            score = EpochScore.from_logs(epoch, logs)
            if score is None:
                log.warning("epoch %d has no finite val_auroc/val_loss; not a checkpoint candidate",
                            epoch + 1)
                return
            if improves(score, self.best.score if self.best else None, rule=rule):
                self.best = save_best(self.model, checkpoint_dir, score, rule=rule)
                log.info("checkpoint: %s", self.best.reason)

    return BestCheckpoint()
