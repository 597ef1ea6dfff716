"""Write demo DICOM datasets as Part 10 files, compressed to any common transfer syntax.

:func:`save_dataset` encodes an uncompressed dataset (built with
:mod:`pipeline.demo.dicom_writer`) in one of :data:`TRANSFER_SYNTAXES`, with pinned encoder
plugins so the bytes never depend on which optional plugins are installed; :func:`write_file`
writes a dataset as-is. Files are written with a zeroed 128-byte preamble (a non-zero preamble
is how DICOM/PE polyglots hide executables) and atomically.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.demo.dicom_elements import ds_str, set_file_meta
from pipeline.demo.dicom_writer import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE_8BIT,
    JPEG_LS_LOSSLESS,
    RLE_LOSSLESS,
)
from pipeline.utils.atomic import atomic_path

#: Transfer syntaxes :func:`save_dataset` can write.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    RLE_LOSSLESS,
    JPEG_2000_LOSSLESS,
    JPEG_2000,
    JPEG_LS_LOSSLESS,
    JPEG_BASELINE_8BIT,
)
#: The lossy ones (pixel values change; ``LossyImageCompression`` is set to ``"01"``).
LOSSY_TRANSFER_SYNTAXES: tuple[str, ...] = (JPEG_2000, JPEG_BASELINE_8BIT)

#: Encoder plugin per lossless syntax, pinned so output bytes never depend on which optional
#: plugins are installed (and never on GDCM, whose RLE encoder aborts the process on some
#: odd-width images instead of raising).
_ENCODING_PLUGINS = {
    RLE_LOSSLESS: "pydicom",
    JPEG_2000_LOSSLESS: "pylibjpeg",
    JPEG_LS_LOSSLESS: "pyjpegls",
}


def save_dataset(
    ds: Any,
    path: str | Path,
    *,
    transfer_syntax: str = EXPLICIT_VR_LITTLE_ENDIAN,
    jpeg_quality: int = 90,
    j2k_compression_ratio: float = 8.0,
) -> None:
    """Write ``ds`` as a DICOM file (Part 10), compressing if the transfer syntax asks for it.

    The input dataset is not modified. The file gets a zeroed 128-byte preamble and ``DICM``
    and is written atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        ds: Uncompressed dataset, e.g. from
            :func:`pipeline.demo.dicom_writer.make_image_dataset`.
        path: Destination file.
        transfer_syntax: One of :data:`TRANSFER_SYNTAXES`. RLE Lossless uses pydicom's own
            encoder, JPEG 2000 (lossless and lossy) pylibjpeg-openjpeg, JPEG-LS Lossless
            pyjpegls, JPEG Baseline (8-bit only) Pillow, one JPEG per frame.
        jpeg_quality: Pillow quality for JPEG Baseline (1-95).
        j2k_compression_ratio: Compression ratio for lossy JPEG 2000 (>= 1).

    Raises:
        ValueError: Unknown transfer syntax, already compressed input, or JPEG Baseline asked
            for data that is not 8-bit unsigned.
    """
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"transfer_syntax must be one of {list(TRANSFER_SYNTAXES)}. "
                         f"Received: {transfer_syntax!r}")
    current = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if current is not None and current.is_compressed:
        raise ValueError(f"save_dataset needs an uncompressed dataset. Received: {current}")
    ds = _copy_elements(ds)
    if current is None:  # compress() reads the current (uncompressed) syntax from file_meta
        set_file_meta(ds, EXPLICIT_VR_LITTLE_ENDIAN)
    if transfer_syntax == JPEG_BASELINE_8BIT:
        _encode_jpeg_baseline(ds, jpeg_quality)
    elif transfer_syntax == JPEG_2000:
        ds.compress(transfer_syntax, encoding_plugin="pylibjpeg", generate_instance_uid=False,
                    j2k_cr=[float(j2k_compression_ratio)])
        _mark_lossy(ds, "ISO_15444_1", j2k_compression_ratio)
    elif transfer_syntax in _ENCODING_PLUGINS:
        ds.compress(transfer_syntax, encoding_plugin=_ENCODING_PLUGINS[transfer_syntax],
                    generate_instance_uid=False)
    set_file_meta(ds, transfer_syntax)
    _write(ds, path)


def write_file(ds: Any, path: str | Path) -> None:
    """Write ``ds`` as-is (its ``file_meta`` transfer syntax), zeroed preamble, atomically."""
    _write(_copy_elements(ds), path)


def _write(ds: Any, path: str | Path) -> None:
    """Write a dataset this module owns (sets its preamble to zeros)."""
    from pydicom import dcmwrite

    ds.preamble = b"\x00" * 128
    with atomic_path(path, suffix=".dcm") as tmp:
        dcmwrite(tmp, ds, enforce_file_format=True)


def _copy_elements(ds: Any) -> Any:
    """A new dataset with copies of the top-level elements (values shared, not deep-copied).

    Enough to change or replace any top-level or file meta element (Pixel Data and Transfer
    Syntax UID when compressing) without touching the caller's dataset, at a fraction of the
    cost of ``copy.deepcopy``.
    """
    from pydicom.dataset import Dataset, FileMetaDataset

    out = Dataset()
    for elem in ds:
        out.add(copy.copy(elem))
    if hasattr(ds, "file_meta"):
        out.file_meta = FileMetaDataset()
        for elem in ds.file_meta:
            out.file_meta.add(copy.copy(elem))
    return out


def _encode_jpeg_baseline(ds: Any, quality: int) -> None:
    """Encode each frame with Pillow (JPEG Baseline, 8-bit) and encapsulate.

    Grayscale keeps its MONOCHROME1/2 interpretation; RGB is stored as YCbCr without chroma
    subsampling, hence ``YBR_FULL``.
    """
    from PIL import Image
    from pydicom.encaps import encapsulate

    if int(ds.BitsAllocated) != 8 or int(ds.BitsStored) != 8 or int(ds.PixelRepresentation):
        raise ValueError("JPEG Baseline needs 8-bit unsigned data. Received: BitsStored="
                         f"{ds.BitsStored}, PixelRepresentation={ds.PixelRepresentation}")
    frames = _frames(ds)
    color = int(ds.SamplesPerPixel) == 3
    encoded = []
    for frame in frames:
        buf = io.BytesIO()
        options = {"subsampling": 0} if color else {}
        Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="JPEG",
                                                          quality=int(quality), **options)
        encoded.append(buf.getvalue())
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if color:
        ds.PhotometricInterpretation = "YBR_FULL"
    ratio = frames.nbytes / max(1, sum(len(e) for e in encoded))
    _mark_lossy(ds, "ISO_10918_1", ratio)


def _frames(ds: Any) -> np.ndarray:
    """Uncompressed pixels of ``ds`` as ``(frames, rows, cols[, 3])`` uint8."""
    samples = int(ds.SamplesPerPixel)
    shape = (int(ds.get("NumberOfFrames", 1) or 1), int(ds.Rows), int(ds.Columns))
    shape += (samples,) if samples > 1 else ()
    count = int(np.prod(shape))
    return np.frombuffer(ds.PixelData, dtype=np.uint8, count=count).reshape(shape)


def _mark_lossy(ds: Any, method: str, ratio: float) -> None:
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = ds_str(round(float(ratio), 2))
    ds.LossyImageCompressionMethod = method
