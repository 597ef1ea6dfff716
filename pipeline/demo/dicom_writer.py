"""Build synthetic DICOM datasets, including the pitfalls real archives contain.

Used by the demo datasets and by tests that need DICOM objects exhibiting one specific pitfall
(MONOCHROME1, garbage in unused high bits, signed data, negative rescale slope, VOI LUT
sequences, multi-frame, RGB). Holds the SOP class and transfer syntax UIDs and dataset
construction (:func:`make_image_dataset`, :func:`make_ct_slice_dataset`); the elements they set
(pixel validation and packing, VOI LUT, patient and study, file meta, deterministic UIDs) are
built by :mod:`pipeline.demo.dicom_elements`. Writing (and compressing to every common transfer
syntax) is :mod:`pipeline.demo.dicom_files`; the fake identifiers are :mod:`pipeline.demo.fake_phi`.

Conventions:
    * ``pixels`` are always STORED values (what goes into Pixel Data), never display values.
      The modality LUT (``RescaleSlope``/``RescaleIntercept``), the VOI transform (window or
      VOI LUT) and the MONOCHROME1 inversion are what a reader must apply to recover the
      intended image, in that order (PS3.3 C.11).
    * Array shapes: ``(rows, cols)``; ``(frames, rows, cols)`` for multi-frame grayscale;
      ``(rows, cols, 3)`` or ``(frames, rows, cols, 3)`` uint8 for RGB (colour-by-pixel,
      ``PlanarConfiguration`` 0).
    * UIDs are generated with :func:`pydicom.uid.generate_uid` from deterministic entropy
      (the PHI, a caller-supplied ``uid_key`` and a digest of the pixels), so the same inputs
      always give byte-identical files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.demo.dicom_elements import (
    check_pixels,
    deterministic_uid,
    ds_str,
    pack,
    phi_key,
    set_file_meta,
    set_keyword,
    set_patient_study,
    voi_lut_item,
)
from pipeline.demo.fake_phi import PHI

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image, for presentation
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
JPEG_BASELINE_8BIT = "1.2.840.10008.1.2.4.50"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"


def make_image_dataset(
    pixels: np.ndarray,
    *,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    bits_allocated: int = 16,
    bits_stored: int | None = None,
    signed: bool = False,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    voi_lut: np.ndarray | None = None,
    voi_lut_first_mapped: int = 0,
    sop_class_uid: str = DX_IMAGE_STORAGE,
    phi: PHI | None = None,
    uid_key: str = "",
    unused_bits_rng: np.random.Generator | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Build an image dataset (uncompressed, Explicit VR Little Endian) from stored values.

    Args:
        pixels: STORED values, see the module docstring for shapes. Grayscale values must fit
            in ``bits_stored`` bits (two's complement when ``signed``); RGB must be uint8.
        modality: ``Modality`` (``"DX"``, ``"CR"``, ``"CT"``, ``"OT"``...).
        photometric: ``"MONOCHROME2"`` (high value = white), ``"MONOCHROME1"`` (high value
            = black; stored data must already be inverted accordingly) or ``"RGB"``.
        bits_allocated: 8 or 16 (RGB: 8).
        bits_stored: Defaults to ``bits_allocated``. ``HighBit`` is ``bits_stored - 1``.
        signed: ``PixelRepresentation`` 1 (two's complement).
        rescale: ``(RescaleSlope, RescaleIntercept)``; ``None`` leaves both absent (identity
            modality LUT). A negative slope is allowed: store the data flipped accordingly.
        window: ``(WindowCenter, WindowWidth)`` in rescaled units; ``None`` = absent. Add
            ``{"VOILUTFunction": "SIGMOID"}`` in ``extra`` for a sigmoid window.
        voi_lut: VOI LUT data (non-negative ints < 65536, 16-bit entries) written as a one-item
            ``VOILUTSequence``; entry ``n`` maps the rescaled value ``voi_lut_first_mapped + n``.
        voi_lut_first_mapped: Second ``LUTDescriptor`` value; must be >= 0 here.
        sop_class_uid: ``SOPClassUID``; default Digital X-Ray (for presentation).
        phi: Patient/study identifiers; ``None`` writes empty patient name and ID.
        uid_key: Distinguishes objects with the same PHI and pixels (e.g. a file index).
        unused_bits_rng: If given (and ``bits_stored < bits_allocated``), fill the unused high
            bits of every stored word with random garbage, as some devices do, so readers must
            mask them (pydicom does). Only valid for uncompressed transfer syntaxes.
        extra: More elements by keyword (``{"PixelSpacing": [0.7, 0.7]}``), applied last, so
            they can override anything set here (UIDs included).

    Returns:
        A ``pydicom.Dataset`` with ``file_meta`` (Explicit VR Little Endian).

    Raises:
        ValueError: Inconsistent arguments, pixel values out of range, unknown keyword.
    """
    from pydicom.dataset import Dataset

    arr = np.asarray(pixels)
    bits_stored = bits_allocated if bits_stored is None else bits_stored
    frames, rows, cols, samples = check_pixels(arr, photometric, bits_allocated, bits_stored,
                                               signed)
    ds = Dataset()
    set_patient_study(ds, phi)
    digest = hashlib.sha256(arr.tobytes() + repr(arr.shape).encode()).hexdigest()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = deterministic_uid("sop", uid_key, digest, *phi_key(phi))
    ds.StudyInstanceUID = deterministic_uid("study", *phi_key(phi))
    ds.SeriesInstanceUID = deterministic_uid("series", uid_key, *phi_key(phi))
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = 0
    if frames > 1 or arr.ndim == (4 if samples > 1 else 3):
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits_allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = ds_str(rescale[0]), ds_str(rescale[1])
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = ds_str(window[0]), ds_str(window[1])
    if voi_lut is not None:
        ds.VOILUTSequence = [voi_lut_item(voi_lut, voi_lut_first_mapped)]
    ds.PixelData = pack(arr, bits_allocated, bits_stored, unused_bits_rng)
    ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
    for keyword, value in (extra or {}).items():
        set_keyword(ds, keyword, value)
    set_file_meta(ds, EXPLICIT_VR_LITTLE_ENDIAN)
    return ds


