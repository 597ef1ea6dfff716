"""Deterministic NIfTI-1 ``.nii.gz`` bytes from an array in the pipeline's ``(k, j, i)`` axis order.

Same bytes for the same array, affine and compression level (gzip with mtime 0 and no file
name), so DVC sees no change when nothing changed. Used by the demo's CT volumes and the MedMNIST
conversion.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_nifti_kji(path: Path, data_kji: np.ndarray, affine: np.ndarray, *, compresslevel: int) -> None:
    """Write ``data_kji`` (array axes k, j, i) atomically as NIfTI-1 (axes i, j, k) with ``affine``
    as qform and sform (code 1, scanner) and units mm."""
    import nibabel as nib

    from pipeline.utils.atomic import write_bytes

    img = nib.Nifti1Image(np.ascontiguousarray(data_kji.transpose(2, 1, 0)), affine)
    img.header.set_data_dtype(data_kji.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=compresslevel, mtime=0))
