"""Safe DICOM opening and 2D image reading.

Reading order follows PS3.3 C.11 (and what pydicom, dcm2niix and MONAI users expect):
stored values -> modality LUT (RescaleSlope/Intercept or Modality LUT Sequence) -> VOI LUT or
window -> MONOCHROME1 inversion. Everything that makes a file unusable raises
:class:`~pipeline.io.errors.InputRejected` with a one-line reason that holds no header values.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.errors import InputRejected

log = logging.getLogger(__name__)

#: Preamble prefixes of executables: a DICOM/PE or DICOM/ELF polyglot (CVE-2019-11687).
EXECUTABLE_MAGIC: tuple[bytes, ...] = (b"MZ", b"\x7fELF", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe")

#: Deepest sequence nesting accepted (real objects rarely exceed 10; SR trees reach ~20).
MAX_SEQUENCE_DEPTH = 64

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

#: SOP classes that are DICOM but never images (RT structure sets, SR, presentation states...).
NON_IMAGE_SOP_PREFIXES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set
    "1.2.840.10008.5.1.4.1.1.88.",  # Structured reports
    "1.2.840.10008.5.1.4.1.1.11.",  # Presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # Raw data, spatial registration, segmentation-free objects
    "1.2.840.10008.5.1.4.1.1.104.",  # Encapsulated PDF/CDA
)


def _check_preamble(path: Path) -> bool:
    """Return True if the file has the standard 128-byte preamble + ``DICM``.

    Raises:
        InputRejected: The file is empty, too short, or its preamble is an executable header.
    """
    with open(path, "rb") as fh:
        head = fh.read(132)
    if not head:
        raise InputRejected("empty file (0 bytes)", code="empty")
    if head.startswith(EXECUTABLE_MAGIC):
        raise InputRejected(
            "preamble starts with an executable header (DICOM polyglot, CVE-2019-11687)",
            code="polyglot",
        )
    return len(head) == 132 and head[128:132] == b"DICM"


def open_dicom(path: str | os.PathLike[str], *, stop_before_pixels: bool = False) -> Any:
    """Open a DICOM file defensively.

    Files with the standard preamble are read normally. A file without the ``DICM`` marker is
    accepted only if it parses as a raw dataset that carries an SOP Class UID (an explicit,
    logged fallback, as old ACR-NEMA-style exports need); anything else (a PNG renamed
    ``.dcm``, text, garbage) is rejected, never silently forced.

    Args:
        path: File to open.
        stop_before_pixels: Skip reading Pixel Data (header-only scans).

    Returns:
        A ``pydicom.Dataset``.

    Raises:
        InputRejected: Not DICOM, polyglot preamble, unparsable or pathologically nested header.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        has_preamble = _check_preamble(path)
    except OSError as exc:
        raise InputRejected(f"cannot read file ({type(exc).__name__})", code="unreadable") from None
    try:
        if has_preamble:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        else:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
            if "SOPClassUID" not in ds or len(ds) < 3:
                raise InputRejected(
                    "not a DICOM file (no 'DICM' marker and no parsable dataset)", code="not_dicom"
                )
            if "TransferSyntaxUID" not in ds.file_meta:
                ds.file_meta.TransferSyntaxUID = _syntax_of(ds)
            log.info("%s: no DICOM preamble; read as a raw dataset (explicit fallback)", path.name)
    except InputRejected:
        raise
    except RecursionError:
        raise InputRejected("header has pathologically deep nested sequences", code="nested") from None
    except InvalidDicomError:
        raise InputRejected("not a DICOM file", code="not_dicom") from None
    except Exception as exc:  # pydicom raises many types for broken headers
        raise InputRejected(f"unparsable DICOM header ({type(exc).__name__})", code="bad_header") from None
    _touch_all_elements(ds)
    return ds


