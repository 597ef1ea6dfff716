"""Two-phase fine-tuning of a Keras model on an ingested task.

Phase 1 (``freeze_epochs``, only with pretrained ``weights``): the backbone is frozen (its
BatchNormalization layers run in inference mode) and only the head learns, at ``lr_head``.
Phase 2: the top ``unfreeze`` blocks (or ``all``) are unfrozen, BatchNormalization stays frozen,
and the model trains at ``lr_finetune``. Without pretrained weights there is nothing to protect,
so a single phase trains everything at ``lr_head``.

Each phase has a linear warm-up then cosine decay, AdamW with decoupled weight decay (optionally
with an exponential moving average of the weights, ``train.ema``: :mod:`pipeline.train.ema`),
and the best epoch under ``train.checkpoint``'s rule is kept across both phases
(:mod:`pipeline.train.checkpoint`, :mod:`pipeline.train.selection`). Killed runs resume from the
last completed epoch (``BackupAndRestore`` per phase plus a phase-1 completion marker).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.ingest.tables import read_table
from pipeline.train import objective
from pipeline.train.callbacks import BestRecord, make_callbacks, read_best
from pipeline.train.card import MODEL_FILE, data_fingerprint, load_model, write_card
from pipeline.train.distribute import is_chief, make_strategy, scaled_lr
from pipeline.train.precision import apply_precision
from pipeline.train.schedule import warmup_cosine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced (no identifiers)."""

    model_path: Path
    val_metrics: dict[str, float]
    epochs_run: int
    precision: str
    replicas: int
    seconds: float


@dataclass(frozen=True)
class _Split:
    indices: np.ndarray
    targets: np.ndarray


def train(task: TaskParams, *, data_dir: Path, model_dir: Path, live_dir: Path | None,
          backup_root: Path, seed: int) -> TrainResult:
    """Train ``task`` on ``data_dir`` (ingest outputs); write the model and its card.

    Args:
        task: Validated task params (``task.train`` holds the knobs).
        data_dir: ``data/interim/<task>``.
        model_dir: ``models/<task>``: gets ``model.keras`` and ``model_card.json``.
        live_dir: DVCLive folder (metrics per epoch, plots), or None for no logging.
        backup_root: Resumable state; keyed by a hash of params and data so a changed
            configuration never resumes from a stale backup. Not a DVC output.
        seed: Global seed.

    Raises:
        ValueError: Bad train params for this task (names the key) or an empty split.
    """
    import keras
    import tensorflow as tf

    start = time.time()
    tp = task.train
    _validate(task)
    keras.utils.set_random_seed(seed)
    if tp.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = apply_precision(tp.precision)
    strategy = make_strategy(tp.strategy)
    replicas = strategy.num_replicas_in_sync
    chief = is_chief()

    info = json.loads((data_dir / "dataset.json").read_text())
    splits = _splits(task, read_table(data_dir / "manifest.csv"))
    fingerprint = data_fingerprint(data_dir)
    state_dir = backup_root / _state_key(task, fingerprint, seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    # The best model so far lives with the resumable state (DVC deletes outputs before a rerun).
    checkpoint_dir = state_dir if chief else state_dir / "nonchief"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)

    global_batch = tp.batch_size * replicas
    train_ds, val_ds = _datasets(task, data_dir, splits, global_batch=global_batch, seed=seed)
    steps = math.ceil(len(splits["train"].indices) / global_batch)
    live = _live(live_dir, resume=state_dir.exists()) if chief and live_dir else None
    ratio = objective.class_ratio(splits["train"].targets, problem=task.problem)
    balance = objective.resolve_class_balance(tp.class_balance, ratio=ratio, problem=task.problem)
    log.info("class_balance %s -> %s (train majority/minority %.2f)", tp.class_balance, balance, ratio)
    class_weight = (objective.class_weights(splits["train"].targets, problem=task.problem)
                    if balance == "class_weights" else None)

    with strategy.scope():
        model = _build(task, tuple(info["item_shape"]))
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from pipeline.train.compat import patch_multi_worker

        patch_multi_worker(model, strategy)
    phases = _phases(task)
    epochs_run = 0
    for phase_no, (first, last, lr, unfreeze) in enumerate(phases, start=1):
        marker = state_dir / f"phase{phase_no}_done.weights.h5"
        with strategy.scope():
            _set_trainable(model, task, unfreeze)
            model.compile(
                optimizer=_optimizer(tp, lr=scaled_lr(lr, replicas, tp.lr_scaling),
                                     steps=steps * (last - first), warmup=int(tp.warmup_epochs * steps),
                                     policy=policy),
                loss=objective.make_loss(task.problem, class_balance=balance,
                                         label_smoothing=tp.label_smoothing, focal_gamma=tp.focal_gamma),
                metrics=objective.make_metrics(task.problem, task.n_outputs),
                jit_compile=False,
            )
        if marker.exists():  # this phase finished in an earlier, interrupted run
            model.load_weights(marker)
            log.info("phase %d already completed; resuming after it", phase_no)
            epochs_run = last
            continue
        history = model.fit(
            train_ds, validation_data=val_ds, initial_epoch=first, epochs=last, verbose=2,
            shuffle=False,  # the tf.data pipeline shuffles, seeded per epoch
            class_weight=class_weight,
            callbacks=make_callbacks(checkpoint_dir=checkpoint_dir,
                                     backup_dir=state_dir / f"phase{phase_no}", live=live,
                                     patience=tp.early_stopping_patience, rule=tp.checkpoint,
                                     ema=tp.ema, phase=phase_no, chief=chief),
        )
        epochs_run = history.epoch[-1] + 1 if history.epoch else last
        model.save_weights(marker)  # with EMA: fit ended by copying the averages in
    best = read_best(checkpoint_dir)
    if live is not None:
        _log_choice(live, best)
        live.end()

    result_model = load_model(best.model_path) if best is not None else model
    val_metrics = _evaluate(result_model, val_ds, task)
    if chief:
        final = model_dir / MODEL_FILE
        tmp = model_dir / f".{MODEL_FILE}.tmp.keras"
        result_model.save(tmp)
        tmp.replace(final)
        write_card(model_dir, _card(task, info, fingerprint, val_metrics, policy, replicas,
                                    global_batch, seed, splits, epochs_run, best,
                                    {"param": tp.class_balance, "resolved": balance,
                                     "train_majority_minority_ratio": round(ratio, 4)}))
    shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing to resume
    return TrainResult(model_dir / MODEL_FILE, val_metrics, epochs_run, policy, replicas,
                       time.time() - start)


