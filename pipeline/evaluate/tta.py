"""Test-time augmentation (TTA): fixed views of a batch, and the mean of a model's probabilities.

Batches are channels-last model inputs, ``(N, H, W, C)`` (2D) or ``(N, D, H, W, C)`` (3D), as
numpy arrays or backend (TensorFlow) tensors; every view has the batch's shape, dtype and type.
Modes (``tasks.<t>.evaluate.tta``):

- ``none``: the original only (predictions are bit-identical to plain inference).
- ``flip``: original + left-right mirror (2 views). Only the W axis is flipped, in 2D and 3D:
  on the canonical 3D grid of :mod:`pipeline.io` W points to the patient's Left, while flipping D
  (Superior) or H (Posterior) would show the model upside-down or back-to-front anatomy. A mirrored
  chest radiograph is not a plausible patient either (the heart moves to the right), but the
  mirror is standard practice as TTA and the model only ever sees it averaged with the original.
- ``shift``: original + 4 in-plane translations (5 views): ``+-shift_pixels(H)`` along H, then
  ``+-shift_pixels(W)`` along W, i.e. round(4%) of the side, >= 1 px (:func:`shift_pixels`; 3D:
  every slice moves alike, D is not shifted). Content leaving the grid is
  dropped; the band that opens is filled with zeros in 2D (ingest letterboxes with zeros, so the
  model has seen such bands) and by repeating the edge voxels in 3D (ingest pads CT with air,
  which is not 0 after the HU window).
- ``flip_shift``: every shift of the original and of the mirror (10 views).

The views themselves (:class:`View`, :func:`view_specs`, :func:`apply_view`) live in
:mod:`pipeline.utils.batch_views`, which explanations share without importing evaluation code.

Predictions are the mean of the model's *probabilities* over the views, not of its logits: the
models end in sigmoid/softmax and expose no logits, a mean of probabilities stays a probability
(softmax rows still sum to 1), and it is the usual ensemble rule that keeps a confident view from
outvoting the others. Explanations have their own setting, ``explain.tta``: a map averaged over
the same views (:mod:`pipeline.explain.averaged`), with the class chosen on the original view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.rules import TTA_MODES, TTAMode, check_tta_mode  # noqa: F401  (public names)
from pipeline.utils.batch_views import (  # noqa: F401  (public names: the views themselves)
    SHIFT_FRACTION,
    View,
    apply_view,
    iter_views,
    n_views,
    shift_pixels,
    view_specs,
)


def tta_predict(predict: Callable[[Any], Any], x: Any, *, mode: str) -> np.ndarray:
    """Mean of ``predict`` over the views of ``x`` (probabilities, not logits; see module docstring).

    Args:
        predict: A batch -> ``(N, K)`` probabilities, e.g. ``model.predict_on_batch``.
        x: One inference batch, ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
        mode: One of :data:`TTA_MODES`.

    Returns:
        ``(N, K)`` float64. With ``none`` this is ``predict(x)`` as float64, bit for bit.

    Raises:
        ValueError: Unknown mode or bad batch shape.
    """
    views = iter_views(x, mode)
    total = np.asarray(predict(next(views)), dtype=np.float64)  # every mode starts with the original
    count = 1
    for view in views:
        total = total + np.asarray(predict(view), dtype=np.float64)
        count += 1
    return total / count
