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
        ``pad_top``/``pad_left`` offsets, so a point maps back as ``(y - pad_top) / scale``.
    """
    import cv2

    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be (H, W) or (H, W, C) and non-empty. Received: {image.shape}")
    out_h, out_w = int(size[0]), int(size[1])
    in_h, in_w = image.shape[:2]
    scale = min(out_h / in_h, out_w / in_w)
    new_h = max(1, min(out_h, round(in_h * scale)))
    new_w = max(1, min(out_w, round(in_w * scale)))
    if mode == "mask":
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    if image.ndim == 3 and resized.ndim == 2:  # cv2 drops a single channel axis
        resized = resized[..., None]
    pad_top = (out_h - new_h) // 2
    pad_left = (out_w - new_w) // 2
    out = np.full((out_h, out_w) + image.shape[2:], pad_value, dtype=image.dtype)
    out[pad_top:pad_top + new_h, pad_left:pad_left + new_w] = resized
    return out, {"scale": float(scale), "pad_top": int(pad_top), "pad_left": int(pad_left)}
