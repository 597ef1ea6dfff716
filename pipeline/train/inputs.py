"""The training inputs of one task: patient splits from the ingest manifest, the tf.data
pipelines over the ingested arrays, and the augmentation list.

- :func:`manifest_splits`: the ``train``/``val``/``test`` rows of ``manifest.csv`` as
  :class:`pipeline.train.crossval.Split` (indices, targets, patients; ``train`` and ``val`` must
  not be empty).
- :func:`datasets`: the shuffled, augmented training batches (optionally with lesion masks for
  ``train.mask_guidance``) and the validation batches; :func:`val_dataset` alone.
- :func:`augment_spec`: ``train.augment``, or the kind's ``train.augment_preset`` list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.dataset.layout import InterimLayout
from pipeline.train import objective
from pipeline.train.crossval import Split


def manifest_splits(task: TaskParams, manifest: list[dict[str, str]]) -> dict[str, Split]:
    """The ``train``, ``val`` and ``test`` rows of the ingest manifest; raises ValueError for an
    empty ``train`` or ``val`` split."""
    out = {}
    for name in ("train", "val", "test"):
        rows = [r for r in manifest if r["split"] == name]
        if name != "test" and not rows:
            raise ValueError(f"the '{name}' split of task {task.name!r} is empty; check "
                             f"tasks.{task.name}.ingest.splits and the dataset size")
        out[name] = Split(np.array([int(r["index"]) for r in rows], np.int64),
                          objective.targets_from_manifest(rows, problem=task.problem,
                                                          n_labels=len(task.labels)),
                          patients=tuple(r["patient"] for r in rows),
                          labels=tuple(r["label"] for r in rows),
                          sample_ids=tuple(r["sample_id"] for r in rows))
    return out


def datasets(task: TaskParams, data_dir: Path, splits: dict[str, Split], *, global_batch: int,
             seed: int, masks: bool = False) -> tuple[Any, Any]:
    """Training and validation datasets; ``masks``: training batches carry the (augmented) lesion
    masks for ``train.mask_guidance`` (:func:`pipeline.train.guidance.guided_batches`)."""
    from pipeline.augment import Augmenter
    from pipeline.dataset.store import open_array
    from pipeline.dataset.tfdata import make_dataset

    images = open_array(InterimLayout(data_dir).images)
    spec = augment_spec(task)
    augmenter = Augmenter(spec, kind=task.kind) if spec else None
    tr, va = splits["train"], splits["val"]
    train_ds = make_dataset(images, tr.targets, tr.indices, batch_size=global_batch, training=True,
                            seed=seed, augmenter=augmenter, deterministic=task.train.deterministic,
                            masks=open_array(InterimLayout(data_dir).masks) if masks else None,
                            return_masks=masks)
    if masks:
        from pipeline.train.guidance import guided_batches

        train_ds = guided_batches(train_ds, problem=task.problem)
    return train_ds, val_dataset(data_dir, va, global_batch=global_batch, seed=seed)


def val_dataset(data_dir: Path, split: Split, *, global_batch: int, seed: int) -> Any:
    """Validation batches of ``split`` (not shuffled, not augmented)."""
    from pipeline.dataset.store import open_array
    from pipeline.dataset.tfdata import make_dataset

    return make_dataset(open_array(InterimLayout(data_dir).images), split.targets, split.indices,
                        batch_size=global_batch, training=False, seed=seed)


def augment_spec(task: TaskParams) -> list[dict[str, Any]]:
    """The training augmentation: the explicit ``train.augment`` list if given, else the
    ``train.augment_preset`` list for the task's kind (validated; errors name the key)."""
    from pipeline.augment import resolve_spec

    return list(resolve_spec(task.train.augment, preset=task.train.augment_preset, kind=task.kind,
                             key=f"tasks.{task.name}.train"))