def _validate(task: TaskParams) -> None:
    """Checks that need the model/augmentation registries (kept out of params loading, which
    must not import TensorFlow). Raises ParamsError naming the key."""
    from pipeline.config import ParamsError
    from pipeline.models import ARCHITECTURES_3D, BACKBONES

    names = sorted(BACKBONES) if task.kind == "2d" else sorted(ARCHITECTURES_3D)
    if task.train.backbone not in names:
        raise ParamsError(f"tasks.{task.name}.train.backbone must be one of {names} for kind "
                          f"'{task.kind}'. Received: {task.train.backbone!r}")
    try:
        augment_spec(task)
    except ValueError as exc:
        raise ParamsError(str(exc)) from None
    if task.train.class_balance == "class_weights" and task.problem == "multilabel":
        raise ParamsError(f"tasks.{task.name}.train.class_balance 'class_weights' is not defined for "
                          "multi-label tasks; use 'focal'. Received: 'class_weights'")


def augment_spec(task: TaskParams) -> list[dict[str, Any]]:
    """The training augmentation: the explicit ``train.augment`` list if given, else the
    ``train.augment_preset`` list for the task's kind (validated; errors name the key)."""
    from pipeline.augment import resolve_spec

    return list(resolve_spec(task.train.augment, preset=task.train.augment_preset, kind=task.kind,
                             key=f"tasks.{task.name}.train"))


def _splits(task: TaskParams, manifest: list[dict[str, str]]) -> dict[str, _Split]:
    out = {}
    for name in ("train", "val", "test"):
        rows = [r for r in manifest if r["split"] == name]
        if name != "test" and not rows:
            raise ValueError(f"the '{name}' split of task {task.name!r} is empty; check "
                             f"tasks.{task.name}.ingest.splits and the dataset size")
        out[name] = _Split(np.array([int(r["index"]) for r in rows], np.int64),
                           objective.targets_from_manifest(rows, problem=task.problem,
                                                           n_labels=len(task.labels)))
    return out


def _datasets(task: TaskParams, data_dir: Path, splits: dict[str, _Split], *, global_batch: int,
              seed: int) -> tuple[Any, Any]:
    from pipeline.augment import Augmenter
    from pipeline.dataset.store import open_array
    from pipeline.dataset.tfdata import make_dataset

    images = open_array(data_dir / "images.npy")
    spec = augment_spec(task)
    augmenter = Augmenter(spec, kind=task.kind) if spec else None
    tr, va = splits["train"], splits["val"]
    train_ds = make_dataset(images, tr.targets, tr.indices, batch_size=global_batch, training=True,
                            seed=seed, augmenter=augmenter, deterministic=task.train.deterministic)
    val_ds = make_dataset(images, va.targets, va.indices, batch_size=global_batch, training=False,
                          seed=seed)
    return train_ds, val_ds


def _build(task: TaskParams, item_shape: tuple[int, ...]) -> Any:
    from pipeline.models import build_model

    tp = task.train
    return build_model(kind=task.kind, backbone=tp.backbone, input_shape=item_shape,
                       n_outputs=task.n_outputs, activation=objective.activation_for(task.problem),
                       weights=tp.weights, dropout=tp.dropout, pooling=tp.pooling,
                       base_width=_width_for(task))


