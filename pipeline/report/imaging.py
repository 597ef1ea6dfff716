"""Pixels for the report: colour map, overlays, outlines, PNG data URIs and packed images.

The heatmap is drawn with the ``turbo`` colour map and a per-pixel opacity equal to the
heatmap value (0 = transparent, 1 = opaque), scaled by the page's opacity slider. So
:func:`render_overlay` at ``opacity`` gives the same picture as the browser at that slider
position, and regions the model ignored leave the image untouched.

Case pages embed each array once, as an 8-bit greyscale PNG that the page's script inflates and
unfilters itself (:func:`pack_png`; 16-bit levels as two byte planes), so it gets every bit:
an ``<img>`` would hand a canvas 8 bits at most. The script colours the heatmap and applies the
window, so a base image is never shipped twice (plain and blended).
"""

from __future__ import annotations

import base64
import functools
import gzip
import io

import numpy as np

from pipeline.report.case import Intensity

#: Colour of the ground-truth lesion outline (RGB).
OUTLINE_RGB = (0, 255, 128)
COLORMAP = "turbo"
#: Levels a radiograph is shipped with for window/level: 12 bits over its full value range (a
#: window 1/16 of the range wide still spans 256 grey levels), about twice the bytes of the 8-bit
#: view; 8-bit sources keep their 256 levels.
RADIOGRAPH_BITS = 12
#: CT window presets, name -> (center, width) in HU.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "Lung": (-600.0, 1500.0), "Mediastinum": (40.0, 400.0), "Bone": (400.0, 1800.0)}


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


def png_bytes(pixels: np.ndarray, *, compress_level: int = 3) -> bytes:
    """Encode ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 pixels as PNG (deterministic)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG",
                                                       compress_level=compress_level)
    return buf.getvalue()


def pack_png(array: np.ndarray) -> str:
    """uint8/uint16 array -> base64 of an 8-bit greyscale PNG, for the page's script to decode.

    The array is stored as an ``(N, W)`` strip (``N`` = product of the leading axes, C order), so
    a volume's slices follow one another and PNG's row filters predict each value from its
    neighbours. A uint16 array becomes two strips stacked, high bytes then low bytes: deflate
    packs the nearly constant high bytes into runs, and the filters predict the low bytes modulo
    256 as well as whole values (no carries between bytes, unlike a 16-bit PNG): about 15%
    smaller than a 16-bit PNG of the same values.
    """
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16) or array.ndim < 2:
        raise ValueError(f"pack_png takes a uint8 or uint16 array of 2 or more dimensions. "
                         f"Received: shape={array.shape}, dtype={array.dtype}")
    strip = array.reshape(-1, array.shape[-1])
    if strip.dtype == np.uint16:
        strip = np.concatenate([(strip >> 8).astype(np.uint8), (strip & 0xFF).astype(np.uint8)])
    return base64.b64encode(png_bytes(strip, compress_level=6)).decode("ascii")


def unpack_png(b64: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`pack_png` (for tests and tools; the page decodes in its script)."""
    from PIL import Image

    strip = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))), dtype=np.uint8)
    rows = int(np.prod(shape[:-1]))
    if strip.shape[0] == 2 * rows:
        return ((strip[:rows].astype(np.uint16) << 8) | strip[rows:]).reshape(shape)
    return strip.reshape(shape)


def radiograph_intensity(full: np.ndarray, shown: np.ndarray, *, bits: int) -> Intensity:
    """A radiograph at :data:`RADIOGRAPH_BITS` (or fewer) bits, with the model's window on it.

    Args:
        full: float ``(H, W)`` in [0, 1]: the source's whole value range mapped linearly
            (after the modality LUT and MONOCHROME1 inversion; white = dense).
        shown: float ``(H, W)`` in [0, 1]: the same image through the model's VOI step.
        bits: Bits the source stores (a cap: an 8-bit file keeps 256 levels).

    Returns:
        Levels over the full range in percent (``unit="%"``), and the linear window that best
        reproduces ``shown`` (least squares over its unclipped pixels); ``exact`` when it does
        to within 1.5 grey levels of 255.
    """
    levels = (1 << max(1, min(int(bits), RADIOGRAPH_BITS))) - 1
    full = np.clip(np.asarray(full, np.float64), 0.0, 1.0)
    shown = np.clip(np.asarray(shown, np.float64), 0.0, 1.0)
    values = np.rint(full * levels).astype(np.uint8 if levels <= 255 else np.uint16)
    center, width = 0.5, 1.0
    inside = (shown > 0.01) & (shown < 0.99)
    if int(inside.sum()) >= 16 and float(np.ptp(full[inside])) > 0:
        slope, intercept = np.polyfit(full[inside], shown[inside], 1)
        if slope > 0:
            low, high = -intercept / slope, (1.0 - intercept) / slope
            center, width = (low + high) / 2, high - low
    fit = np.clip((full - (center - width / 2)) / width, 0.0, 1.0)
    exact = float(np.max(np.abs(fit - shown))) * 255 <= 1.5
    return Intensity(values=values, offset=0.0, scale=100.0 / levels, unit="%",
                     window=(100.0 * center, 100.0 * width), exact=exact)


def hu_intensity(volume: np.ndarray, window: tuple[float, float], *, presets: bool = True
                 ) -> Intensity:
    """A CT volume in whole HU (16 bits above its minimum) with the model's HU window.

    Args:
        volume: HU values (float), any shape.
        window: The model's ``(center, width)`` in HU (exact: the model's window is linear).
        presets: Offer :data:`CT_PRESETS` (only meaningful when the values are HU).
    """
    hu = np.rint(np.asarray(volume, np.float64))
    low = float(hu.min()) if hu.size else 0.0
    values = np.clip(hu - low, 0, 65535).astype(np.uint16)
    return Intensity(values=values, offset=low, scale=1.0, unit="HU",
                     window=(float(window[0]), float(window[1])), exact=True,
                     presets=dict(CT_PRESETS) if presets else {})


def grey_intensity(image: np.ndarray) -> Intensity:
    """The 8-bit image itself as levels 0..255 (no higher-depth source): window/level can only
    narrow the model's window."""
    return Intensity(values=np.asarray(image, np.uint8), offset=0.0, scale=1.0, unit="grey level",
                     window=(127.5, 255.0), exact=True)


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
    """Where a viewer should open: the hottest voxel (arg-max of the heatmap; among voxels tied
    at the maximum, e.g. a plateau clipped at 1, the one nearest their centroid); else the
    lesion's centre; else the middle of the volume."""
    if heatmap is not None and float(np.max(heatmap)) > 0.0:
        heat = np.asarray(heatmap, dtype=np.float32)
        top = np.argwhere(heat >= float(heat.max()) - 1e-6)
        if len(top) == 1:
            return tuple(int(v) for v in top[0])
        centre = top.mean(axis=0)
        return tuple(int(v) for v in top[int(np.argmin(((top - centre) ** 2).sum(axis=1)))])
    if mask is not None and np.any(mask):
        return tuple(int(round(float(c))) for c in np.argwhere(np.asarray(mask) != 0).mean(axis=0))
    return tuple(n // 2 for n in shape)
