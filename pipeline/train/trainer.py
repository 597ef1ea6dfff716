"""Two-phase fine-tuning of a Keras model on an ingested task; optionally k models by fold.

The phases (head-only with pretrained weights, then the top ``unfreeze`` blocks) live in
:mod:`pipeline.train.phases`: each has a linear warm-up then cosine decay, AdamW with decoupled
weight decay (optionally with an exponential moving average of the weights, ``train.ema``:
:mod:`pipeline.train.ema`), and the best epoch under ``train.checkpoint``'s rule is kept across
both phases (:mod:`pipeline.train.checkpoint`, :mod:`pipeline.train.selection`). Killed runs
resume from the last completed epoch (``BackupAndRestore`` per phase plus a phase-1 completion
marker).

``train.folds = 1`` trains one model, validated on the ingest ``val`` split. ``train.folds = k``
trains one such model per patient fold of the ``train`` split, each validated on its held-out
fold, and saves their mean (:mod:`pipeline.train.crossval`).

The splits and datasets come from :mod:`pipeline.train.inputs`; the model card, the DVCLive
logger and the resumable state's key from :mod:`pipeline.train.run_record`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import TaskParams
from pipeline.dataset.layout import InterimLayout
from pipeline.dataset.tables import read_table
from pipeline.train import objective
from pipeline.train.callbacks import read_best
from pipeline.train.card import MODEL_FILE, data_fingerprint, load_model, write_card
from pipeline.train.crossval import Fitted
from pipeline.train.crossval import Split as _Split
from pipeline.train.distribute import is_chief, make_strategy
from pipeline.train.inputs import augment_spec, datasets, manifest_splits, val_dataset
from pipeline.train.phases import fit_phases
from pipeline.train.phases import make_optimizer as _optimizer  # noqa: F401  (tests, bench)
from pipeline.train.precision import apply_precision
from pipeline.train.run_record import checkpoint_card, log_choice, model_card, open_live, state_key

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
class _Run:
    """What every model of one run shares (one model, or each k-fold member)."""

    task: TaskParams
    data_dir: Path
    item_shape: tuple[int, ...]
    policy: str
    strategy: Any
    chief: bool
    global_batch: int
    live: Any | None


def train(task: TaskParams, *, data_dir: Path, model_dir: Path, live_dir: Path | None,
          backup_root: Path, seed: int) -> TrainResult:
    """Train ``task`` on ``data_dir`` (ingest outputs); write the model and its card.

    Args:
        task: Validated task params (``task.train`` holds the knobs).
        data_dir: ``data/interim/<task>``.
        model_dir: ``models/<task>``: gets ``model.keras`` and ``model_card.json`` (with
            ``train.folds >= 2`` also ``oof_predictions.csv``, see :mod:`pipeline.train.oof`).
        live_dir: DVCLive folder (metrics per epoch, plots), or None for no logging.
        backup_root: Resumable state; keyed by a hash of params and data so a changed
            configuration never resumes from a stale backup. Not a DVC output.
        seed: Global seed (k-fold member ``i`` uses ``seed + i``; the folds use ``seed``).

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

    info = json.loads(InterimLayout(data_dir).info.read_text())
    splits = manifest_splits(task, read_table(InterimLayout(data_dir).manifest))
    from pipeline.train.crossval import fold_plan, resolve_folds

    folds, folds_reason = resolve_folds(tp.folds, splits["train"])
    log.info("%s", folds_reason)
    fold_of = None
    if folds > 1:
        fold_of = fold_plan(splits["train"], folds=folds, seed=seed, key=f"tasks.{task.name}.train")
    fingerprint = data_fingerprint(data_dir)
    state_dir = backup_root / state_key(task, fingerprint, seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    # The best model so far lives with the resumable state (DVC deletes outputs before a rerun).
    checkpoint_dir = state_dir if chief else state_dir / "nonchief"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)

    global_batch = tp.batch_size * replicas
    live = open_live(live_dir, resume=state_dir.exists()) if chief and live_dir else None
    run = _Run(task, data_dir, tuple(info["item_shape"]), policy, strategy, chief, global_batch, live)
    cv = None
    if fold_of is None:
        fitted, val_ds = _fit(run, splits["train"], splits["val"], state_dir=state_dir,
                              checkpoint_dir=checkpoint_dir, seed=seed)
        result_model, epochs_run, checkpoint = fitted.model, fitted.epochs_run, fitted.checkpoint
        if live is not None:
            live.end()
    else:
        from pipeline.train.folds import train_folds

        cv = train_folds(run, splits, fold_of, fit=_fit, state_dir=state_dir,
                         checkpoint_dir=checkpoint_dir, seed=seed)
        result_model = cv.model
        epochs_run = sum(m["epochs_run"] for m in cv.section["members"])  # the cost: all members
        checkpoint = {"rule": tp.checkpoint, "epoch": None,
                      "reason": f"an ensemble of {folds} fold models: each kept its best epoch on "
                                "its held-out fold (cross_validation.members[i].checkpoint)"}
        val_ds = val_dataset(data_dir, splits["val"], global_batch=global_batch, seed=seed)

    val_metrics = _evaluate(result_model, val_ds, task)
    if chief:
        final = model_dir / MODEL_FILE
        tmp = model_dir / f".{MODEL_FILE}.tmp.keras"
        result_model.save(tmp)
        tmp.replace(final)
        ratio = objective.class_ratio(splits["train"].targets, problem=task.problem)
        balance = objective.resolve_class_balance(tp.class_balance, ratio=ratio, problem=task.problem)
        card = model_card(task, info, fingerprint, val_metrics, policy, replicas, global_batch, seed, splits,
                          epochs_run, checkpoint, {"param": tp.class_balance, "resolved": balance,
                                                   "train_majority_minority_ratio": round(ratio, 4)})
        card["folds"] = {"param": tp.folds, "resolved": folds, "reason": folds_reason}
        if cv is not None:
            cv.write_oof(model_dir, task.labels)
            card["cross_validation"] = cv.section
        write_card(model_dir, card)
    shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing to resume
    return TrainResult(model_dir / MODEL_FILE, val_metrics, epochs_run, policy, replicas,
                       time.time() - start)


