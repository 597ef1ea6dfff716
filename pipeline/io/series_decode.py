"""Decoding the kept slices of a series into a float32 stack (step 6 of :mod:`pipeline.io.series`).

Each slice is decoded and its own modality LUT applied; one bad slice rejects the series.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.io.dicom import open_dicom
from pipeline.io.dicom_pixels import decode_pixels
from pipeline.io.errors import InputRejected
from pipeline.io.series_selection import Slice


def decode_stack(slices: list[Slice], max_pixel_bytes: int) -> tuple[np.ndarray, dict]:
    """``(stack, attrs)``: float32 ``(n, rows, cols)`` after each slice's modality LUT, and the
    first slice's non-PHI acquisition attributes. A failing slice rejects the series, naming it."""
    stack = np.empty((len(slices), slices[0].rows, slices[0].cols), dtype=np.float32)
    attrs: dict = {}
    for k, s in enumerate(slices):
        try:
            ds = open_dicom(s.path)
            stack[k] = _decode_slice(ds, s, max_pixel_bytes)
        except InputRejected as exc:
            raise InputRejected(f"slice '{s.name}': {exc.reason}", code=exc.code) from None
        if k == 0:
            attrs = _series_attributes(ds)
    return stack, attrs


def _decode_slice(ds: Any, s: Slice, max_pixel_bytes: int) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    try:
        frames = decode_pixels(ds, max_pixel_bytes=max_pixel_bytes)
    except InputRejected:
        raise
    except Exception as exc:  # decode_pixels lets a few pydicom errors through
        raise InputRejected(f"pixel data could not be decoded ({type(exc).__name__})",
                            code="decode_error") from None
    if frames.shape != (1, s.rows, s.cols):
        raise InputRejected("pixel data shape differs from the scanned header",
                            code="decode_error")
    try:
        values = apply_modality_lut(frames[0], ds)
    except Exception as exc:  # malformed RescaleSlope/Intercept or Modality LUT
        raise InputRejected(f"invalid modality LUT ({type(exc).__name__})",
                            code="bad_header") from None
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise InputRejected("non-finite values after the modality LUT", code="non_finite")
    return values


def _series_attributes(ds: Any) -> dict:
    """Non-PHI acquisition attributes of the first slice."""
    ts = getattr(ds, "file_meta", None)
    ts = ts.get("TransferSyntaxUID") if ts is not None else None
    try:
        kvp = float(ds.KVP) if ds.get("KVP") not in (None, "") else None
    except (TypeError, ValueError):
        kvp = None
    return {
        "modality": str(ds.get("Modality", "") or "") or None,
        "manufacturer": str(ds.get("Manufacturer", "") or "") or None,
        "transfer_syntax": str(ts) if ts else None,
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "kvp": kvp,
    }
