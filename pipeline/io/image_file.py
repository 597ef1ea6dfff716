"""2D image files: PNG, JPEG and TIFF radiographs, as public archives ship them.

NIH ChestX-ray14 (PNG), CheXpert and MIMIC-CXR-JPG (JPEG), PadChest (16-bit PNG) and the
COVID-19 image collection (JPEG/PNG, gray, RGB, RGBA and palette) store images that were
already windowed for display. Contract, as for DICOM (:mod:`pipeline.io.dicom_image`):
:func:`read_image_file` returns ``(image, meta)`` with ``image`` float32 ``(H, W)`` in [0, 1]
where 1 is displayed white, after, in this order:

1. format check by content (magic bytes), never by file extension;
2. a size check before decoding (``max_pixel_bytes``, plus PIL's own decompression-bomb limit);
3. full decoding (a truncated or corrupt file is rejected, never half-filled);
4. the EXIF/TIFF Orientation tag (phone photos and some exports are stored rotated);
5. frame choice of multi-page TIFFs (``frame`` policy, as for multi-frame DICOM);
6. conversion to one gray channel (the colour rule below);
7. intensity: ``window="auto"`` keeps the values **as stored** (``value / (2**bits - 1)``), since
   such files are display-ready; ``"percentile"`` clips at percentiles; ``(center, width)``
   windows in stored units (0-255 for 8-bit files).

Colour rule: palette images are expanded to RGB(A); alpha is composited over black (air is
black on a radiograph); RGB is reduced to luminance with ITU-R BT.601 weights (as for RGB
DICOM). Many archived radiographs are photos or scans of film with a colour cast (blue, purple,
sepia): their pixels still lie on one line in RGB space. An image whose pixel variance off its
main axis (1 minus the first principal component's share) exceeds ``max_colour_share`` is truly
coloured (a clinical photo, a screenshot with a colour map) and is rejected with code
``colour``. On the COVID-19 collection (430 RGB/RGBA/palette files) the largest off-axis share of a real,
tinted radiograph was 0.028; the default limit is 0.1.

16-bit files: detectors store 10-16 significant bits in a 16-bit container and PNG rarely says
how many (PIL does not expose ``sBIT``), so ``bits`` is the smallest of 8, 10, 12, 14 and 16 that
holds the image's maximum, recorded as ``bits_stored``.

``meta`` holds only technical attributes (format, mode, bits, size, orientation applied, colour
handling); no text chunks, EXIF or XMP content is read into it (they may hold identifiers).
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.errors import InputRejected
from pipeline.preprocess.intensity import linear_window, percentile_window

#: Formats read here, by content: name -> magic prefixes.
MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_ORIENTATION_TAG = 0x0112
DEFAULT_MAX_COLOUR_SHARE = 0.1
#: Pixels sampled (at most) for the colour test; the estimate is stable well below this.
_COLOUR_SAMPLE = 200_000


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """``"png"``, ``"jpeg"`` or ``"tiff"`` when the file starts with that format's signature,
    else None (DICOM or anything else: the DICOM reader decides and rejects)."""
    with open(path, "rb") as fh:
        return format_of(fh.read(8))


def format_of(head: bytes) -> str | None:
    """:func:`sniff_format` of a file's first bytes (at least 8)."""
    for name, prefixes in MAGIC.items():
        if head.startswith(prefixes):
            return name
    return None


