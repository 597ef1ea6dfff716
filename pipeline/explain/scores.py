"""Model outputs in batches and the class each explanation is about."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ClassIndex = int | Sequence[int] | np.ndarray | None


def predict(model: Any, images: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
    """Model outputs ``(N, K)`` float32, inference mode, ``batch_size`` images per call.

    Through Keras' compiled predict step (``predict_on_batch``, traced once per model and
    reused), as ``evaluate`` predicts: an eager ``model(x)`` runs layer by layer, 117 vs 32 ms
    per batch of 16 for the demo's cxr ResNet-18 at 128 px, and the deletion tests of the
    explain stage's method and layer choice make hundreds of such calls.
    """
    outputs = [np.asarray(model.predict_on_batch(images[start:start + batch_size]), np.float32)
               for start in range(0, len(images), batch_size)]
    if not outputs:
        return np.zeros((0, int(model.outputs[0].shape[-1])), np.float32)
    return np.concatenate(outputs).reshape(len(images), -1)


def n_outputs(model: Any) -> int:
    """Number of output units ``K`` (1 for a binary model)."""
    return int(model.outputs[0].shape[-1])


def resolve_class_index(model: Any, images: np.ndarray, class_index: ClassIndex, *,
                        batch_size: int = 16) -> np.ndarray:
    """One output index per image.

    Args:
        model: The classifier (outputs ``(N, K)``).
        images: Its inputs ``(N, ...)``; only read (one forward pass) when ``class_index`` is
            None and ``K > 1``.
        class_index: None: the positive class (index 0) of a single-output binary model, else
            each image's predicted class (argmax; for multi-label the most probable label); an
            int for every image; or one int per image.
        batch_size: Images per forward pass.

    Returns:
        int64 ``(N,)``.

    Raises:
        ValueError: An index outside ``[0, K)`` or a sequence of the wrong length.
    """
    k, n = n_outputs(model), len(images)
    if class_index is None:
        if k == 1:
            return np.zeros(n, np.int64)
        return predict(model, images, batch_size=batch_size).argmax(axis=1).astype(np.int64)
    indices = np.broadcast_to(np.asarray(class_index), (n,)) if np.ndim(class_index) == 0 \
        else np.asarray(class_index)
    if indices.shape != (n,) or not np.issubdtype(indices.dtype, np.integer) \
            or (n and (indices.min() < 0 or indices.max() >= k)):
        raise ValueError(f"class_index must be None, an int in [0, {k}) or {n} such ints (one per "
                         f"image). Received: class_index={class_index!r}")
    return indices.astype(np.int64)
