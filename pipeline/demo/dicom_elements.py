"""The elements behind :func:`pipeline.demo.dicom_writer.make_image_dataset`: stored pixels
checked and packed into Pixel Data, the VOI LUT item, the patient and study elements, DS strings,
keywords, file meta and deterministic UIDs.

Shared by :mod:`pipeline.demo.dicom_writer` (building datasets) and
:mod:`pipeline.demo.dicom_files` (writing them). UIDs come from :func:`deterministic_uid`, study
times from the accession number: no clock, no random state, so the same inputs always give
byte-identical files.
"""

from __future__ import annotations

import hashlib
from dataclasses import astuple
from typing import Any

import numpy as np

from pipeline.demo.fake_phi import PHI

_COLOR_PHOTOMETRICS = ("RGB", "YBR_FULL")
_GRAY_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")


def check_pixels(arr: np.ndarray, photometric: str, bits_allocated: int, bits_stored: int,
                 signed: bool) -> tuple[int, int, int, int]:
    """Validate stored pixels; return ``(frames, rows, cols, samples)``."""
    if photometric in _COLOR_PHOTOMETRICS:
        if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[-1] != 3:
            raise ValueError("RGB pixels must be uint8 with shape (rows, cols, 3) or "
                             f"(frames, rows, cols, 3). Received: {arr.dtype} {arr.shape}")
        if bits_allocated != 8 or bits_stored != 8 or signed:
            raise ValueError("RGB needs bits_allocated=8, bits_stored=8, unsigned. Received: "
                             f"bits_allocated={bits_allocated}, bits_stored={bits_stored}")
        frames = arr.shape[0] if arr.ndim == 4 else 1
        return frames, arr.shape[-3], arr.shape[-2], 3
    if photometric not in _GRAY_PHOTOMETRICS:
        raise ValueError(f"photometric must be one of {list(_GRAY_PHOTOMETRICS + _COLOR_PHOTOMETRICS)}."
                         f" Received: {photometric!r}")
    if arr.ndim not in (2, 3) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("grayscale pixels must be an integer array (rows, cols) or "
                         f"(frames, rows, cols). Received: {arr.dtype} {arr.shape}")
    if bits_allocated not in (8, 16) or not 1 <= bits_stored <= bits_allocated:
        raise ValueError("bits_allocated must be 8 or 16 and 1 <= bits_stored <= bits_allocated."
                         f" Received: bits_allocated={bits_allocated}, bits_stored={bits_stored}")
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (
        0, 2**bits_stored - 1)
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(f"stored values must lie in [{lo}, {hi}] for bits_stored={bits_stored}"
                         f", signed={signed}. Received: range [{arr.min()}, {arr.max()}]")
    frames = arr.shape[0] if arr.ndim == 3 else 1
    return frames, arr.shape[-2], arr.shape[-1], 1


def pack(arr: np.ndarray, bits_allocated: int, bits_stored: int,
         unused_bits_rng: np.random.Generator | None) -> bytes:
    """Little-endian Pixel Data bytes, padded to even length, optional high-bit garbage."""
    if arr.dtype == np.uint8 and arr.ndim >= 3 and arr.shape[-1] == 3:
        raw = np.ascontiguousarray(arr).tobytes()
    else:
        dtype = {8: np.uint8, 16: np.dtype("<u2")}[bits_allocated]
        words = arr.astype(np.int64).astype(dtype)  # two's complement wrap for signed data
        if unused_bits_rng is not None and bits_stored < bits_allocated:
            garbage = unused_bits_rng.integers(1, 2 ** (bits_allocated - bits_stored),
                                               size=words.shape)
            keep = (1 << bits_stored) - 1
            words = ((words & keep) | (garbage << bits_stored)).astype(dtype)
        raw = np.ascontiguousarray(words).tobytes()
    return raw + b"\x00" if len(raw) % 2 else raw


def voi_lut_item(lut: np.ndarray, first_mapped: int) -> Any:
    from pydicom.dataset import Dataset

    data = np.asarray(lut)
    if data.ndim != 1 or data.size < 2 or data.size > 65536:
        raise ValueError(f"voi_lut must be 1D with 2..65536 entries. Received: {data.shape}")
    if data.min() < 0 or data.max() > 65535 or first_mapped < 0:
        raise ValueError("voi_lut values must lie in [0, 65535] and voi_lut_first_mapped >= 0. "
                         f"Received: [{data.min()}, {data.max()}], {first_mapped}")
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [data.size % 65536, int(first_mapped), 16])
    item.add_new("LUTData", "OW", data.astype("<u2").tobytes())
    item.LUTExplanation = "DEMO VOI LUT"
    return item


def set_patient_study(ds: Any, phi: PHI | None) -> None:
    ds.PatientName = phi.patient_name if phi else ""
    ds.PatientID = phi.patient_id if phi else ""
    if phi is None:
        return
    ds.PatientBirthDate = phi.birth_date
    ds.PatientSex = phi.sex
    ds.AccessionNumber = phi.accession_number
    ds.InstitutionName = phi.institution_name
    ds.ReferringPhysicianName = phi.referring_physician
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = phi.study_date
    time = _fake_time(phi.accession_number) if phi.study_date else ""
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
    ds.StudyID = phi.accession_number[-4:]


def _fake_time(seed_text: str) -> str:
    """A plausible daytime TM derived from a string (no clock, so output is reproducible)."""
    value = int(hashlib.sha256(seed_text.encode()).hexdigest()[:8], 16)
    return f"{8 + value % 10:02d}{value // 10 % 60:02d}{value // 600 % 60:02d}"


def phi_key(phi: PHI | None) -> tuple[str, ...]:
    return astuple(phi) if phi is not None else ()


def deterministic_uid(*entropy: str) -> str:
    """A UID under pydicom's root derived from ``entropy`` (same strings, same UID)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["pipeline.demo", *map(str, entropy)]))


def ds_str(value: float) -> str:
    """A DS string of at most 16 characters (``2048``, ``-0.5``, ``0.1428571429``)."""
    text = f"{float(value):.10g}"
    return text if len(text) <= 16 else f"{float(value):.6g}"


def set_keyword(ds: Any, keyword: str, value: Any) -> None:
    from pydicom.datadict import tag_for_keyword

    if tag_for_keyword(keyword) is None:
        raise ValueError(f"extra keys must be DICOM keywords. Received: {keyword!r}")
    setattr(ds, keyword, value)


def set_file_meta(ds: Any, transfer_syntax: str) -> None:
    """(Re)build file meta so it matches the dataset's SOP class/instance UIDs."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "MEDVISION_DEMO"
    ds.file_meta = meta