def read_image_file(
    path: str | os.PathLike[str],
    *,
    window: str | tuple[float, float] = "auto",
    percentiles: tuple[float, float] = (0.5, 99.5),
    frame: str = "middle",
    max_pixel_bytes: int = 1 << 30,
    max_colour_share: float = DEFAULT_MAX_COLOUR_SHARE,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one PNG, JPEG or TIFF file as a display-ready gray image.

    Args:
        path: Image file.
        window: ``"auto"`` (values as stored), ``"percentile"``, or ``(center, width)`` in stored
            units.
        percentiles: Low/high percentiles for ``"percentile"``.
        frame: Page of a multi-page TIFF: ``first``, ``middle``, ``last`` or ``max`` (maximum over
            pages, after the gray conversion).
        max_pixel_bytes: Cap on the decoded size (width x height x bands x bytes per sample).
        max_colour_share: Off-axis colour variance above which the file is rejected as a colour
            image (1 disables the check).

    Returns:
        ``(image, meta)``: float32 ``(H, W)`` in [0, 1] (white = dense) and technical metadata.

    Raises:
        InputRejected: Empty, unknown format, too large, truncated, corrupt, colour, blank.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    fmt = _checked_format(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=[_PIL_FORMATS[fmt]]) as im:
                _check_size(im, max_pixel_bytes)
                pages = _pages(im, frame)
                meta = _base_meta(fmt, im, len(pages))
                grays = []
                for index in pages:
                    im.seek(index)
                    im.load()  # decode now: truncation/corruption surfaces here, as a typed error
                    orientation = int(im.getexif().get(_ORIENTATION_TAG, 1) or 1)
                    page = ImageOps.exif_transpose(im) if orientation != 1 else im
                    gray, details = _to_gray(page, max_colour_share)
                    grays.append(gray)
                meta.update(details, exif_orientation=orientation)
    except InputRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputRejected("image exceeds PIL's decompression-bomb pixel limit", code="too_large") from None
    except UnidentifiedImageError:
        raise InputRejected(f"corrupt {fmt.upper()} file (PIL cannot identify it)", code="corrupt") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        text = str(exc).lower()
        if "truncated" in text or isinstance(exc, EOFError):
            raise InputRejected(f"truncated {fmt.upper()} file", code="truncated") from None
        raise InputRejected(f"corrupt {fmt.upper()} file ({type(exc).__name__})", code="corrupt") from None
    values = grays[0] if len(grays) == 1 else np.maximum.reduce(grays)
    image, meta["voi"] = _intensity(values, meta, window=window, percentiles=percentiles)
    image = np.ascontiguousarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        raise InputRejected("non-finite values in the image", code="bad_pixels")
    if float(image.max() - image.min()) < 1e-6:
        raise InputRejected("image is constant (blank or window outside data)", code="blank")
    return image, meta


def _checked_format(path: Path) -> str:
    try:
        size = path.stat().st_size
        fmt = sniff_format(path)
    except OSError as exc:
        raise InputRejected(f"cannot read file ({type(exc).__name__})", code="unreadable") from None
    if size == 0:
        raise InputRejected("empty file (0 bytes)", code="empty")
    if fmt is None:
        raise InputRejected("not a PNG, JPEG or TIFF file (no signature)", code="unsupported_format")
    return fmt


def _check_size(im: Any, max_pixel_bytes: int) -> None:
    width, height = im.size
    bands = len(im.getbands())
    depth = 2 if im.mode.startswith("I;16") else 4 if im.mode in ("I", "F") else 1
    pages = int(getattr(im, "n_frames", 1) or 1)
    declared = width * height * bands * depth
    if width <= 0 or height <= 0:
        raise InputRejected(f"invalid image dimensions {width}x{height}", code="bad_dimensions")
    if declared > max_pixel_bytes:
        raise InputRejected(
            f"declared image size {declared} bytes per page ({pages} page(s)) exceeds "
            f"max_pixel_bytes={max_pixel_bytes}", code="too_large")


def _pages(im: Any, frame: str) -> list[int]:
    n = int(getattr(im, "n_frames", 1) or 1)
    if frame == "first":
        return [0]
    if frame == "last":
        return [n - 1]
    if frame == "middle":
        return [n // 2]
    if frame == "max":
        return list(range(n))
    raise ValueError(f"frame must be one of ['first', 'last', 'max', 'middle']. Received: {frame!r}")


def _base_meta(fmt: str, im: Any, pages: int) -> dict[str, Any]:
    width, height = im.size
    return {"format": fmt, "mode": im.mode, "rows": int(height), "columns": int(width),
            "frames": int(getattr(im, "n_frames", 1) or 1), "frame_used": pages if pages > 1 else 0}


def _to_gray(im: Any, max_colour_share: float) -> tuple[np.ndarray, dict[str, Any]]:
    """One page -> gray values (integers as stored, or float for ``F``) and how it was made."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im.convert("L")), {"bits_stored": 8, "colour": "gray"}
    if mode == "L":
        return np.asarray(im), {"bits_stored": 8, "colour": "gray"}
    if mode == "LA":
        la = np.asarray(im).astype(np.float32)
        return la[..., 0] * (la[..., 1] / 255.0), {"bits_stored": 8, "colour": "gray_alpha_over_black"}
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            return values.astype(np.float32), {"bits_stored": 32, "colour": "gray"}
        return values.astype(np.uint16), {"bits_stored": _bits_for(int(values.max())), "colour": "gray"}
    if mode == "F":
        return np.asarray(im, dtype=np.float32), {"bits_stored": 32, "colour": "gray"}
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode not in ("RGB", "RGBA"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    rgba = np.asarray(im).astype(np.float32)
    rgb, colour = rgba[..., :3], "rgb_luminance"
    if rgba.shape[-1] == 4 and float(rgba[..., 3].min()) < 255.0:
        rgb = rgb * (rgba[..., 3:4] / 255.0)
        colour = "rgba_luminance_over_black"
    share = colour_share(rgb)
    if share > max_colour_share:
        raise InputRejected(
            f"colour image (off-axis colour variance {share:.2f} > max_colour_share "
            f"{max_colour_share}): a photo or screen capture, not a radiograph", code="colour")
    return rgb @ _LUMA, {"bits_stored": 8, "colour": colour, "colour_share": round(share, 4)}


def colour_share(rgb: np.ndarray) -> float:
    """Share of RGB pixel variance off the first principal axis: 0 for gray or a uniform tint
    (all pixels on one line through RGB space), larger for truly coloured content."""
    flat = rgb.reshape(-1, 3)
    step = max(1, flat.shape[0] // _COLOUR_SAMPLE)
    sample = flat[::step].astype(np.float64)
    cov = np.cov(sample, rowvar=False)
    total = float(np.trace(cov))
    if total <= 1e-9:
        return 0.0
    return float(max(0.0, 1.0 - np.linalg.eigvalsh(cov)[-1] / total))


def _bits_for(maximum: int) -> int:
    for bits in (8, 10, 12, 14, 16):
        if maximum < (1 << bits):
            return bits
    return 16


def _intensity(values: np.ndarray, meta: dict[str, Any], *, window: str | tuple[float, float],
               percentiles: tuple[float, float]) -> tuple[np.ndarray, str]:
    if isinstance(window, tuple | list):
        return linear_window(values, float(window[0]), float(window[1])), "explicit"
    if window == "percentile":
        return percentile_window(values, *percentiles), "percentile"
    if window != "auto":
        raise ValueError(f"window must be 'auto', 'percentile' or (center, width). Received: {window!r}")
    if values.dtype.kind == "f" and meta["bits_stored"] == 32:
        lo, hi = float(np.min(values)), float(np.max(values))
        if lo >= 0.0 and hi <= 1.0:  # a float image already in [0, 1]
            return values.astype(np.float32), "as_stored"
        return percentile_window(values, *percentiles), "percentile"  # no stored scale to use
    scale = float((1 << int(meta["bits_stored"])) - 1)
    return np.clip(values.astype(np.float32) / scale, 0.0, 1.0), "as_stored"
