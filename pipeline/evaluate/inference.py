"""Batched inference on the ingested image store, with optional test-time augmentation."""

from __future__ import annotations

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
    outs = []
    for start in range(0, len(indices), batch_size):
        x = load_inputs(images, indices[start:start + batch_size])
        outs.append(tta_predict(model.predict_on_batch, x, mode=tta))
    n_out = int(model.outputs[0].shape[-1])
    return np.concatenate(outs) if outs else np.zeros((0, n_out))
