"""The one reorientation to the canonical 3D grid, shared by every volume and mask reader.

Canonical grid
    ``volume[d, h, w]`` with increasing ``d`` pointing to patient Superior, ``h`` to Posterior
    and ``w`` to Left: axial slices in radiological display convention. Seen as a nibabel array
    indexed ``(x, y, z) = (w, h, d)`` it has axis codes ``("L", "P", "S")``.

Affine convention
    ``affine_ras`` is a 4x4 matrix mapping the homogeneous voxel index ``(w, h, d, 1)`` (the
    *reversed* canonical axis order, as nibabel indexes ``volume.transpose(2, 1, 0)``) to RAS+
    world coordinates in millimetres (the NIfTI / nibabel convention). So
    ``nibabel.Nifti1Image(volume.transpose(2, 1, 0), affine_ras)`` is a valid image of the
    canonical volume. The DICOM patient frame (LPS+) is ``diag(-1, -1, 1, 1) @ affine_ras``.

Only axis permutations and flips are applied (never resampling), chosen with
:func:`nibabel.orientations.io_orientation` (the closest axis for oblique data); an oblique
volume therefore stays oblique in ``affine_ras``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.io.errors import InputRejected

#: nibabel axis codes of the canonical array indexed (w, h, d).
CANONICAL_AXCODES: tuple[str, str, str] = ("L", "P", "S")

#: RAS+ <-> LPS+ (DICOM patient frame) conversion, its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def reorient_to_canonical(
    data_ijk: np.ndarray, affine_ras: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str]:
    """Permute and flip a source array onto the canonical ``(D, H, W)`` grid.

    Args:
        data_ijk: 3D array indexed ``(i, j, k)`` as its source affine expects (NIfTI storage
            order; for DICOM ``i`` = column index, ``j`` = row index, ``k`` = slice index).
        affine_ras: 4x4 source affine, ``(i, j, k, 1)`` -> RAS+ mm.

    Returns:
        ``(volume, canonical_affine, source_axcodes)``: ``volume`` indexed ``(d, h, w)``
        (a contiguous copy, same dtype), the 4x4 affine mapping ``(w, h, d, 1)`` to RAS+ mm,
        and the source axis codes as a string such as ``"LPS"`` or ``"RAS"``.

    Raises:
        InputRejected: The affine is not finite or is degenerate (no orientation).
        ValueError: ``data_ijk`` is not 3D or the affine is not 4x4 (caller bugs).
    """
    from nibabel import orientations as nio

    data = np.asarray(data_ijk)
    affine = _checked_affine(affine_ras)
    if data.ndim != 3:
        raise ValueError(f"data_ijk must be 3D. Received: shape={data.shape}")
    source = nio.io_orientation(affine)
    if np.isnan(source).any():
        raise InputRejected("degenerate affine (an axis has no direction)", code="bad_geometry")
    transform = nio.ornt_transform(source, nio.axcodes2ornt(CANONICAL_AXCODES))
    reoriented = nio.apply_orientation(data, transform)
    canonical_affine = affine @ nio.inv_ornt_aff(transform, data.shape)
    volume = np.ascontiguousarray(reoriented.transpose(2, 1, 0))
    return volume, canonical_affine, "".join(nio.ornt2axcodes(source))


def to_source_orientation(volume: np.ndarray, source_affine_ras: np.ndarray) -> np.ndarray:
    """Inverse of :func:`reorient_to_canonical`: canonical ``(D, H, W)`` back to source ``(i, j, k)``.

    Useful to write a prediction or heat map in the input's own storage order.

    Args:
        volume: Canonical array indexed ``(d, h, w)``.
        source_affine_ras: The source affine (``meta["source_affine_ras"]``).

    Returns:
        The array in the source storage order, a contiguous copy.
    """
    from nibabel import orientations as nio

    affine = _checked_affine(source_affine_ras)
    transform = nio.ornt_transform(nio.axcodes2ornt(CANONICAL_AXCODES), nio.io_orientation(affine))
    return np.ascontiguousarray(nio.apply_orientation(np.asarray(volume).transpose(2, 1, 0),
                                                      transform))


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Column norms of an affine's 3x3 part: mm per voxel step along each index axis."""
    return np.sqrt(np.sum(np.asarray(affine, dtype=np.float64)[:3, :3] ** 2, axis=0))


def geometry_meta(
    *,
    canonical_shape: Sequence[int],
    canonical_affine: np.ndarray,
    source_shape: Sequence[int],
    source_affine: np.ndarray,
    source_axcodes: str,
) -> dict:
    """The geometry part of a volume reader's metadata (JSON-serialisable).

    Keys: ``shape`` and ``spacing`` (canonical ``(D, H, W)``, mm), ``affine_ras`` (see the
    module docstring), ``original_shape`` and ``original_spacing`` (source ``(i, j, k)``
    order, mm), ``source_affine_ras`` (``(i, j, k, 1)`` -> RAS+ mm) and
    ``source_orientation`` (axis codes such as ``"LPS"``).
    """
    return {
        "shape": [int(n) for n in canonical_shape],
        "spacing": [float(s) for s in voxel_sizes(canonical_affine)[::-1]],
        "affine_ras": _as_list(canonical_affine),
        "original_shape": [int(n) for n in source_shape],
        "original_spacing": [float(s) for s in voxel_sizes(source_affine)],
        "source_affine_ras": _as_list(source_affine),
        "source_orientation": source_axcodes,
    }


def _checked_affine(affine: np.ndarray) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4. Received: shape={affine.shape}")
    if not np.isfinite(affine).all():
        raise InputRejected("affine has non-finite values", code="bad_geometry")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputRejected("degenerate affine (zero voxel size or collinear axes)",
                            code="bad_geometry")
    return affine


def _as_list(affine: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(affine, dtype=np.float64)]
