"""Pixels for the report: colour map, overlays, outlines, PNG data URIs and packed volumes.

The heatmap is drawn with the ``turbo`` colour map and a per-pixel opacity equal to the
heatmap value (0 = transparent, 1 = opaque), scaled by the page's opacity slider. So
:func:`render_overlay` at ``opacity`` gives the same picture as the browser at that slider
position, and regions the model ignored leave the image untouched.
"""

from __future__ import annotations

import base64
import functools
import gzip
import io

import numpy as np

#: Colour of the ground-truth lesion outline (RGB).
OUTLINE_RGB = (0, 255, 128)
COLORMAP = "turbo"


@functools.lru_cache(maxsize=1)
def colormap_lut() -> np.ndarray:
    """The heatmap colour map as a ``(256, 3)`` uint8 lookup table."""
    from matplotlib import colormaps

    rgba = colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))
    return np.round(rgba[:, :3] * 255.0).astype(np.uint8)


def quantize(heatmap: np.ndarray) -> np.ndarray:
    """Heatmap in [0, 1] (clipped) -> uint8 0..255."""
    return np.round(np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def heat_rgba(heatmap: np.ndarray) -> np.ndarray:
    """``(H, W)`` heatmap -> ``(H, W, 4)`` uint8 RGBA: colour map, alpha = heatmap value."""
    q = quantize(heatmap)
    return np.concatenate([colormap_lut()[q], q[..., None]], axis=-1)


def outline(mask: np.ndarray) -> np.ndarray:
    """Boolean boundary of a 2D mask (mask pixels with a 4-neighbour outside it or the image)."""
    from scipy import ndimage

    inside = np.asarray(mask) != 0
    return inside & ~ndimage.binary_erosion(inside, border_value=0)


def outline_rgba(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` mask -> ``(H, W, 4)`` uint8 RGBA with the boundary opaque, the rest clear."""
    edge = outline(mask)
    out = np.zeros((*edge.shape, 4), dtype=np.uint8)
    out[edge] = (*OUTLINE_RGB, 255)
    return out


def render_overlay(image: np.ndarray, heatmap: np.ndarray | None, *, opacity: float = 0.5,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """Blend a heatmap (and optionally a lesion outline) over a grey image.

    Args:
        image: ``(H, W)`` uint8 windowed image.
        heatmap: ``(H, W)`` float in [0, 1] (clipped), or ``None`` for the plain image.
        opacity: Global heatmap opacity in [0, 1]; the per-pixel opacity is
            ``opacity * heatmap``.
        mask: Optional ``(H, W)`` lesion mask whose outline is drawn on top.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: Shapes differ, the image is not 2D uint8, or ``opacity`` is outside [0, 1].
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"image must be a 2D uint8 array. Received: shape={image.shape}, "
                         f"dtype={image.dtype}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1]. Received: {opacity!r}")
    rgb = np.repeat(image[..., None].astype(np.float32), 3, axis=-1)
    if heatmap is not None:
        _same_shape(image, heatmap, "heatmap")
        rgba = heat_rgba(heatmap).astype(np.float32)
        alpha = opacity * rgba[..., 3:] / 255.0
        rgb = rgb * (1.0 - alpha) + rgba[..., :3] * alpha
    if mask is not None:
        _same_shape(image, mask, "mask")
        rgb[outline(mask)] = OUTLINE_RGB
    return np.round(rgb).astype(np.uint8)


def _same_shape(image: np.ndarray, other: np.ndarray, name: str) -> None:
    if np.shape(other) != image.shape:
        raise ValueError(f"{name} must have the image's shape {image.shape}. "
                         f"Received: {np.shape(other)}")


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 pixels as PNG (deterministic)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def png_data_uri(pixels: np.ndarray) -> str:
    """``data:image/png;base64,...`` for uint8 pixels (see :func:`png_bytes`)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


def thumbnail_uri(rgb: np.ndarray, *, max_side: int = 96) -> str:
    """A small PNG data URI of an RGB image, longest side ``max_side`` pixels at most."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb))
    img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return png_data_uri(np.asarray(img))


@functools.lru_cache(maxsize=4)
def colorbar_uri(*, width: int = 256, height: int = 12) -> str:
    """PNG data URI of the heatmap colour map, low (left) to high (right)."""
    lut = colormap_lut()
    ramp = lut[np.linspace(0, 255, width).round().astype(np.intp)]
    return png_data_uri(np.repeat(ramp[None], height, axis=0))


def pack_volume(volume: np.ndarray) -> str:
    """uint8 volume -> base64 of its gzip-compressed C-order bytes (mtime 0: deterministic)."""
    raw = np.ascontiguousarray(volume, dtype=np.uint8).tobytes()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def peak_index(heatmap: np.ndarray | None, mask: np.ndarray | None, shape: tuple[int, ...]
               ) -> tuple[int, ...]:
    """Where a viewer should open: along each axis, the slice holding the most heatmap mass
    (robust to a flat maximum at the border, unlike the arg-max voxel); else the lesion's centre;
    else the middle of the volume."""
    if heatmap is not None and float(np.max(heatmap)) > 0.0:
        heat = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, 1.0)
        axes = range(heat.ndim)
        return tuple(int(np.argmax(heat.sum(axis=tuple(a for a in axes if a != k)))) for k in axes)
    if mask is not None and np.any(mask):
        return tuple(int(round(float(c))) for c in np.argwhere(np.asarray(mask) != 0).mean(axis=0))
    return tuple(n // 2 for n in shape)