def _width_for(task: TaskParams) -> int | None:
    """``train.width`` where the architecture has one; fixed-width keras.applications backbones
    ignore it (logged), so ``dvc exp run -S tasks.X.train.backbone=densenet121`` just works."""
    from pipeline.models.backbones import BACKBONES, NATIVE_FAMILIES

    tp = task.train
    spec = BACKBONES.get(tp.backbone)
    if tp.width is not None and spec is not None and spec.family not in NATIVE_FAMILIES:
        log.info("train.width=%d ignored: %s has a fixed width", tp.width, tp.backbone)
        return None
    return tp.width


def _phases(task: TaskParams) -> list[tuple[int, int, float, int | str]]:
    """``(first_epoch, last_epoch, lr, unfreeze)`` per phase."""
    tp = task.train
    if tp.weights is None or tp.freeze_epochs == 0:
        return [(0, tp.epochs, tp.lr_head if tp.weights is None else tp.lr_finetune,
                 "all" if tp.weights is None else tp.unfreeze)]
    return [(0, tp.freeze_epochs, tp.lr_head, 0), (tp.freeze_epochs, tp.epochs, tp.lr_finetune, tp.unfreeze)]


def _set_trainable(model: Any, task: TaskParams, unfreeze: int | str) -> None:
    """Freeze the backbone then unfreeze its top blocks; from scratch, everything trains
    (BatchNormalization included: there are no pretrained statistics to protect)."""
    from pipeline.models import backbone_layers, unfreeze_top

    if task.train.weights is None:
        for layer in model.layers:
            layer.trainable = True
    else:
        for layer in backbone_layers(model, task.train.backbone):
            layer.trainable = False
        unfreeze_top(model, task.train.backbone, unfreeze)
    n = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    log.info("unfreeze=%s: %d trainable parameters", unfreeze, n)


def _optimizer(tp: Any, *, lr: float, steps: int, warmup: int, policy: str) -> Any:
    """AdamW on the warm-up + cosine schedule; EMA of the weights when ``tp.ema`` (the averages
    live in the AdamW, also inside a ``LossScaleOptimizer``)."""
    import keras

    schedule = warmup_cosine(lr, total_steps=steps, warmup_steps=warmup, min_lr_fraction=tp.min_lr_fraction)
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=tp.weight_decay,
                                 use_ema=tp.ema, ema_momentum=tp.ema_momentum)
    if policy == "mixed_float16":  # dynamic loss scaling so float16 gradients don't underflow
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def _live(live_dir: Path, *, resume: bool) -> Any:
    from dvclive import Live

    return Live(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None)


def _log_choice(live: Any, best: BestRecord | None) -> None:
    """The kept epoch and its scores in the DVCLive summary (``metrics.json``: ``checkpoint``)."""
    if best is None:
        return
    for name, value in (("epoch", best.score.epoch), ("val_auroc", best.score.auroc),
                        ("val_loss", best.score.loss)):
        live.log_metric(f"checkpoint/{name}", value, plot=False)
    log.info("kept %s", best.reason)


def _checkpoint_card(best: BestRecord | None, rule: str) -> dict[str, Any]:
    if best is None:
        return {"rule": rule, "epoch": None, "reason": "no epoch had a finite val AUROC and loss; "
                "the last weights were kept"}
    return {"rule": best.rule, "epoch": best.score.epoch, "val_auroc": round(best.score.auroc, 6),
            "val_loss": round(best.score.loss, 6), "reason": best.reason,
            "note": "val_loss here is the training loss function (label smoothing, focal); "
                    "val_metrics are recomputed on the saved model with plain cross-entropy"}


def _evaluate(model: Any, val_ds: Any, task: TaskParams) -> dict[str, float]:
    model.compile(loss=objective.make_loss(task.problem, class_balance="none", label_smoothing=0.0,
                                           focal_gamma=0.0),
                  metrics=objective.make_metrics(task.problem, task.n_outputs), jit_compile=False)
    values = model.evaluate(val_ds, verbose=0, return_dict=True)
    return {k: round(float(v), 6) for k, v in values.items()}


def _state_key(task: TaskParams, fingerprint: str, seed: int) -> str:
    blob = json.dumps({"task": task.model_dump(mode="json"), "data": fingerprint, "seed": seed},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _card(task: TaskParams, info: dict, fingerprint: str, val_metrics: dict[str, float], policy: str,
          replicas: int, global_batch: int, seed: int, splits: dict[str, _Split], epochs_run: int,
          best: BestRecord | None, class_balance: dict[str, Any]) -> dict:
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
        "checkpoint": _checkpoint_card(best, tp.checkpoint),
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
