"""Synthetic 3D fixtures: one known object written as DICOM series and NIfTI in any orientation.

The reference object lives on the canonical grid ``(D, H, W)`` = (Superior, Posterior, Left)
with every voxel holding a unique value ``256*d + 16*h + w - 1024`` (HU), so any flip, axis
swap or mis-sorted slice shows up, and linear interpolation along D is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

REF_SHAPE = (12, 14, 16)  # (D, H, W)
REF_SPACING = (2.5, 0.9, 0.8)  # (D, H, W) mm
REF_ORIGIN_RAS = (100.0, 80.0, -50.0)  # world position of voxel (0, 0, 0), RAS mm

#: Fake identifiers written into every slice; none may leak into meta or error messages.
PHI = {
    "PatientName": "Doe^Jane",
    "PatientID": "PHI-ID-4711",
    "PatientBirthDate": "19700101",
    "AccessionNumber": "ACC998877",
    "StudyDescription": "SECRET STUDY DESC",
    "SeriesDescription": "SECRET SERIES DESC",
    "InstitutionName": "St Example Hospital",
    "ReferringPhysicianName": "Who^Doctor",
    "StudyDate": "20240229",
}


def reference_volume() -> np.ndarray:
    d, h, w = np.indices(REF_SHAPE)
    return (256 * d + 16 * h + w - 1024).astype(np.float32)


def reference_affine() -> np.ndarray:
    """Canonical affine: (w, h, d, 1) -> RAS mm (W goes Left = -x, H Posterior = -y)."""
    sd, sh, sw = REF_SPACING
    affine = np.diag([-sw, -sh, sd, 1.0])
    affine[:3, 3] = REF_ORIGIN_RAS
    return affine


def as_orientation(volume: np.ndarray, affine: np.ndarray, axcodes: str):
    """Re-store a canonical volume in another storage orientation: ``(data_ijk, affine_ras)``."""
    from nibabel import orientations as nio

    data = volume.transpose(2, 1, 0)
    transform = nio.ornt_transform(nio.axcodes2ornt(("L", "P", "S")),
                                   nio.axcodes2ornt(tuple(axcodes)))
    return (np.ascontiguousarray(nio.apply_orientation(data, transform)),
            affine @ nio.inv_ornt_aff(transform, data.shape))


def write_slice(path: Path, hu: np.ndarray, *, ipp: Sequence[float], iop: Sequence[float],
                pixel_spacing: Sequence[float], instance: int, series_uid: str,
                slope: float = 1.0, intercept: float = -1024.0, extra: dict | None = None) -> Path:
    """Write one CT slice (int16, explicit VR little endian, zeroed preamble)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
    from pydicom.valuerep import format_number_as_ds

    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1", series_uid
    ds.Modality, ds.Manufacturer, ds.KVP = "CT", "SynthCo", "120"
    for key, value in PHI.items():
        setattr(ds, key, value)
    ds.ImagePositionPatient = [format_number_as_ds(float(v)) for v in ipp]
    ds.ImageOrientationPatient = [format_number_as_ds(float(v)) for v in iop]
    ds.PixelSpacing = [format_number_as_ds(float(v)) for v in pixel_spacing]
    ds.InstanceNumber = instance
    ds.RescaleSlope, ds.RescaleIntercept = format_number_as_ds(slope), format_number_as_ds(intercept)
    stored = np.rint((np.asarray(hu, dtype=np.float64) - intercept) / slope).astype(np.int16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = stored.tobytes()
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(directory: Path, data_ijk: np.ndarray, affine_ras: np.ndarray, *,
                 series_uid: str = "1.2.826.0.1.3680043.8.498.2", seed: int = 0,
                 rescale: Callable[[int], tuple[float, float]] | None = None,
                 positions_lps: np.ndarray | None = None,
                 slices: Sequence[int] | None = None) -> list[Path]:
    """Write ``data_ijk`` (column, row, slice) as one file per slice.

    Files get random names and reversed InstanceNumbers, so neither sorts the slices.
    Returns the path of slice ``k`` at index ``k`` of the written ``slices``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    col_step, row_step = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    iop = np.concatenate([lps[:3, 0] / col_step, lps[:3, 1] / row_step])
    n = data_ijk.shape[2]
    paths = []
    for k in (range(n) if slices is None else slices):
        slope, intercept = rescale(k) if rescale else (1.0, -1024.0)
        ipp = lps[:3, 3] + k * lps[:3, 2] if positions_lps is None else positions_lps[k]
        name = f"{rng.integers(0, 2**48):012x}.dcm"
        paths.append(write_slice(directory / name, data_ijk[:, :, k].T, ipp=ipp, iop=iop,
                                 pixel_spacing=(row_step, col_step), instance=1000 - k,
                                 series_uid=series_uid, slope=slope, intercept=intercept))
    return paths


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, qform_code: int = 1,
                sform_code: int = 1) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine if qform_code else None, code=qform_code)
    img.set_sform(affine if sform_code else None, code=sform_code)
    nib.save(img, str(path))
    return path


@pytest.fixture
def ref_volume() -> np.ndarray:
    return reference_volume()


@pytest.fixture
def ref_affine() -> np.ndarray:
    return reference_affine()


@pytest.fixture
def axial_series(tmp_path: Path) -> Path:
    """The reference object as a standard axial (LPS storage) series in ``tmp_path/axial``."""
    data, affine = as_orientation(reference_volume(), reference_affine(), "LPS")
    write_series(tmp_path / "axial", data, affine)
    return tmp_path / "axial"