def _syntax_of(ds: Any) -> str:
    """The uncompressed transfer syntax a raw (meta-less) dataset was actually parsed with."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _touch_all_elements(ds: Any, depth: int = 0) -> None:
    """Force-parse every sequence now so broken or deeply nested headers fail here, cleanly.

    pydicom parses sequences lazily; without this a RecursionError could escape much later.
    Only sequence elements are converted (plain elements stay raw until used), which keeps this
    check cheap: it is run on every file.
    """
    if depth > MAX_SEQUENCE_DEPTH:
        raise InputRejected("header has pathologically deep nested sequences", code="nested")
    try:
        for tag in list(ds.keys()):
            raw = ds.get_item(tag)
            vr = getattr(raw, "VR", None) or _dictionary_vr(tag)  # implicit VR: from the dictionary
            if vr != "SQ" and getattr(raw, "length", 0) != 0xFFFFFFFF:
                continue
            elem = ds[tag]
            if elem.VR == "SQ":
                for item in elem.value:
                    _touch_all_elements(item, depth + 1)
    except InputRejected:
        raise
    except RecursionError:
        raise InputRejected("header has pathologically deep nested sequences", code="nested") from None
    except Exception as exc:
        raise InputRejected(f"unparsable DICOM header ({type(exc).__name__})", code="bad_header") from None


def _dictionary_vr(tag: Any) -> str | None:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:  # private or unknown tag
        return None


def is_image_sop(ds: Any) -> bool:
    """True unless the SOP class is a known non-image object."""
    uid = str(ds.get("SOPClassUID", ""))
    return not any(uid.startswith(p) for p in NON_IMAGE_SOP_PREFIXES)


def pixel_geometry(ds: Any) -> tuple[int, int, int, int, int]:
    """Return ``(frames, rows, columns, samples, bits_allocated)`` from the header.

    Raises:
        InputRejected: A dimension is missing, zero or negative.
    """
    try:
        rows = int(ds.Rows)
        cols = int(ds.Columns)
        bits = int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
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


def check_pixel_data(ds: Any, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> int:
    """Validate Pixel Data before decoding: present, sane size, not truncated.

    Args:
        ds: Dataset read with pixels.
        max_pixel_bytes: Cap on the decoded size (decompression-bomb guard).

    Returns:
        The expected decoded size in bytes.

    Raises:
        InputRejected: Non-image SOP class, no Pixel Data, absurd dimensions, truncated data.
    """
    if not is_image_sop(ds):
        raise InputRejected("non-image SOP class (e.g. structure set, report, presentation state)",
                            code="not_image")
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise InputRejected("float pixel data is not supported", code="not_image")
        if _pixel_tag_in_file(ds):
            # pydicom drops an element cut off by end-of-file with only a warning
            raise InputRejected("truncated pixel data (element cut off at end of file)",
                                code="truncated")
        raise InputRejected("no PixelData element (not an image)", code="not_image")
    frames, rows, cols, samples, bits = pixel_geometry(ds)
    values = frames * rows * cols * samples
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
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
        actual = len(ds.PixelData)
        if actual < expected:
            raise InputRejected(
                f"truncated pixel data ({actual} of {expected} bytes)", code="truncated"
            )
    return expected


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
                  max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES, checked: bool = False) -> np.ndarray:
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
        checked: The caller has just run :func:`check_pixel_data` on ``ds`` with the same cap
            (skips a second pass over the header).

    Raises:
        InputRejected: See :func:`check_pixel_data`; no available decoder for the transfer
            syntax (``missing_codec``); corrupt data the decoder refuses (``decode_error``).
    """
    if not checked:
        check_pixel_data(ds, max_pixel_bytes=max_pixel_bytes)
    frames, rows, cols, samples, _ = pixel_geometry(ds)
    ts = ds.file_meta.get("TransferSyntaxUID", None)
    if ts is None:
        raise InputRejected("no Transfer Syntax UID in the file meta information", code="bad_header")
    if not _decoder_available(ts):
        raise InputRejected(_codec_reason(ts), code="missing_codec")
    if frame is not None and not 0 <= frame < frames:
        raise ValueError(f"frame must be in [0, {frames - 1}]. Received: {frame}")
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


def _decode(ds: Any, ts: Any, frame: int | None) -> np.ndarray:
    """Decode with the preferred plugin, falling back to pydicom's order (all its plugins)."""
    from pydicom.pixels.decoders.base import get_decoder

    decoder = get_decoder(ts)
    preferred = [p for p in PREFERRED_PLUGINS.get(str(ts), ()) if p in decoder.available_plugins]
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
