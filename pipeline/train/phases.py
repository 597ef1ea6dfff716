"""The fine-tuning phases of one model: what trains, at which learning rate, resumably.

Phase 1 (``freeze_epochs``, only with pretrained ``weights``): the backbone is frozen (its
BatchNormalization layers run in inference mode) and only the head learns, at ``lr_head``.
Phase 2: the top ``unfreeze`` blocks (or ``all``) are unfrozen, BatchNormalization stays frozen,
and the model trains at ``lr_finetune``. Without pretrained weights there is nothing to protect,
so a single phase trains everything at ``lr_head``.

Each phase compiles a fresh optimizer (warm-up + cosine AdamW, optionally with EMA) and runs
``fit`` with :func:`pipeline.train.callbacks.make_callbacks`; a finished phase leaves a marker
(its final weights), so a killed run resumes after it. Used once by a single-model run and once
per member by k-fold cross-validation (:mod:`pipeline.train.crossval`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.train import objective
from pipeline.train.callbacks import make_callbacks
from pipeline.train.distribute import scaled_lr
from pipeline.train.schedule import warmup_cosine

log = logging.getLogger(__name__)


def fit_phases(task: TaskParams, model: Any, *, train_ds: Any, val_ds: Any, steps: int,
               class_weight: dict[int, float] | None, balance: str, state_dir: Path,
               checkpoint_dir: Path, live: Any | None, policy: str, strategy: Any, chief: bool,
               live_prefix: str | None = None) -> int:
    """Train ``model`` through the task's phases; return the number of the last epoch run.

    Args:
        task: Validated task params.
        model: A :func:`pipeline.models.build_model` model built under ``strategy``'s scope.
        train_ds: Training dataset (seeded shuffle and augmentation).
        val_ds: Validation dataset: what the checkpoint rule and early stopping score.
        steps: Optimizer steps per epoch (for the learning-rate schedule).
        class_weight: Keras class weights, or None.
        balance: Resolved ``class_balance`` (``none``, ``class_weights`` or ``focal``).
        state_dir: Resumable state: phase markers and ``BackupAndRestore`` folders.
        checkpoint_dir: Where the best model and its record live (see
            :mod:`pipeline.train.checkpoint`).
        live: ``dvclive.Live`` (chief) or None.
        policy: Resolved precision policy.
        strategy: The ``tf.distribute`` strategy.
        chief: Whether this process writes outputs.
        live_prefix: DVCLive metric folder of this model (k-fold members), or None.

    Returns:
        1-based number of the last epoch run (early stopping may end a phase sooner).
    """
    tp = task.train
    replicas = strategy.num_replicas_in_sync
    epochs_run = 0
    for phase_no, (first, last, lr, unfreeze) in enumerate(phases(task), start=1):
        marker = state_dir / f"phase{phase_no}_done.weights.h5"
        with strategy.scope():
            set_trainable(model, task, unfreeze)
            model.compile(
                optimizer=make_optimizer(tp, lr=scaled_lr(lr, replicas, tp.lr_scaling),
                                         steps=steps * (last - first),
                                         warmup=int(tp.warmup_epochs * steps), policy=policy),
                loss=objective.make_loss(task.problem, class_balance=balance,
                                         label_smoothing=tp.label_smoothing, focal_gamma=tp.focal_gamma),
                metrics=objective.make_metrics(task.problem, task.n_outputs),
                jit_compile=False,
            )
            # Slot variables now, not inside fit's first trace: a tf.function that creates
            # variables is traced twice, and tracing a backbone's train step costs 5-30 s on a
            # CPU (MobileNetV3-Small: 27 s per trace of a 105 s, 1-epoch run). Same graph, same
            # values: only the discarded first trace goes.
            model.optimizer.build(model.trainable_variables)
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
                                     ema=tp.ema, phase=phase_no, chief=chief, live_prefix=live_prefix),
        )
        epochs_run = history.epoch[-1] + 1 if history.epoch else last
        model.save_weights(marker)  # with EMA: fit ended by copying the averages in
    return epochs_run


def phases(task: TaskParams) -> list[tuple[int, int, float, int | str]]:
    """``(first_epoch, last_epoch, lr, unfreeze)`` per phase."""
    tp = task.train
    if tp.weights is None or tp.freeze_epochs == 0:
        return [(0, tp.epochs, tp.lr_head if tp.weights is None else tp.lr_finetune,
                 "all" if tp.weights is None else tp.unfreeze)]
    return [(0, tp.freeze_epochs, tp.lr_head, 0), (tp.freeze_epochs, tp.epochs, tp.lr_finetune, tp.unfreeze)]


def set_trainable(model: Any, task: TaskParams, unfreeze: int | str) -> None:
    """Freeze the backbone then unfreeze its top blocks; from scratch, everything trains
    (BatchNormalization included: there are no pretrained statistics to protect)."""
    from pipeline.models import backbone_layers, unfreeze_top

    wrapper, model = model, getattr(model, "classifier", model)  # mask guidance: its head trains
    for layer in wrapper.layers:
        layer.trainable = True
    if task.train.weights is None:
        for layer in model.layers:
            layer.trainable = True
    else:
        for layer in backbone_layers(model, task.train.backbone):
            layer.trainable = False
        unfreeze_top(model, task.train.backbone, unfreeze)
    n = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    log.info("unfreeze=%s: %d trainable parameters", unfreeze, n)


def make_optimizer(tp: Any, *, lr: float, steps: int, warmup: int, policy: str) -> Any:
    """AdamW on the warm-up + cosine schedule; EMA of the weights when ``tp.ema`` (the averages
    live in the AdamW, also inside a ``LossScaleOptimizer``). Keras' AdamW with a fused update
    (:class:`pipeline.train.optimizer.FusedAdamW`: the same steps, the first step ~3x faster)."""
    import keras

    from pipeline.train.optimizer import FusedAdamW

    schedule = warmup_cosine(lr, total_steps=steps, warmup_steps=warmup, min_lr_fraction=tp.min_lr_fraction)
    opt = FusedAdamW(learning_rate=schedule, weight_decay=tp.weight_decay,
                     use_ema=tp.ema, ema_momentum=tp.ema_momentum)
    if policy == "mixed_float16":  # dynamic loss scaling so float16 gradients don't underflow
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt
