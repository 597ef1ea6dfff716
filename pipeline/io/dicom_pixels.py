"""DICOM Pixel Data: checked before decoding, then decoded through pydicom's plugins.

:func:`check_pixel_data` refuses what must not be decoded (a non-image SOP class, missing, float
or truncated Pixel Data, a declared size above the decompression-bomb cap
:data:`DEFAULT_MAX_PIXEL_BYTES`); :func:`decode_pixels` decodes all frames or one, with the
fastest installed plugin per transfer syntax first (:data:`PREFERRED_PLUGINS`), and always
returns ``(frames, rows, cols[, samples])`` (:func:`pixel_geometry`). Opening the file safely is
:mod:`pipeline.io.dicom`; the 2D image pipeline (modality LUT, VOI, MONOCHROME1) is
:mod:`pipeline.io.dicom_image`. Every refusal raises :class:`~pipeline.io.errors.InputRejected`
with a one-line reason that holds no header values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.dicom import has_element, header_value, is_image_sop
from pipeline.io.errors import InputRejected

#: Default cap on decoded pixel bytes for one object (decompression-bomb guard): 1 GiB.
DEFAULT_MAX_PIXEL_BYTES = 1 << 30

#: Decoding plugin tried first per transfer syntax, when installed: the fastest measured on the
#: demo's files (``python bench/decoders.py``). pydicom's own first choice is slower for
#: several syntaxes: pure-Python RLE (8x slower than pylibjpeg-rle), GDCM for JPEG-LS (1.7x
#: slower than CharLS via pyjpegls), GDCM for JPEG baseline (2.5x slower than libjpeg-turbo via
#: Pillow) and for lossy JPEG 2000 (1.4x slower than OpenJPEG via pylibjpeg).
#: The "pylibjpeg" plugin decodes the JPEG 1992 syntaxes (.50/.51/.57/.70) only with the GPL-3.0
#: pylibjpeg-libjpeg, an opt-in extra (``jpeg-gpl``): by default GDCM (BSD) decodes them, and it
#: is also the faster one for JPEG Lossless (3.0 vs 4.6-4.9 ms per 12-bit radiograph).
PREFERRED_PLUGINS: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.5": ("pylibjpeg",),  # RLE Lossless: pylibjpeg-rle
    "1.2.840.10008.1.2.4.50": ("pillow", "pylibjpeg"),  # JPEG Baseline 8-bit
    "1.2.840.10008.1.2.4.51": ("gdcm", "pylibjpeg"),  # JPEG Extended 12-bit (Pillow: 8-bit only)
    "1.2.840.10008.1.2.4.57": ("gdcm", "pylibjpeg"),  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": ("gdcm", "pylibjpeg"),  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": ("pyjpegls",),  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": ("pyjpegls",),  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90": ("gdcm", "pylibjpeg"),  # JPEG 2000 Lossless: GDCM ~10% ahead
    "1.2.840.10008.1.2.4.91": ("pylibjpeg",),  # JPEG 2000
}

#: :data:`PREFERRED_PLUGINS` changes in a worker of a pool that already keeps every core busy
#: (:func:`prefer_single_threaded_decoders`): GDCM decodes JPEG 2000 with OpenJPEG's thread
#: pool (1.6 cores of 2 for one 1k x 1k lossless radiograph), which wins alone (143 vs 190 ms)
#: but only contends there: single-threaded pylibjpeg-openjpeg costs 20% less CPU per file.
THROUGHPUT_PLUGINS: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.90": ("pylibjpeg", "gdcm"),  # JPEG 2000 Lossless
}
_preferred: dict[str, tuple[str, ...]] = dict(PREFERRED_PLUGINS)


def prefer_single_threaded_decoders() -> None:
    """Switch this process to :data:`THROUGHPUT_PLUGINS` (for decoding workers, one per core)."""
    _preferred.update(THROUGHPUT_PLUGINS)


def pixel_geometry(ds: Any) -> tuple[int, int, int, int, int]:
    """Return ``(frames, rows, columns, samples, bits_allocated)`` from the header.

    Raises:
        InputRejected: A dimension is missing, zero or negative.
    """
    try:
        rows = int(header_value(ds, "Rows"))
        cols = int(header_value(ds, "Columns"))
        bits = int(header_value(ds, "BitsAllocated"))
        samples = int(header_value(ds, "SamplesPerPixel", 1) or 1)
        frames = int(header_value(ds, "NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        raise InputRejected("missing or malformed image pixel module (Rows/Columns/BitsAllocated)",
                            code="bad_header") from None
    if min(rows, cols, bits, samples, frames) <= 0:
        raise InputRejected(
            f"zero or negative image dimension (rows={rows}, columns={cols}, frames={frames})",
            code="bad_dimensions",
        )
    if bits not in (1, 8, 16, 32, 64):
        raise InputRejected(f"unsupported BitsAllocated={bits}", code="bad_header")
    return frames, rows, cols, samples, bits


def check_pixel_data(ds: Any, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES
                     ) -> tuple[int, int, int, int, int]:
    """Validate Pixel Data before decoding: present, sane size, not truncated.

    Args:
        ds: Dataset read with pixels.
        max_pixel_bytes: Cap on the decoded size (decompression-bomb guard).

    Returns:
        :func:`pixel_geometry` of ``ds`` (pass it on to :func:`decode_pixels`).

    Raises:
        InputRejected: Non-image SOP class, no Pixel Data, absurd dimensions, truncated data.
    """
    if not is_image_sop(ds):
        raise InputRejected("non-image SOP class (e.g. structure set, report, presentation state)",
                            code="not_image")
    if not has_element(ds, "PixelData"):
        if has_element(ds, "FloatPixelData") or has_element(ds, "DoubleFloatPixelData"):
            raise InputRejected("float pixel data is not supported", code="not_image")
        if _pixel_tag_in_file(ds):
            # pydicom drops an element cut off by end-of-file with only a warning
            raise InputRejected("truncated pixel data (element cut off at end of file)",
                                code="truncated")
        raise InputRejected("no PixelData element (not an image)", code="not_image")
    frames, rows, cols, samples, bits = pixel_geometry(ds)
    values = frames * rows * cols * samples
    if str(header_value(ds, "PhotometricInterpretation", "")) == "YBR_FULL_422":
        values = values * 2 // 3  # chroma subsampled: 2 samples per pixel on disk (C.7.6.3.1.2)
    expected = values * bits // 8 if bits >= 8 else (values + 7) // 8
    if expected > max_pixel_bytes:
        raise InputRejected(
            f"declared image size {expected} bytes exceeds the cap of {max_pixel_bytes} "
            "(decompression-bomb guard)",
            code="too_large",
        )
    ts = getattr(ds, "file_meta", {}).get("TransferSyntaxUID", None)
    if ts is None or not ts.is_compressed:
        actual = len(header_value(ds, "PixelData"))
        if actual < expected:
            raise InputRejected(
                f"truncated pixel data ({actual} of {expected} bytes)", code="truncated"
            )
    return frames, rows, cols, samples, bits


def _pixel_tag_in_file(ds: Any) -> bool:
    """Whether the file on disk contains a Pixel Data tag although the dataset has none."""
    path = getattr(ds, "filename", None)
    if not isinstance(path, str | os.PathLike):
        return False
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return b"\xe0\x7f\x10\x00" in data or b"\x7f\xe0\x00\x10" in data


def decode_pixels(ds: Any, *, frame: int | None = None,
                  max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
                  geometry: tuple[int, int, int, int, int] | None = None) -> np.ndarray:
    """Decode Pixel Data to an array through pydicom's decoder plugins.

    pydicom 3 masks unused high bits (BitsStored < BitsAllocated) and sign-extends signed data.
    The returned shape is always ``(frames, rows, cols[, samples])`` (a single frame gets a
    leading axis of 1, see pydicom issue #1066); YBR colour data is converted to RGB.

    The plugin is chosen by :data:`PREFERRED_PLUGINS` when installed (the fastest one measured
    for the transfer syntax), else pydicom's own order; if the preferred plugin refuses the
    data, pydicom's own order is tried before the file is called corrupt.

    Args:
        ds: Dataset read with :func:`open_dicom`.
        frame: Decode only this frame (0-based; result has a leading axis of 1) instead of all
            frames: a multi-frame object then costs one frame's decoding, not all of them.
        max_pixel_bytes: Decompression-bomb cap, see :func:`check_pixel_data`.
        geometry: What :func:`check_pixel_data` returned for ``ds`` with the same cap, when the
            caller has just run it (skips a second pass over the header).

    Raises:
        InputRejected: See :func:`check_pixel_data`; no available decoder for the transfer
            syntax (``missing_codec``); corrupt data the decoder refuses (``decode_error``).
    """
    if geometry is None:
        geometry = check_pixel_data(ds, max_pixel_bytes=max_pixel_bytes)
    frames, rows, cols, samples, _ = geometry
    ts = ds.file_meta.get("TransferSyntaxUID", None)
    if ts is None:
        raise InputRejected("no Transfer Syntax UID in the file meta information", code="bad_header")
    if frame is not None and not 0 <= frame < frames:
        raise ValueError(f"frame must be in [0, {frames - 1}]. Received: {frame}")
    arr = native_pixels(ds, ts, frame, geometry)
    if arr is None:
        if not _decoder_available(ts):
            raise InputRejected(_codec_reason(ts), code="missing_codec")
        arr = _decode(ds, ts, frame)
    if frame is not None:
        frames = 1
    expected_shape = (frames, rows, cols) + ((samples,) if samples > 1 else ())
    if arr.size != int(np.prod(expected_shape)):
        raise InputRejected(
            f"decoded {arr.size} values but the header declares {int(np.prod(expected_shape))}",
            code="decode_error",
        )
    return arr.reshape(expected_shape)


#: Uncompressed little-endian transfer syntaxes (Implicit and Explicit VR): what
#: :func:`native_pixels` reads.
NATIVE_LITTLE_ENDIAN = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})


def native_pixels(ds: Any, ts: Any, frame: int | None,
                  geometry: tuple[int, int, int, int, int]) -> np.ndarray | None:
    """Single-sample uncompressed little-endian Pixel Data as pydicom's decoder returns it (the
    same values and dtype, writable, 1-D), or None for anything else (pydicom decodes that).

    Why not pydicom here: its decoder sets up and validates a runner of 40-odd options on every
    call, 90 us for a 28 x 28 MedMNIST-size file, where reading the values is a copy of the
    bytes (10 us); on small files that set-up was an eighth of the ingest's work per file.
    What pydicom does to these values is done here too, and a test compares the two over
    random bit depths, signs, garbage high bits and frames: unused high bits (Bits Stored <
    Bits Allocated) are cleared, or sign-extended for signed data (PS3.5 8.1.1). Headers that
    pydicom would refuse (Bits Stored above Bits Allocated, too little data) go to pydicom,
    which gives the reason.
    """
    frames, rows, cols, samples, bits = geometry
    if str(ts) not in NATIVE_LITTLE_ENDIAN or samples != 1 or bits not in (8, 16, 32):
        return None
    try:
        stored = int(header_value(ds, "BitsStored"))
        signed = int(header_value(ds, "PixelRepresentation"))
        data = header_value(ds, "PixelData")
    except (AttributeError, TypeError, ValueError):
        return None
    if not 1 <= stored <= bits or signed not in (0, 1) or not isinstance(data, bytes | bytearray):
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    count = rows * cols * (frames if frame is None else 1)
    offset = 0 if frame is None else frame * rows * cols * dtype.itemsize
    if len(data) < offset + count * dtype.itemsize:
        return None
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).copy()
    if stored < bits:
        np.left_shift(arr, bits - stored, out=arr)
        np.right_shift(arr, bits - stored, out=arr)
    return arr


def _decode(ds: Any, ts: Any, frame: int | None) -> np.ndarray:
    """Decode with the preferred plugin, falling back to pydicom's order (all its plugins)."""
    from pydicom.pixels.decoders.base import get_decoder

    decoder = get_decoder(ts)
    preferred = [p for p in _preferred.get(str(ts), ()) if p in decoder.available_plugins]
    last: Exception | None = None
    for plugin in (*preferred, ""):  # "" = every available plugin, in pydicom's order
        try:
            arr, _ = decoder.as_array(ds, index=frame, decoding_plugin=plugin, as_rgb=True)
            return arr
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # the decoder exists, so this is corrupt or truncated data
            last = exc
    raise InputRejected(f"pixel data could not be decoded ({type(last).__name__}); "
                        "corrupt or truncated", code="decode_error") from None


def _decoder_available(ts: Any) -> bool:
    """True if pydicom has a decoder with at least one installed plugin for ``ts``."""
    from pydicom.pixels.decoders.base import get_decoder

    try:
        return bool(get_decoder(ts).is_available)
    except NotImplementedError:
        return False


def _codec_reason(ts: Any) -> str:
    name = getattr(ts, "name", None) or str(ts)
    return (f"no installed decoder for transfer syntax '{name}' ({ts}); install the pylibjpeg, "
            "pylibjpeg-openjpeg, pyjpegls or python-gdcm plugin")
