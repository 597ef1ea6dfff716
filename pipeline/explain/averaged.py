"""View-averaged maps: a class activation map averaged over test-time views of the image.

A map read off a coarse feature grid (8 x 8 cells at 128 px for a ResNet's fourth block) puts its
peak at a cell, and which cell can flip with a shift of a few pixels: the map is quantised and
unstable at the scale of a small lesion. Computing the map on a few views of the image (the
test-time augmentation views of :mod:`pipeline.evaluate.tta`: shifts by 4% of the side and a
left-right mirror), moving each map back onto the original grid and averaging them, gives the
evidence that is stable under those small changes, at sub-cell resolution (the idea of
"Augmented Grad-CAM", Morbidelli et al., ICASSP 2020, and of SmoothGrad's averaging).

The explained class is chosen once, on the original image, and kept for every view. The mean is
taken per pixel over the views that cover it (a shifted view has no map in the band its shift
opened), then each map is scaled to a maximum of 1 again, as every map of
:mod:`pipeline.explain` is.

Measured on the demo (README "Explanations"): the pointing game of six method/layer pairs rose
from 0.59 to 0.81 on average with ``flip_shift``, and the deletion check still passed for each.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.rules import check_tta_mode


def view_averaged_maps(compute: Callable[[np.ndarray], np.ndarray], images: np.ndarray, mode: str
                       ) -> np.ndarray:
    """``compute``'s maps averaged over the views of ``mode`` (:func:`pipeline.utils.batch_views.view_specs`).

    Args:
        compute: Channels-last batch -> float32 maps ``(N, *spatial)`` in [0, 1] on its grid, for
            a fixed class per image (the caller resolves it on the original images); or ``M``
            maps per image stacked as ``(M * N, *spatial)`` (the ``m``-th block of ``N``: one
            method's maps; every map is moved back and averaged on its own).
        images: ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
        mode: ``none`` (``compute(images)`` itself), ``flip``, ``shift`` or ``flip_shift``.

    Returns:
        float32 ``(N, *spatial)`` (or ``(M * N, *spatial)``) in [0, 1], each map's maximum 1 (or
        all zero).

    Raises:
        ValueError: An unknown mode.
    """
    from pipeline.utils.batch_views import View, apply_view, view_specs

    check_tta_mode(mode)
    if mode == "none":
        return compute(images)
    total = covered = None
    for view in view_specs(mode, tuple(images.shape)):
        maps = compute(apply_view(images, view))[..., None]
        if total is None:
            total = np.zeros(maps.shape[:-1], np.float32)
            covered = np.zeros(maps.shape[:-1], np.float32)
        ones = np.ones_like(maps)
        back = View(False, -view.dh, -view.dw)  # undo the shift first, then the mirror
        maps, ones = (apply_view(a, back, fill="zero") for a in (maps, ones))
        if view.flip:
            maps, ones = np.flip(maps, axis=-2), np.flip(ones, axis=-2)
        total += maps[..., 0]
        covered += ones[..., 0]
    mean = total / np.maximum(covered, 1.0)
    peak = mean.reshape(len(mean), -1).max(axis=1) if mean.size else np.zeros(0, np.float32)
    scale = np.where(peak > 0, 1.0 / np.maximum(peak, 1e-12), 0.0).astype(np.float32)
    return (mean * scale.reshape(-1, *([1] * (mean.ndim - 1)))).astype(np.float32)
