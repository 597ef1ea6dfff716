"""Batched inference on the ingested image store, with optional test-time augmentation.

Every forward batch has the same number of rows: a short last batch is padded with blank
inputs and their outputs dropped (:func:`fixed_batch`). On a CPU, float32 results depend on
the batch size at the level of rounding (oneDNN and Eigen split the work by shape: 9e-8 on a
probability, measured on the test model), which is enough to move a sixth decimal. With one
batch size, a case gets the same probability bit for bit whatever else is in its batch: the
test split in ``evaluate`` and the same images as an external cohort in ``validate``, or a
study predicted alone. The padding costs at most one batch per call, and one graph is traced
instead of two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.dataset.cases import load_inputs


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
    predict = fixed_batch(model.predict_on_batch, batch_size)
    outs = []
    for start in range(0, len(indices), batch_size):
        x = load_inputs(images, indices[start:start + batch_size])
        outs.append(tta_predict(predict, x, mode=tta))
    n_out = int(model.outputs[0].shape[-1])
    return np.concatenate(outs) if outs else np.zeros((0, n_out))


def fixed_batch(predict: Callable[[Any], Any], batch_size: int) -> Callable[[Any], np.ndarray]:
    """``predict`` called on batches of exactly ``batch_size`` rows: a shorter batch is padded
    with zeros (blank inputs) and only its own rows' outputs are returned.

    Raises:
        ValueError: A batch longer than ``batch_size``.
    """
    def run(x: Any) -> np.ndarray:
        x = np.asarray(x)
        n = len(x)
        if n > batch_size:
            raise ValueError(f"a batch of {n} rows is longer than batch_size={batch_size}")
        if n < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)])
        return np.asarray(predict(x))[:n]

    return run
