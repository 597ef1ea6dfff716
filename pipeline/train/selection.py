"""Which epoch is "best": the model-selection rule shared by the checkpoint and early stopping.

Rules (``train.checkpoint``):

- ``auroc_then_loss``: the highest validation AUROC; an AUROC within :data:`AUROC_TIE` of the
  incumbent's counts as a tie, and ties go to the lower validation loss. On real data the
  validation AUROC saturates (0.998 while test was 0.953), so "the first epoch that reached the
  best AUROC" is an early, poorly fitted epoch; the loss keeps telling later epochs apart.
- ``auroc``: the first epoch with the highest validation AUROC (Keras ``ModelCheckpoint``).
- ``loss``: the lowest validation loss.

An epoch without a finite AUROC and loss is never best. Pure Python (no TensorFlow), so the rule
is tested on made-up histories.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RULES = ("auroc_then_loss", "auroc", "loss")
#: Validation AUROCs closer than this tie under ``auroc_then_loss``. Keras' AUC is a 200-bin
#: approximation, so differences below ~1e-4 are noise rather than ranking changes.
AUROC_TIE = 1e-4


@dataclass(frozen=True)
class EpochScore:
    """Validation scores of one epoch.

    Attributes:
        epoch: 1-based epoch number (as Keras prints it, ``Epoch 6/15``).
        auroc: ``val_auroc``.
        loss: ``val_loss`` (the training loss function on the validation split).
    """

    epoch: int
    auroc: float
    loss: float

    @classmethod
    def from_logs(cls, epoch: int, logs: Mapping[str, Any] | None) -> EpochScore | None:
        """Score of 0-based Keras ``epoch`` from its logs; None without a finite AUROC and loss."""
        logs = logs or {}
        try:
            auroc, loss = float(logs["val_auroc"]), float(logs["val_loss"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (math.isfinite(auroc) and math.isfinite(loss)):
            return None
        return cls(epoch=epoch + 1, auroc=auroc, loss=loss)


def check_rule(rule: str) -> str:
    """Return ``rule`` if known.

    Raises:
        ValueError: Unknown rule (lists the known ones).
    """
    if rule not in RULES:
        raise ValueError(f"checkpoint must be one of {list(RULES)}. Received: {rule!r}")
    return rule


def improves(candidate: EpochScore | None, incumbent: EpochScore | None, *, rule: str) -> bool:
    """Whether ``candidate`` replaces ``incumbent`` (None: nothing chosen yet) under ``rule``.

    Raises:
        ValueError: Unknown rule.
    """
    check_rule(rule)
    if candidate is None:
        return False
    if incumbent is None:
        return True
    if rule == "loss":
        return candidate.loss < incumbent.loss
    if rule == "auroc":
        return candidate.auroc > incumbent.auroc
    if candidate.auroc > incumbent.auroc + AUROC_TIE:
        return True
    return candidate.auroc >= incumbent.auroc - AUROC_TIE and candidate.loss < incumbent.loss


def choose(history: Iterable[EpochScore | None], *, rule: str,
           incumbent: EpochScore | None = None) -> EpochScore | None:
    """The epoch ``rule`` keeps after ``history`` (in epoch order), as the checkpoint does."""
    for score in history:
        if improves(score, incumbent, rule=rule):
            incumbent = score
    return incumbent


def reason(score: EpochScore, *, rule: str) -> str:
    """One sentence saying why ``score``'s epoch was kept (model card, logs)."""
    check_rule(rule)
    if rule == "loss":
        return f"epoch {score.epoch}: lowest val loss ({score.loss:.4f}; val AUROC {score.auroc:.4f})"
    if rule == "auroc":
        return (f"epoch {score.epoch}: first epoch with the highest val AUROC ({score.auroc:.4f}; "
                f"val loss {score.loss:.4f})")
    return (f"epoch {score.epoch}: highest val AUROC ({score.auroc:.4f}), ties within {AUROC_TIE:g} "
            f"broken by the lower val loss ({score.loss:.4f})")
