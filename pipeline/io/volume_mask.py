"""3D segmentation masks on their image's canonical grid.

A NIfTI mask goes through the same :func:`pipeline.io.orientation.reorient_to_canonical` as
its image (via :func:`pipeline.io.nifti.read_nifti`), then must land on exactly the same
canonical grid: same shape and same ``affine_ras`` within a hundredth of the smallest voxel.
A DICOM series whose missing slices were interpolated has the complete uniform grid in
``image_meta``, so a mask drawn on the complete grid matches. ``.npy`` masks carry no geometry
and are taken to be in the image's canonical ``(D, H, W)`` order already.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io.errors import InputRejected
from pipeline.io.nifti import read_nifti

#: Affine tolerance as a fraction of the image's smallest voxel size.
GRID_TOLERANCE = 0.01


def read_volume_mask(path: Path, *, image_meta: dict) -> np.ndarray:
    """Read a binary mask for a volume read by :mod:`pipeline.io.series` or :mod:`pipeline.io.nifti`.

    Args:
        path: ``.nii``/``.nii.gz`` (with a valid qform or sform) or ``.npy`` (numeric or bool,
            canonical ``(D, H, W)`` order; never unpickled).
        image_meta: The image reader's ``meta``; uses ``shape``, ``affine_ras`` and
            ``spacing``.

    Returns:
        uint8 ``(D, H, W)`` array of 0/1 on the image's canonical grid (any value > 0 is 1).

    Raises:
        InputRejected: Unreadable or unsupported file, non-finite values, or a grid that
            does not match the image (``"mask grid does not match its image"``).
    """
    path = Path(path)
    shape = tuple(int(n) for n in image_meta["shape"])
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        values = _nifti_mask(path, image_meta, shape)
    elif name.endswith(".npy"):
        values = _npy_mask(path, shape)
    else:
        raise InputRejected("unsupported mask format (need .nii, .nii.gz or .npy)",
                            code="bad_format")
    return (values > 0).astype(np.uint8)


def _nifti_mask(path: Path, image_meta: dict, shape: tuple[int, ...]) -> np.ndarray:
    try:  # a mask never needs more voxels than its image: the cap doubles as a bomb guard
        values, meta = read_nifti(path, require_orientation=True,
                                  max_voxels=max(int(np.prod(shape)), 1))
    except InputRejected as exc:
        if exc.code != "too_large":
            raise
        raise InputRejected("mask grid does not match its image (more voxels than the image)",
                            code="mask_mismatch") from None
    tol = GRID_TOLERANCE * min(float(s) for s in image_meta["spacing"])
    same_affine = np.allclose(np.asarray(meta["affine_ras"]), np.asarray(image_meta["affine_ras"]),
                              rtol=0.0, atol=tol)
    if values.shape != shape or not same_affine:
        raise InputRejected("mask grid does not match its image (canonical shape "
                            f"{values.shape} vs {shape}, affines equal: {same_affine})",
                            code="mask_mismatch")
    return values


def _npy_mask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # object arrays raise ValueError here
        raise InputRejected(f"unreadable .npy mask ({type(exc).__name__}); object or pickled "
                            "arrays are refused", code="unreadable") from None
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf":
        raise InputRejected("mask must be a numeric or boolean array", code="bad_dtype")
    if values.shape != shape:
        raise InputRejected(f"mask grid does not match its image (shape {values.shape} vs "
                            f"{shape})", code="mask_mismatch")
    values = np.asarray(values)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InputRejected("non-finite mask values (NaN or Inf)", code="non_finite")
    return values
