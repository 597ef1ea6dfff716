"""Deterministic views of a channels-last batch: a left-right mirror and shifts by whole pixels.

The test-time augmentation views of :mod:`pipeline.evaluate.tta` (probabilities averaged over
views) and of :mod:`pipeline.explain.averaged` (maps averaged over views); see the former's module
docstring for the modes, the axes and the fill rules. Batches are ``(N, H, W, C)`` or
``(N, D, H, W, C)``, numpy arrays or backend (Keras) tensors, returned as the same type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.rules import check_tta_mode

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
