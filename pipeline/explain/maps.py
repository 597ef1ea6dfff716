"""Class activation maps from feature resolution to the input's grid, normalised to [0, 1].

Normalisation (every method): ReLU at feature resolution (only evidence *for* the class is
shown, as in Grad-CAM), linear upsampling, then division by the map's own maximum, so 1 marks
the strongest evidence in that image and 0 none. Maps are relative within one image and not
comparable in magnitude across images. A map without positive evidence (the class score does
not increase with any feature, or the gradients vanish) or with a non-finite value is all zero.

Upsampling is written here rather than taken from tf-keras-vis: its ``expand_cam`` uses
``scipy.ndimage.zoom`` with corner-aligned sampling (first and last feature cells pinned to
the first and last pixels), which shifts a strided network's map by up to half a feature cell
towards the image border. :func:`upsample` uses half-pixel centres (``tf.image.resize``
bilinear, as tf-explain's ``cv2.resize``): feature cell ``i`` of a stride-``s`` map is centred
on pixel ``s * i + (s - 1) / 2``. The same function serves 2D and 3D (trilinear, separable),
so every method and both libraries produce maps on the same grid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)
_TINY = 1e-12


def upsample(cams: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Linearly resize ``(N, h, w)`` or ``(N, d, h, w)`` maps to ``shape`` (half-pixel centres).

    Args:
        cams: Maps at feature resolution.
        shape: Target spatial shape ``(H, W)`` or ``(D, H, W)``, same rank as ``cams[0]``.

    Returns:
        float32 ``(N, *shape)``.

    Raises:
        ValueError: Rank mismatch, or not 2D/3D.
    """
    import tensorflow as tf

    cams = np.asarray(cams, np.float32)
    shape = tuple(int(s) for s in shape)
    if cams.ndim - 1 != len(shape) or len(shape) not in (2, 3):
        raise ValueError(f"cams (N, *spatial) and shape must both be 2D or 3D. "
                         f"Received: cams.shape={cams.shape}, shape={shape}")
    if cams.shape[1:] == shape:
        return cams.copy()
    n = cams.shape[0]
    if len(shape) == 2:
        return tf.image.resize(cams[..., None], shape, method="bilinear").numpy()[..., 0]
    d, h, w = cams.shape[1:]
    depth, height, width = shape
    planes = tf.image.resize(cams.reshape(n * d, h, w, 1), (height, width), method="bilinear")
    columns = tf.reshape(planes, (n, d, height * width, 1))
    # Resizing (d, H*W) -> (D, H*W) is linear along depth only: scale 1 on the other axis.
    volume = tf.image.resize(columns, (depth, height * width), method="bilinear")
    return tf.reshape(volume, (n, depth, height, width)).numpy()


def normalize(maps: np.ndarray) -> np.ndarray:
    """Per map: ReLU, divide by the maximum; all-zero where there is no positive finite peak.

    Args:
        maps: ``(N, *spatial)``.

    Returns:
        float32 ``(N, *spatial)`` in [0, 1]; each map's maximum is 1 or the map is all 0.
    """
    maps = np.asarray(maps, np.float32)
    axes = tuple(range(1, maps.ndim))
    finite = np.isfinite(maps).all(axis=axes)
    if not finite.all():
        log.warning("%d of %d maps had non-finite values and were set to zero",
                    int((~finite).sum()), len(maps))
    out = np.where(np.isfinite(maps), np.maximum(maps, 0.0), 0.0).astype(np.float32)
    peak = out.max(axis=axes, keepdims=True) if out.size else out
    keep = finite.reshape(peak.shape) & (peak > _TINY)
    return np.where(keep, out / np.where(keep, peak, 1.0), 0.0).astype(np.float32)


def to_input_grid(cams: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """ReLU at feature resolution, :func:`upsample` to ``shape``, :func:`normalize`."""
    cams = np.where(np.isfinite(cams), np.maximum(cams, 0.0), np.nan)
    return normalize(upsample(cams, shape))