def _fit(run: _Run, train_split: _Split, val_split: _Split, *, state_dir: Path, checkpoint_dir: Path,
         seed: int, live_prefix: str | None = None) -> tuple[Fitted, Any]:
    """Build and fit one model on ``train_split``, selected on ``val_split``; load the kept epoch.

    Returns:
        The fitted model (the best epoch's, else the last weights) and the validation dataset.
    """
    import tensorflow as tf

    task, tp = run.task, run.task.train
    from pipeline.train import guidance

    guided = guidance.active(task, run.data_dir, train_split.indices)
    train_ds, val_ds = datasets(task, run.data_dir, {"train": train_split, "val": val_split},
                                global_batch=run.global_batch, seed=seed, masks=guided)
    steps = math.ceil(len(train_split.indices) / run.global_batch)
    ratio = objective.class_ratio(train_split.targets, problem=task.problem)
    balance = objective.resolve_class_balance(tp.class_balance, ratio=ratio, problem=task.problem)
    log.info("class_balance %s -> %s (train majority/minority %.2f)", tp.class_balance, balance, ratio)
    class_weight = (objective.class_weights(train_split.targets, problem=task.problem)
                    if balance == "class_weights" else None)

    with run.strategy.scope():
        model = build_task_model(task, run.item_shape)
        if guided:
            model = guidance.make_guided_model(model, layer=tp.mask_guidance_layer, weight=tp.mask_guidance)
            log.info("mask guidance on layer %s, weight %g", model.guidance_layer, tp.mask_guidance)
    if isinstance(run.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from pipeline.train.compat import patch_multi_worker

        patch_multi_worker(model, run.strategy)
    epochs_run = fit_phases(task, model, train_ds=train_ds, val_ds=val_ds, steps=steps,
                            class_weight=class_weight, balance=balance, state_dir=state_dir,
                            checkpoint_dir=checkpoint_dir, live=run.live, policy=run.policy,
                            strategy=run.strategy, chief=run.chief, live_prefix=live_prefix)
    best = read_best(checkpoint_dir)
    if run.live is not None:
        log_choice(run.live, best, prefix=live_prefix)
        if best is not None:
            log.info("kept %s", best.reason)
    model = load_model(best.model_path) if best is not None else getattr(model, "classifier", model)
    return Fitted(model, epochs_run, checkpoint_card(best, tp.checkpoint), balance), val_ds


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


def build_task_model(task: TaskParams, item_shape: tuple[int, ...]) -> Any:
    """The untrained model of ``task`` for inputs of ``item_shape`` (its backbone, head, width,
    weights and output activation), as the trainer builds it."""
    from pipeline.models import build_model

    tp = task.train
    return build_model(kind=task.kind, backbone=tp.backbone, input_shape=item_shape,
                       n_outputs=task.n_outputs, activation=objective.activation_for(task.problem),
                       weights=tp.weights, dropout=tp.dropout, pooling=tp.pooling,
                       base_width=width_for(task))


def width_for(task: TaskParams) -> int | None:
    """``train.width`` where the architecture has one; fixed-width keras.applications backbones
    ignore it (logged), so ``dvc exp run -S tasks.X.train.backbone=densenet121`` just works."""
    from pipeline.models.backbones import BACKBONES, NATIVE_FAMILIES

    tp = task.train
    spec = BACKBONES.get(tp.backbone)
    if tp.width is not None and spec is not None and spec.family not in NATIVE_FAMILIES:
        log.info("train.width=%d ignored: %s has a fixed width", tp.width, tp.backbone)
        return None
    return tp.width


def _evaluate(model: Any, val_ds: Any, task: TaskParams) -> dict[str, float]:
    model.compile(loss=objective.make_loss(task.problem, class_balance="none", label_smoothing=0.0,
                                           focal_gamma=0.0),
                  metrics=objective.make_metrics(task.problem, task.n_outputs), jit_compile=False)
    values = model.evaluate(val_ds, verbose=0, return_dict=True)
    return {k: round(float(v), 6) for k, v in values.items()}
