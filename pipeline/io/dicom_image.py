"""2D DICOM images (CR, DX, secondary capture, single frames of multi-frame objects).

Contract: :func:`read_dicom_image` returns ``(image, meta)`` with ``image`` float32 ``(H, W)`` in
[0, 1] where 1 is displayed white (dense), after, in this order (PS3.3 C.11):

1. decoding through pydicom's plugins (masked to BitsStored, sign-extended if signed),
2. frame selection for multi-frame objects,
3. the modality LUT (RescaleSlope/Intercept, per frame for enhanced objects, or the Modality LUT
   Sequence),
4. the VOI LUT Sequence or Window Center/Width (``window="auto"``), percentile clipping, or an
   explicit window,
5. MONOCHROME1 inversion (after the VOI step, as the standard's presentation pipeline does).

RGB/YBR images are converted to luminance (ITU-R BT.601) and scaled by their bit depth.
``meta`` holds only non-PHI technical attributes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.dicom import has_element, header_value, open_dicom
from pipeline.io.dicom_pixels import DEFAULT_MAX_PIXEL_BYTES, check_pixel_data, decode_pixels
from pipeline.io.errors import InputRejected
from pipeline.preprocess.intensity import linear_window, percentile_window, voi_window

FramePolicy = str  # "first" | "middle" | "last" | "max"
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def read_dicom_image(
    path: str | os.PathLike[str],
    *,
    window: str | tuple[float, float] = "auto",
    percentiles: tuple[float, float] = (0.5, 99.5),
    frame: FramePolicy = "middle",
    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one DICOM file as a display-ready 2D image.

    Args:
        path: DICOM file.
        window: ``"auto"`` (VOI LUT Sequence, else Window Center/Width, else percentiles),
            ``"percentile"``, or an explicit ``(center, width)`` in modality-LUT output units.
        percentiles: Low/high percentiles for percentile clipping.
        frame: Multi-frame policy: ``first``, ``middle``, ``last`` or ``max`` (maximum
            intensity over frames, after the modality LUT).
        max_pixel_bytes: Decompression-bomb cap on the declared decoded size.

    Returns:
        ``(image, meta)``: float32 ``(H, W)`` in [0, 1] (white = dense) and technical metadata.

    Raises:
        InputRejected: Anything that makes the file unusable, with a one-line PHI-free reason.
    """
    return image_from_dataset(open_dicom(path), window=window, percentiles=percentiles,
                              frame=frame, max_pixel_bytes=max_pixel_bytes)


