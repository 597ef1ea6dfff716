"""One reader for 3D inputs: a DICOM series folder or a NIfTI file, told apart by the path.

Ingest, the report and predict all read volumes through :func:`read_volume`, so they accept the
same inputs with the same limits and give the same canonical ``(D, H, W)`` array (see
:mod:`pipeline.io.series` and :mod:`pipeline.io.nifti`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.errors import InputRejected

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_volume(path: Path, *, max_voxels: int, on_missing_slices: str = "interpolate",
                min_slices: int = 8, max_pixel_bytes: int | None = None,
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a 3D input as ingest does.

    Args:
        path: A DICOM series directory or a ``.nii``/``.nii.gz`` file.
        max_voxels: Refuse larger volumes (``too_large``).
        on_missing_slices, min_slices, max_pixel_bytes: DICOM series only, see
            :func:`pipeline.io.series.read_dicom_series`.

    Returns:
        ``(volume, meta)`` with ``meta["format"]`` = ``dicom_series`` or ``nifti``.

    Raises:
        InputRejected: Unreadable, or neither a directory nor a NIfTI file (code ``bad_path``).
    """
    from pipeline.io.nifti import read_nifti
    from pipeline.io.series import read_dicom_series

    path = Path(path)
    if path.is_dir():
        limits = {} if max_pixel_bytes is None else {"max_pixel_bytes": max_pixel_bytes}
        volume, meta = read_dicom_series(path, max_voxels=max_voxels, on_missing_slices=on_missing_slices,
                                         min_slices=min_slices, **limits)
        meta["format"] = "dicom_series"
    elif path.name.lower().endswith(NIFTI_SUFFIXES):
        volume, meta = read_nifti(path, max_voxels=max_voxels)
        meta["format"] = "nifti"
    else:
        raise InputRejected("3D tasks take a DICOM series directory or a .nii/.nii.gz file",
                            code="bad_path")
    return volume, meta
