"""What a training run records besides the model: the model card's contents, the kept epoch,
DVCLive, and the key of the resumable state.

- :func:`model_card`: the ``model_card.json`` document of a trained model (task, inputs,
  preprocessing, data fingerprint, validation metrics, training parameters, versions), written
  by :func:`pipeline.train.card.write_card`.
- :func:`checkpoint_card`: the card's ``checkpoint`` section: the epoch kept under
  ``train.checkpoint``'s rule and why.
- :func:`open_live` and :func:`log_choice`: the DVCLive logger (``dvclive/<task>/``) and the kept
  epoch's scores in its summary.
- :func:`state_key`: the folder of the resumable state, a hash of params, data and seed, so a
  changed configuration never resumes from a stale backup.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline.config import TaskParams
from pipeline.train.callbacks import BestRecord
from pipeline.train.crossval import Split


def open_live(live_dir: Path, *, resume: bool) -> Any:
    """A DVCLive logger writing to ``live_dir`` (resuming its history if ``resume``)."""
    from dvclive import Live

    return Live(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None)


def log_choice(live: Any, best: BestRecord | None, *, prefix: str | None = None) -> None:
    """The kept epoch and its scores in the DVCLive summary (``metrics.json``: ``checkpoint``, or
    ``<prefix>/checkpoint`` for a k-fold member)."""
    if best is None:
        return
    folder = f"{prefix}/checkpoint" if prefix else "checkpoint"
    for name, value in (("epoch", best.score.epoch), ("val_auroc", best.score.auroc),
                        ("val_loss", best.score.loss)):
        live.log_metric(f"{folder}/{name}", value, plot=False)


def checkpoint_card(best: BestRecord | None, rule: str) -> dict[str, Any]:
    """The card's ``checkpoint`` section: the kept epoch and its scores, or why none was kept."""
    if best is None:
        return {"rule": rule, "epoch": None, "reason": "no epoch had a finite val AUROC and loss; "
                "the last weights were kept"}
    return {"rule": best.rule, "epoch": best.score.epoch, "val_auroc": round(best.score.auroc, 6),
            "val_loss": round(best.score.loss, 6), "reason": best.reason,
            "note": "val_loss here is the training loss function (label smoothing, focal); "
                    "val_metrics are recomputed on the saved model with plain cross-entropy"}


def state_key(task: TaskParams, fingerprint: str, seed: int) -> str:
    """16 hex digits of a hash of the task's params, the data fingerprint and the seed."""
    blob = json.dumps({"task": task.model_dump(mode="json"), "data": fingerprint, "seed": seed},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_card(task: TaskParams, info: dict, fingerprint: str, val_metrics: dict[str, float], policy: str,
               replicas: int, global_batch: int, seed: int, splits: dict[str, Split], epochs_run: int,
               checkpoint: dict[str, Any], class_balance: dict[str, Any]) -> dict:
    """The model card of a trained model (``info``: the ingest's ``info.json``); the trainer adds
    the ``folds`` and, for an ensemble, ``cross_validation`` sections."""
    import keras
    import tensorflow as tf

    from pipeline.models import BACKBONES

    tp = task.train
    spec = BACKBONES.get(tp.backbone)
    return {
        "task": task.name,
        "kind": task.kind,
        "problem": task.problem,
        "labels": list(task.labels),
        "backbone": tp.backbone,
        "weights": tp.weights if tp.weights in (None, "imagenet") else "file",
        "input_shape": info["item_shape"],
        "input": "float32 in [0, 1] = stored uint8 / 255 (windowed intensity, white = dense)",
        "model_preprocessing": getattr(spec, "preprocessing", "none (3D model takes [0, 1] input)"),
        "ingest_preprocessing": info.get("preprocessing", {}),
        "training_data_sha256": fingerprint,
        "samples": {k: int(len(v.indices)) for k, v in splits.items()},
        "val_metrics": val_metrics,
        "checkpoint": checkpoint,
        "weight_averaging": (f"EMA of the trainable weights (momentum {tp.ema_momentum}); "
                             "BatchNorm statistics are not averaged" if tp.ema else "none"),
        "class_balance": class_balance,
        "params": tp.model_dump(mode="json"),
        "seed": seed,
        "epochs_run": epochs_run,
        "precision": policy,
        "replicas": replicas,
        "global_batch_size": global_batch,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