def image_from_dataset(
    ds: Any,
    *,
    window: str | tuple[float, float] = "auto",
    percentiles: tuple[float, float] = (0.5, 99.5),
    frame: FramePolicy = "middle",
    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`read_dicom_image` for a dataset already opened with :func:`open_dicom`."""
    geometry = check_pixel_data(ds, max_pixel_bytes=max_pixel_bytes)  # rejects bad geometry first
    frames = geometry[0]
    meta = technical_meta(ds)
    index = _frame_index(frames, frame)
    all_frames = frame == "max" and frames > 1
    meta["frame_used"] = frame if all_frames else index
    # Decode only the frame that is used (all of them for the 'max' projection).
    # (F, R, C[, S]); F = 1 unless 'max'
    pixels = decode_pixels(ds, frame=None if all_frames or frames == 1 else index,
                           max_pixel_bytes=max_pixel_bytes, geometry=geometry)

    samples = pixels.shape[3] if pixels.ndim == 4 else 1
    if samples == 3:
        image = _rgb_to_gray(pixels, ds, None if all_frames else 0)
        meta["voi"] = "rgb_luminance"
    elif samples == 1:
        values = (_modality_frames(pixels, ds, None) if all_frames
                  else _modality_lut(pixels[0], ds, index))
        image, meta["voi"] = _apply_voi(values, ds, window=window, percentiles=percentiles)
        if str(header_value(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            image = np.subtract(1.0, image, out=image if image.dtype == np.float32 else None)
    else:
        raise InputRejected(f"unsupported SamplesPerPixel={samples}", code="bad_header")

    image = np.ascontiguousarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())  # NaN or inf anywhere shows in one of them
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputRejected("non-finite values after intensity mapping", code="bad_pixels")
    if high - low < 1e-6:
        raise InputRejected("image is constant after windowing (blank or window outside data)",
                            code="blank")
    return image, meta


def technical_meta(ds: Any) -> dict[str, Any]:
    """Non-PHI technical attributes worth keeping in a manifest."""
    ts = getattr(ds, "file_meta", {}).get("TransferSyntaxUID", None)
    spacing = header_value(ds, "PixelSpacing") or header_value(ds, "ImagerPixelSpacing")
    return {
        "modality": str(header_value(ds, "Modality", "")),
        "sop_class_uid": str(header_value(ds, "SOPClassUID", "")),
        "photometric": str(header_value(ds, "PhotometricInterpretation", "")),
        "bits_allocated": int(header_value(ds, "BitsAllocated", 0) or 0),
        "bits_stored": int(header_value(ds, "BitsStored", 0) or 0),
        "pixel_representation": int(header_value(ds, "PixelRepresentation", 0) or 0),
        "transfer_syntax": str(ts) if ts is not None else "",
        "rows": int(header_value(ds, "Rows", 0) or 0),
        "columns": int(header_value(ds, "Columns", 0) or 0),
        "frames": int(header_value(ds, "NumberOfFrames", 1) or 1),
        "pixel_spacing": [float(v) for v in spacing] if spacing else None,
        "rescale_slope": _float_or_none(header_value(ds, "RescaleSlope")),
        "rescale_intercept": _float_or_none(header_value(ds, "RescaleIntercept")),
    }


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _frame_index(frames: int, policy: FramePolicy) -> int:
    if policy == "first":
        return 0
    if policy == "last":
        return frames - 1
    if policy in ("middle", "max"):
        return frames // 2
    raise ValueError(f"frame must be one of ['first', 'last', 'max', 'middle']. Received: {policy!r}")


def _modality_frames(pixels: np.ndarray, ds: Any, index: int | None) -> np.ndarray:
    """Modality LUT of one frame (``index``) or the max over all frames (``None``)."""
    if index is not None:
        return _modality_lut(pixels[index], ds, index)
    out = _modality_lut(pixels[0], ds, 0)
    for i in range(1, pixels.shape[0]):
        out = np.maximum(out, _modality_lut(pixels[i], ds, i))
    return out


def _modality_lut(frame: np.ndarray, ds: Any, index: int) -> np.ndarray:
    """Stored values -> modality values, using per-frame rescale of enhanced objects if any."""
    from pydicom.pixels import apply_modality_lut

    slope_icept = _per_frame_rescale(ds, index)
    try:
        if slope_icept is None and not has_element(ds, "ModalityLUTSequence"):
            slope_icept = (float(header_value(ds, "RescaleSlope", 1.0) or 1.0),
                           float(header_value(ds, "RescaleIntercept", 0.0) or 0.0))
        if slope_icept is not None:
            return _rescale(frame, *slope_icept)
        return np.asarray(apply_modality_lut(frame, ds))  # LUT output: integers
    except InputRejected:
        raise
    except Exception as exc:  # malformed LUT descriptors, non-numeric DS values
        raise InputRejected(f"invalid modality LUT/rescale ({type(exc).__name__})",
                            code="bad_header") from None


def _rescale(frame: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Rescale Slope/Intercept; integer in, integer out when both are integral (exact, and lets
    percentile clipping count a histogram), float32 otherwise."""
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0:
        raise InputRejected("invalid Rescale Slope/Intercept (zero or non-finite)", code="bad_header")
    if frame.dtype.kind in "iu" and slope.is_integer() and intercept.is_integer():
        if slope == 1 and intercept == 0:  # the identity (most radiographs): no int64 copy
            return frame
        out = frame.astype(np.int64)
        if slope != 1:
            out *= int(slope)
        if intercept != 0:
            out += int(intercept)
        return out
    return frame.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _per_frame_rescale(ds: Any, index: int) -> tuple[float, float] | None:
    """Rescale of frame ``index`` from the (per-frame or shared) functional groups, if present."""
    for seq_name, item_index in (("PerFrameFunctionalGroupsSequence", index),
                                 ("SharedFunctionalGroupsSequence", 0)):
        seq = header_value(ds, seq_name)
        if not seq or item_index >= len(seq):
            continue
        pvt = seq[item_index].get("PixelValueTransformationSequence")
        if pvt:
            try:
                return float(pvt[0].RescaleSlope), float(pvt[0].RescaleIntercept)
            except (AttributeError, TypeError, ValueError):
                raise InputRejected("invalid per-frame rescale values", code="bad_header") from None
    return None


def _apply_voi(
    values: np.ndarray, ds: Any, *, window: str | tuple[float, float], percentiles: tuple[float, float]
) -> tuple[np.ndarray, str]:
    """VOI step; returns ``(image in [0, 1], which VOI was used)``."""
    if isinstance(window, tuple | list):
        return linear_window(values, float(window[0]), float(window[1])), "explicit"
    if window == "auto":
        if header_value(ds, "VOILUTSequence"):
            return _voi_lut_sequence(values, ds), "voi_lut"
        if has_element(ds, "WindowCenter") and has_element(ds, "WindowWidth"):
            return _file_window(values, ds), "window"
    elif window != "percentile":
        raise ValueError(f"window must be 'auto', 'percentile' or (center, width). Received: {window!r}")
    return percentile_window(values, *percentiles), "percentile"


def _voi_lut_sequence(values: np.ndarray, ds: Any) -> np.ndarray:
    from pydicom.pixels import apply_voi_lut

    try:
        # LUTs are indexed by integer modality values (PS3.3 C.11.2.1.1): round, don't warn.
        indices = np.rint(values).astype(np.int64)
        out = apply_voi_lut(indices, ds, index=0, prefer_lut=True).astype(np.float32)
        # The LUT's own output range, read through pydicom (LUTData may be raw OW bytes).
        n_entries, first = (int(v) for v in ds.VOILUTSequence[0].LUTDescriptor[:2])
        n_entries = n_entries or 65536  # 0 means 2**16 entries
        lut = apply_voi_lut(np.arange(first, first + n_entries), ds, index=0, prefer_lut=True)
    except Exception as exc:
        raise InputRejected(f"invalid VOI LUT Sequence ({type(exc).__name__})", code="bad_header") from None
    lo, hi = float(lut.min()), float(lut.max())
    if hi <= lo:
        raise InputRejected("VOI LUT Sequence is constant", code="bad_header")
    return np.clip((out - lo) / (hi - lo), 0.0, 1.0)


def _file_window(values: np.ndarray, ds: Any) -> np.ndarray:
    """Apply the file's first Window Center/Width with its VOI LUT Function, output in [0, 1].

    Same result as pydicom's ``apply_windowing`` normalised by its output range (a test checks
    this), computed in float32 by :func:`~pipeline.preprocess.intensity.voi_window`.
    """
    try:
        center, width = (_first_value(ds["WindowCenter"]), _first_value(ds["WindowWidth"]))
        return voi_window(values, center, width, str(ds.get("VOILUTFunction", "") or "LINEAR"))
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # width < 1, unknown function, bad DS
        raise InputRejected(f"invalid Window Center/Width ({type(exc).__name__})",
                            code="bad_header") from None


def _first_value(elem: Any) -> float:
    """First value of a multi-valued DS element (several windows: the first is the default)."""
    value = elem.value
    if elem.VM > 1:
        value = value[0]
    return float(value)


def _rgb_to_gray(pixels: np.ndarray, ds: Any, index: int | None) -> np.ndarray:
    """RGB (pydicom already converted YBR to RGB) -> luminance in [0, 1]."""
    rgb = pixels[index] if index is not None else pixels.max(axis=0)
    scale = float(2 ** int(ds.get("BitsStored", 8) or 8) - 1)
    return (rgb.astype(np.float32) @ _LUMA) / scale


def read_image_mask(path: str | os.PathLike[str], *, shape: tuple[int, int]) -> np.ndarray:
    """Read a 2D lesion mask (PNG or NPY) that must match the image's original ``shape``.

    Returns:
        uint8 ``(H, W)`` with values {0, 1} (any non-zero pixel is foreground).

    Raises:
        InputRejected: Unreadable, wrong shape, or a pickled/object ``.npy``.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            mask = np.load(path, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(path) as im:
                mask = np.asarray(im.convert("L"))
    except (ValueError, OSError) as exc:
        raise InputRejected(f"mask unreadable ({type(exc).__name__})", code="bad_mask") from None
    mask = np.squeeze(mask)
    if mask.shape != tuple(shape):
        raise InputRejected(f"mask shape {list(mask.shape)} does not match image {list(shape)}",
                            code="bad_mask")
    return (mask > 0).astype(np.uint8)
