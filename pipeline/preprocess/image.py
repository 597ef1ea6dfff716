"""2D geometry: aspect-preserving resize with centred zero padding."""

from __future__ import annotations

from typing import Literal

import numpy as np


def resize_with_pad(
    image: np.ndarray,
    size: tuple[int, int],
    *,
    mode: Literal["image", "mask"] = "image",
    pad_value: float = 0.0,
) -> tuple[np.ndarray, dict]:
    """Resize ``image`` to fit ``size`` keeping its aspect ratio, then pad to exactly ``size``.

    Images are resampled with area averaging when shrinking (no aliasing of fine structure such
    as ribs) and bilinear when enlarging; masks with nearest neighbour so they stay binary and
    aligned with the image resized by the same call.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array.
        size: Target ``(H, W)``.
        mode: ``"image"`` or ``"mask"`` (interpolation choice).
        pad_value: Fill value of the padding.

    Returns:
        ``(resized, geometry)`` where geometry holds ``scale`` (output px per input px) and the
        ``pad_top``/``pad_left`` offsets, so a point maps back as ``(y - pad_top) / scale``
        (:class:`pipeline.preprocess.geometry.PadResize` is the typed form, with the inverse).
    """
    import cv2

    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be (H, W) or (H, W, C) and non-empty. Received: {image.shape}")
    from pipeline.preprocess.geometry import PadResize

    geo = PadResize.fit(image.shape[:2], size)
    new_h, new_w = geo.content_shape
    if mode == "mask":
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if geo.scale < 1 else cv2.INTER_LINEAR
    info = {"scale": geo.scale, "pad_top": geo.pad_top, "pad_left": geo.pad_left}
    if (new_h, new_w) == image.shape[:2]:
        resized = image  # same size: cv2.resize would only copy it
    else:
        resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
        if image.ndim == 3 and resized.ndim == 2:  # cv2 drops a single channel axis
            resized = resized[..., None]
    if geo.output_shape == (new_h, new_w):  # nothing to pad: a new array, never the input
        return (resized.copy() if resized is image else resized), info
    out = np.full(geo.output_shape + image.shape[2:], pad_value, dtype=image.dtype)
    out[geo.pad_top:geo.pad_top + new_h, geo.pad_left:geo.pad_left + new_w] = resized
    return out, info
