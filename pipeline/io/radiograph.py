"""One entry point for 2D inputs: a DICOM object or a PNG/JPEG/TIFF file, told apart by content.

Ingest, the report's full-resolution view and ``predict`` all read a 2D source through
:func:`read_radiograph`, so they window and orient it the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.dicom_pixels import DEFAULT_MAX_PIXEL_BYTES
from pipeline.io.image_file import DEFAULT_MAX_COLOUR_SHARE, format_of, read_image_file


@dataclass(frozen=True)
class Radiograph:
    """A 2D source read for the model.

    Attributes:
        image: float32 ``(H, W)`` in [0, 1], white = dense.
        meta: Technical, non-PHI attributes (``format`` is ``dicom``, ``png``, ``jpeg`` or ``tiff``).
        dataset: The ``pydicom.Dataset`` for DICOM input (PHI inside: never write it out), else
            None.
    """

    image: np.ndarray
    meta: dict[str, Any]
    dataset: Any | None


def read_radiograph(
    path: str | os.PathLike[str],
    *,
    window: str | tuple[float, float] = "auto",
    percentiles: tuple[float, float] = (0.5, 99.5),
    frame: str = "middle",
    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
    max_colour_share: float = DEFAULT_MAX_COLOUR_SHARE,
) -> Radiograph:
    """Read a 2D DICOM or image file (see :mod:`pipeline.io.dicom_image` and
    :mod:`pipeline.io.image_file` for each contract).

    ``window="auto"`` means the file's VOI LUT/window for DICOM and the values as stored for
    image files (already windowed for display).

    Raises:
        InputRejected: Unusable input, with a one-line PHI-free reason and a code.
    """
    from pipeline.io.dicom import read_dicom
    from pipeline.io.dicom_image import image_from_dataset
    from pipeline.io.errors import InputRejected

    path = Path(path)
    try:  # opened once: sniffed, then read as DICOM from the same handle
        fh = open(path, "rb")  # noqa: SIM115  (closed below)
    except OSError as exc:
        if path.is_dir():
            raise InputRejected("2D tasks take one image file per row; got a directory",
                                code="bad_path") from None
        raise InputRejected(f"cannot read file ({type(exc).__name__})", code="unreadable") from None
    with fh:
        try:
            fmt = format_of(fh.read(8))
            fh.seek(0)
        except OSError as exc:
            raise InputRejected(f"cannot read file ({type(exc).__name__})", code="unreadable") from None
        if fmt is None:
            ds = read_dicom(fh)
    if fmt is not None:
        image, meta = read_image_file(path, window=window, percentiles=percentiles, frame=frame,
                                      max_pixel_bytes=max_pixel_bytes,
                                      max_colour_share=max_colour_share)
        return Radiograph(image, meta, None)
    image, meta = image_from_dataset(ds, window=window, percentiles=percentiles, frame=frame,
                                     max_pixel_bytes=max_pixel_bytes)
    return Radiograph(image, {"format": "dicom", **meta}, ds)
