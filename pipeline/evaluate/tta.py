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

Predictions are the mean of the model's *probabilities* over the views, not of its logits: the
models end in sigmoid/softmax and expose no logits, a mean of probabilities stays a probability
(softmax rows still sum to 1), and it is the usual ensemble rule that keeps a confident view from
outvoting the others. Explanations (Grad-CAM) are not averaged: they are of the original view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.rules import TTA_MODES, TTAMode, check_tta_mode  # noqa: F401  (public names)

#: Translation per view, as a fraction of the side (4% of 128 px = 5 px).
SHIFT_FRACTION = 0.04
_H, _W = -3, -2  # axes from the end of a channels-last batch


@dataclass(frozen=True)
class View:
    """One deterministic view: optional left-right flip (first), then a shift in pixels.

    ``dh > 0`` moves content down (towards higher H), ``dw > 0`` towards higher W.
    """

    flip: bool = False
    dh: int = 0
    dw: int = 0


def shift_pixels(side: int) -> int:
    """Translation of a ``shift`` view along an axis of ``side`` pixels: round(4% of it), >= 1."""
    return max(1, round(SHIFT_FRACTION * int(side)))


def view_specs(mode: str, shape: tuple[int, ...]) -> tuple[View, ...]:
    """The views of ``mode`` for batches of ``shape``, the original first.

    Raises:
        ValueError: Unknown mode, or a shape that is not ``(N, H, W, C)`` / ``(N, D, H, W, C)``.
    """
    check_tta_mode(mode)
    if len(shape) not in (4, 5):
        raise ValueError(f"batch must be (N, H, W, C) or (N, D, H, W, C). Received shape: {tuple(shape)}")
    flips = (False, True) if "flip" in mode else (False,)
    sh, sw = shift_pixels(shape[_H]), shift_pixels(shape[_W])
    shifts = ((0, 0), (sh, 0), (-sh, 0), (0, sw), (0, -sw)) if "shift" in mode else ((0, 0),)
    return tuple(View(flip, dh, dw) for flip in flips for dh, dw in shifts)


def n_views(mode: str) -> int:
    """Number of views of ``mode`` (the same for 2D and 3D)."""
    check_tta_mode(mode)
    return (2 if "flip" in mode else 1) * (5 if "shift" in mode else 1)


def apply_view(x: Any, view: View, *, fill: Literal["zero", "edge"] | None = None) -> Any:
    """Apply one view to a batch ``x`` (numpy array or backend tensor, returned as the same type).

    The identity view returns ``x`` itself; other views return a new array.

    Args:
        x: ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
        view: What to apply.
        fill: Value of the band a shift opens: ``zero`` or ``edge`` (repeat the border pixels);
            default: zero for 2D, edge for 3D (see module docstring).

    Raises:
        ValueError: Bad rank, bad fill or a shift not smaller than the side.
    """
    ndim = len(x.shape)
    if ndim not in (4, 5):
        raise ValueError(f"batch must be (N, H, W, C) or (N, D, H, W, C). Received shape: {tuple(x.shape)}")
    fill = fill or ("zero" if ndim == 4 else "edge")
    if fill not in ("zero", "edge"):
        raise ValueError(f"fill must be one of ['zero', 'edge']. Received: {fill!r}")
    xp = _namespace(x)
    out = xp.flip(x, axis=_W) if view.flip else x
    out = _shift(xp, out, view.dh, _H, fill)
    return _shift(xp, out, view.dw, _W, fill)


def iter_views(x: Any, mode: str) -> Iterator[Any]:
    """Yield the views of ``mode`` of batch ``x`` one at a time (one extra batch in memory)."""
    for view in view_specs(mode, tuple(x.shape)):
        yield apply_view(x, view)


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


def _namespace(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np
    from keras import ops  # backend tensors; keras is only imported when one is passed

    return ops


def _take(x: Any, axis: int, start: int | None, stop: int | None) -> Any:
    return x[(Ellipsis, slice(start, stop)) + (slice(None),) * (-axis - 1)]


def _shift(xp: Any, x: Any, offset: int, axis: int, fill: str) -> Any:
    """Move content by ``offset`` pixels along ``axis`` (negative from the end), filling the gap."""
    if offset == 0:
        return x
    side, k = int(x.shape[axis]), abs(offset)
    if k >= side:
        raise ValueError(f"shift must be smaller than the side ({side} px). Received: {offset}")
    if offset > 0:
        kept, border = _take(x, axis, None, side - k), _take(x, axis, 0, 1)
    else:
        kept, border = _take(x, axis, k, None), _take(x, axis, side - 1, side)
    band = xp.repeat(border, k, axis=axis)
    if fill == "zero":
        band = xp.zeros_like(band)
    parts = (band, kept) if offset > 0 else (kept, band)
    return xp.concatenate(list(parts), axis=axis)
