"""DICOM series reader: a directory of single-frame slices -> float32 ``(D, H, W)`` volume.

Follows what dcm2niix, dicom2nifti and MONAI users expect:

1. Every file is scanned header-only; files that are not DICOM, not images or lack image-plane
   geometry are excluded (listed in ``meta["excluded"]``), never fatal.
2. The series with the most slices wins; other series, slices whose orientation differs from
   the majority (localizers) and slices with other Rows/Columns/PixelSpacing are excluded.
3. Slices are sorted by ImagePositionPatient projected on the slice normal (never by file
   name or InstanceNumber); duplicate positions keep the lowest InstanceNumber.
4. Slice spacing is the median position step. Gaps (a step > 1.5x the median) are rejected
   or linearly interpolated onto the uniform grid; irregular spacing is resampled and flagged.
5. Gantry tilt is measured and flagged in ``meta["gantry_tilt_deg"]``, not corrected: the
   affine then holds the true (sheared) slice step so voxel positions stay exact.
6. The voxel budget is checked before any pixel is decoded; each slice is decoded and its own
   modality LUT applied; one bad slice rejects the series.
7. The volume is put on the canonical grid by :func:`pipeline.io.orientation.reorient_to_canonical`.

This module holds the reader (:func:`read_dicom_series`, :func:`series_patient_id`); steps 1-3
are in :mod:`pipeline.io.series_selection`, 4-5 in :mod:`pipeline.io.series_geometry` and 6 in
:mod:`pipeline.io.series_decode`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io.dicom import open_dicom
from pipeline.io.dicom_pixels import DEFAULT_MAX_PIXEL_BYTES
from pipeline.io.errors import InputRejected
from pipeline.io.orientation import LPS_TO_RAS, geometry_meta, reorient_to_canonical
from pipeline.io.series_decode import decode_stack
from pipeline.io.series_geometry import (
    TILT_TOLERANCE_DEG,
    affine_lps,
    interpolate_slices,
    plan_grid,
    tilt_deg,
)
from pipeline.io.series_selection import select_series

MISSING_SLICE_MODES: tuple[str, ...] = ("interpolate", "reject")


def read_dicom_series(
    directory: Path,
    *,
    max_voxels: int = 512**3,
    on_missing_slices: str = "interpolate",
    min_slices: int = 8,
    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
) -> tuple[np.ndarray, dict]:
    """Read the main series of a directory as a canonical 3D volume.

    Args:
        directory: Folder holding the slices (scanned recursively).
        max_voxels: Cap on rows x columns x slices of the output grid, checked before decoding.
        on_missing_slices: ``"interpolate"`` (linearly, from the true positions) or
            ``"reject"`` when the position steps show missing slices.
        min_slices: Fewest slices (after exclusions and de-duplication) accepted.
        max_pixel_bytes: Per-slice decoded-size cap passed to
            :func:`pipeline.io.dicom_pixels.decode_pixels`.

    Returns:
        ``(volume, meta)``: ``volume`` float32 ``(D, H, W)`` (D Superior, H Posterior, W Left)
        after each slice's modality LUT (Hounsfield units for CT). ``meta`` holds the keys of
        :func:`pipeline.io.orientation.geometry_meta` (``original_*`` in the DICOM storage
        order ``(column, row, slice)`` on the uniform grid), plus ``format``, ``n_files``,
        ``n_slices_used``, ``excluded`` (``{"file", "reason"}`` dicts), ``slice_spacing_median``
        (mm along the normal), ``missing_slices``, ``spacing_irregular``, ``gantry_tilt_deg``
        (0.0 unless above 0.5 degrees), ``modality``, ``manufacturer``, ``transfer_syntax``,
        ``rows``, ``columns`` and ``kvp`` (None when absent). No patient identifiers: see
        :func:`series_patient_id`. The "source" array is the stack sorted along the slice
        normal, so ``source_orientation`` describes that order, not the file order. With a
        flagged gantry tilt ``spacing[0]`` is the length of the sheared slice step while
        ``slice_spacing_median`` is the distance between slice planes.

    Raises:
        InputRejected: No usable series, too few slices, missing slices with ``"reject"``,
            too many voxels, or any kept slice failing to decode (the reason names that file).
        ValueError: Unknown ``on_missing_slices``.
    """
    if on_missing_slices not in MISSING_SLICE_MODES:
        raise ValueError(f"on_missing_slices must be one of {list(MISSING_SLICE_MODES)}. "
                         f"Received: {on_missing_slices!r}")
    sel = select_series(Path(directory))
    if len(sel.slices) < max(min_slices, 2):
        raise InputRejected(f"too few slices ({len(sel.slices)}, need at least "
                            f"{max(min_slices, 2)})", code="too_few_slices")
    first = sel.slices[0]
    grid = plan_grid(sel.positions, on_missing_slices,
                     max_slices=max_voxels // (first.rows * first.cols), max_voxels=max_voxels)
    stack, attrs = decode_stack(sel.slices, max_pixel_bytes)
    if grid.resample:
        stack = interpolate_slices(stack, sel.positions, grid.positions)
    tilt = tilt_deg(sel)
    source_affine = LPS_TO_RAS @ affine_lps(sel, grid.spacing, tilt > TILT_TOLERANCE_DEG)
    data_ijk = stack.transpose(2, 1, 0)  # (column, row, slice)
    volume, affine, axcodes = reorient_to_canonical(data_ijk, source_affine)
    meta = geometry_meta(canonical_shape=volume.shape, canonical_affine=affine,
                         source_shape=data_ijk.shape, source_affine=source_affine,
                         source_axcodes=axcodes)
    meta.update(format="dicom_series", n_files=sel.n_files, n_slices_used=len(sel.slices),
                excluded=sel.excluded, slice_spacing_median=grid.spacing,
                missing_slices=grid.missing, spacing_irregular=grid.irregular,
                gantry_tilt_deg=round(tilt, 3) if tilt > TILT_TOLERANCE_DEG else 0.0, **attrs)
    return volume, meta


def series_patient_id(directory: Path) -> str | None:
    """PatientID of the series :func:`read_dicom_series` would choose in ``directory``.

    The return value is PHI: pass it straight to the pseudonymisation step, never log it or
    write it anywhere. Kept apart from the reader so that ``meta`` never carries it.

    Returns:
        The PatientID, or None when the element is absent or empty.

    Raises:
        InputRejected: No usable series in the directory.
    """
    sel = select_series(Path(directory))
    ds = open_dicom(sel.slices[0].path, stop_before_pixels=True)
    value = str(ds.get("PatientID", "") or "").strip()
    return value or None
