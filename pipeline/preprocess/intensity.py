"""Intensity mapping to [0, 1]: explicit windows and percentile clipping."""

from __future__ import annotations

import numpy as np


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map ``[center - width/2, center + width/2]`` linearly to [0, 1] and clip.

    Args:
        values: Array in physical units (HU for CT, modality-LUT output for X-ray).
        center: Window centre, same units.
        width: Window width, same units; must be > 0.

    Returns:
        float32 array in [0, 1], same shape as ``values`` (input not modified).
    """
    if width <= 0:
        raise ValueError(f"window width must be > 0. Received: {width}")
    low = center - width / 2.0
    out = (np.asarray(values, dtype=np.float32) - np.float32(low)) / np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)


def percentile_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Clip to the ``low``/``high`` percentiles of ``values`` and scale to [0, 1].

    Robust to a few saturated pixels (collimator edges, burned-in labels). A constant image maps to
    all zeros.

    Returns:
        float32 array in [0, 1].
    """
    values = np.asarray(values, dtype=np.float32)
    lo, hi = np.percentile(values, [low, high])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(values, dtype=np.float32)
    out = (values - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)
