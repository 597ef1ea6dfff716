"""``train.folds >= 2``: fit one member per fold, save their mean, score the out-of-fold predictions.

The cross-validation logic (folds, what each member trains and validates on, resuming, the card
section) is :mod:`pipeline.train.crossval`; this module runs it with the trainer's single-model
fit and adds what needs Keras and the data: each member's seed, predictions, the ensemble model
(:func:`pipeline.models.build_ensemble`), DVCLive metrics.

DVCLive (``dvclive/<task>/``): member ``i``'s epochs are logged under ``member_<i>/train/...`` and
``member_<i>/eval/...`` (``eval`` = its held-out fold), one step per epoch, the step counting on
across members; its kept epoch under ``member_<i>/checkpoint``; the run's results under
``cross_validation`` (``oof_auroc``, ``oof_loss``, ``ensemble_val_auroc``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.dataset.layout import InterimLayout
from pipeline.train.crossval import Fitted, Split, oof_probs, summary, train_members
from pipeline.train.oof import OOF_FILE, write_oof

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrossValidation:
    """A finished k-fold run.

    Attributes:
        model: The ensemble (what ``model.keras`` holds).
        section: The model card's ``cross_validation`` section.
        train: The ingest ``train`` split.
        fold_of: Fold per training sample.
        oof: ``(len(train), K)`` out-of-fold probabilities.
    """

    model: Any
    section: dict[str, Any]
    train: Split
    fold_of: np.ndarray
    oof: np.ndarray

    def write_oof(self, model_dir: Path, label_names: tuple[str, ...]) -> Path:
        """Write ``model_dir/oof_predictions.csv`` (see :func:`pipeline.train.oof.write_oof`)."""
        path = model_dir / OOF_FILE
        write_oof(path, sample_ids=self.train.sample_ids, patients=self.train.patients,
                  labels=self.train.labels, folds=self.fold_of, probs=self.oof, label_names=label_names)
        return path


def train_folds(run: Any, splits: dict[str, Split], fold_of: np.ndarray, *,
                fit: Callable[..., tuple[Fitted, Any]], state_dir: Path, checkpoint_dir: Path,
                seed: int) -> CrossValidation:
    """Fit (or resume) every member, build the ensemble and score it.

    Args:
        run: The trainer's shared run settings (``task``, ``data_dir``, ``global_batch``,
            ``live``, ...).
        splits: ``train``, ``val`` (and ``test``) splits.
        fold_of: Fold per ``train`` sample (:func:`pipeline.train.crossval.fold_plan`).
        fit: The trainer's single-model fit, ``fit(run, train, val, *, state_dir,
            checkpoint_dir, seed, live_prefix) -> (Fitted, val dataset)``.
        state_dir: The run's resumable state; member ``i`` backs up in ``member_<i>/``.
        checkpoint_dir: The run's checkpoint folder (this worker's); member ``i`` keeps its best
            model and its commit files in ``member_<i>/``.
        seed: The run's seed; member ``i`` is initialised and shuffled with ``seed + i``, so a
            resumed member starts as it would have in one uninterrupted run.
    """
    import keras

    from pipeline.models.ensemble import build_ensemble, member_name
    from pipeline.train.card import load_model

    task = run.task

    def fit_member(i: int, inner: Split, held: Split, member_dir: Path) -> Fitted:
        keras.utils.set_random_seed(seed + i)
        fitted, _ = fit(run, inner, held, state_dir=state_dir / member_name(i), checkpoint_dir=member_dir,
                        seed=seed + i, live_prefix=member_name(i))
        return fitted

    def predict(model: Any, split: Split) -> np.ndarray:
        return predict_split(model, run.data_dir, split, batch_size=run.global_batch)

    members = train_members(splits["train"], splits["val"], fold_of, fit=fit_member, predict=predict,
                            member_root=checkpoint_dir, problem=task.problem)
    ensemble = build_ensemble([load_model(m.model_path) for m in members])
    section = summary(members, splits["train"], fold_of, val=splits["val"],
                      ensemble_val_probs=predict(ensemble, splits["val"]), problem=task.problem)
    log.info("cross-validation (%d folds): out-of-fold AUROC %s over %d training samples; ensemble "
             "val AUROC %s", section["folds"], section["oof_auroc"], section["oof_samples"],
             section["ensemble_val_auroc"])
    if run.live is not None:
        for name in ("oof_auroc", "oof_loss", "ensemble_val_auroc"):
            if section[name] is not None:
                run.live.log_metric(f"cross_validation/{name}", section[name], plot=False)
        run.live.log_metric("cross_validation/folds", section["folds"], plot=False)
        run.live.end()
    return CrossValidation(ensemble, section, splits["train"], fold_of,
                           oof_probs(members, fold_of))


def predict_split(model: Any, data_dir: Path, split: Split, *, batch_size: int) -> np.ndarray:
    """``(len(split), K)`` float64 probabilities of ``model`` on ``split``, in its order."""
    from pipeline.dataset.store import open_array
    from pipeline.dataset.tfdata import make_dataset

    if not len(split):
        return np.zeros((0, int(model.outputs[0].shape[-1])), np.float64)
    ds = make_dataset(open_array(InterimLayout(data_dir).images), split.targets, split.indices,
                      batch_size=batch_size, training=False, seed=0)
    return np.asarray(model.predict(ds, verbose=0), np.float64).reshape(len(split), -1)
