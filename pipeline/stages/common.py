"""What the post-training stages share: the trained model, the ingested cases, batched inference."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.ingest.tables import read_table


@dataclass(frozen=True)
class Cases:
    """Ingested samples selected for a stage, in manifest order.

    Attributes:
        rows: Their manifest rows (``sample_id``, ``split``, ``patient``, ``label``, ``index``...).
        indices: Row of each sample in ``images.npy`` / ``masks.npy``.
    """

    rows: tuple[dict[str, str], ...]
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        return [r[name] for r in self.rows]


def select_cases(data_dir: Path, splits: Sequence[str], *, limit: int | None = None) -> Cases:
    """Manifest rows of ``splits`` (manifest order), at most ``limit`` of them."""
    rows = [r for r in read_table(Path(data_dir) / "manifest.csv") if r["split"] in splits]
    if limit is not None:
        rows = rows[:limit]
    return Cases(tuple(rows), np.array([int(r["index"]) for r in rows], dtype=np.int64))


def load_trained(model_dir: Path, task: TaskParams) -> tuple[Any, dict[str, Any]]:
    """The task's trained model (safe mode) and its card, checked against the task's params.

    Raises:
        ValueError: The model was trained for another task kind or label set.
    """
    from pipeline.train.card import load_model, read_card

    card = read_card(model_dir)
    if card.get("kind") != task.kind or tuple(card.get("labels", ())) != tuple(task.labels):
        raise ValueError(f"model in {model_dir} was trained for kind={card.get('kind')!r}, labels="
                         f"{card.get('labels')}; task {task.name!r} has kind={task.kind!r}, labels="
                         f"{list(task.labels)}. Retrain (dvc repro) after changing labels or kind.")
    return load_model(model_dir), card


def load_inputs(images: Any, indices: np.ndarray) -> np.ndarray:
    """Model inputs for ``indices``: stored uint8 -> float32 in [0, 1] (the model's contract)."""
    out = np.empty((len(indices), *images.shape[1:]), dtype=np.float32)
    for i, row in enumerate(indices):
        out[i] = images[int(row)]
    out /= np.float32(255.0)
    return out


def predict_probs(model: Any, images: Any, indices: np.ndarray, *, batch_size: int,
                  tta: str = "none") -> np.ndarray:
    """Model outputs for the rows ``indices`` of a (memory-mapped) image array, batch by batch.

    Args:
        model: A Keras model whose outputs are probabilities.
        images: ``(N, ...)`` uint8 array (``images.npy``).
        indices: Rows to predict, in output order.
        batch_size: Samples per inference batch; TTA views are made and predicted one at a time
            per batch, so memory stays at about two batches whatever the mode.
        tta: Test-time augmentation mode (:data:`pipeline.evaluate.tta.TTA_MODES`): the mean of
            the probabilities over the views. ``none`` is plain inference.

    Returns:
        ``(N, n_outputs)`` float64 (binary: one column, P(labels[1])).

    Raises:
        ValueError: Unknown ``tta`` mode.
    """
    from pipeline.evaluate.tta import check_tta_mode, tta_predict

    check_tta_mode(tta)
    outs = []
    for start in range(0, len(indices), batch_size):
        x = load_inputs(images, indices[start:start + batch_size])
        outs.append(tta_predict(model.predict_on_batch, x, mode=tta))
    n_out = int(model.outputs[0].shape[-1])
    return np.concatenate(outs) if outs else np.zeros((0, n_out))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))