def make_ct_slice_dataset(
    pixels: np.ndarray,
    *,
    position: tuple[float, float, float],
    orientation: tuple[float, float, float, float, float, float],
    pixel_spacing: tuple[float, float],
    slice_thickness: float,
    rescale: tuple[float, float] = (1.0, -1024.0),
    instance_number: int,
    series_uid: str,
    study_uid: str,
    frame_of_reference_uid: str,
    phi: PHI,
    window: tuple[float, float] | None = (40.0, 400.0),
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    bits_stored: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Build one CT Image Storage slice.

    Args:
        pixels: ``(rows, cols)`` stored values, ``int16`` (``PixelRepresentation`` 1) or
            ``uint16`` (``PixelRepresentation`` 0). HU = stored * slope + intercept.
        position: ``ImagePositionPatient``: centre of the first transmitted pixel, mm, LPS.
        orientation: ``ImageOrientationPatient``: row direction (towards increasing column
            index) then column direction (towards increasing row index), unit LPS vectors.
        pixel_spacing: ``PixelSpacing`` ``(row spacing, column spacing)`` in mm, i.e. the
            distance between adjacent rows, then between adjacent columns.
        slice_thickness: ``SliceThickness`` in mm.
        rescale: ``(RescaleSlope, RescaleIntercept)`` to HU.
        instance_number: ``InstanceNumber`` (need not follow spatial order).
        series_uid: ``SeriesInstanceUID``.
        study_uid: ``StudyInstanceUID``.
        frame_of_reference_uid: ``FrameOfReferenceUID``.
        phi: Patient/study identifiers.
        window: ``(WindowCenter, WindowWidth)`` in HU, or ``None``.
        image_type: ``ImageType``; use ``("ORIGINAL", "PRIMARY", "LOCALIZER")`` for a scout.
        bits_stored: Default 16 for ``int16``; for ``uint16`` 12 if every value fits, else 16.
        extra: More elements by keyword, applied last.

    Returns:
        A ``pydicom.Dataset``. ``SliceLocation`` is the z coordinate (mm) of ``position``, as
        most scanners write it; readers should sort on ``position`` projected on the normal.

    Raises:
        ValueError: ``pixels`` is not 2D int16/uint16, or the geometry is malformed.
    """
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.dtype not in (np.int16, np.uint16):
        raise ValueError(f"CT pixels must be a 2D int16 or uint16 array. Received: "
                         f"shape={arr.shape}, dtype={arr.dtype}")
    if len(position) != 3 or len(orientation) != 6 or len(pixel_spacing) != 2:
        raise ValueError("position needs 3 values, orientation 6, pixel_spacing 2. Received: "
                         f"{len(position)}, {len(orientation)}, {len(pixel_spacing)}")
    signed = arr.dtype == np.int16
    if bits_stored is None:
        bits_stored = 16 if signed or int(arr.max(initial=0)) > 4095 else 12
    geometry: dict[str, Any] = {
        "ImagePositionPatient": [ds_str(v) for v in position],
        "ImageOrientationPatient": [ds_str(v) for v in orientation],
        "PixelSpacing": [ds_str(v) for v in pixel_spacing],
        "SliceThickness": ds_str(slice_thickness),
        "SliceLocation": ds_str(position[2]),
        "InstanceNumber": int(instance_number),
        "SeriesInstanceUID": series_uid,
        "StudyInstanceUID": study_uid,
        "FrameOfReferenceUID": frame_of_reference_uid,
        "PositionReferenceIndicator": "",
        "ImageType": list(image_type),
        "PatientPosition": "HFS",
        "BodyPartExamined": "CHEST",
        "KVP": "120",
        "RescaleType": "HU",
    }
    geometry.update(extra or {})
    key = f"{series_uid}|{instance_number}|{tuple(position)}|{tuple(orientation)}"
    return make_image_dataset(
        arr, modality="CT", photometric="MONOCHROME2", bits_allocated=16,
        bits_stored=bits_stored, signed=signed, rescale=rescale, window=window,
        sop_class_uid=CT_IMAGE_STORAGE, phi=phi, uid_key=key, extra=geometry,
    )
