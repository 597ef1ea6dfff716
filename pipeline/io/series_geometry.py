"""The slice grid and its geometry (steps 4-5 of :mod:`pipeline.io.series`).

:func:`plan_grid` measures the slice spacing (median position step), finds gaps and irregular
steps and plans the uniform grid (checking the voxel budget before any decoding);
:func:`interpolate_slices` resamples a stack onto it. :func:`tilt_deg` measures gantry tilt and
:func:`affine_lps` builds the voxel-to-LPS affine, sheared when the tilt is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.io.errors import InputRejected
from pipeline.io.series_selection import Selection

#: Gantry tilt (degrees) above which a series is flagged.
TILT_TOLERANCE_DEG = 0.5
#: A position step larger than this multiple of the median step is a gap.
GAP_RATIO = 1.5
#: Relative deviation of a step from the median above which spacing is irregular.
IRREGULAR_TOLERANCE = 0.1


@dataclass(frozen=True)
class Grid:
    """The planned output slices (:func:`plan_grid`)."""

    positions: np.ndarray  # target slice positions along the normal, mm
    spacing: float  # median step, mm
    missing: int
    irregular: bool
    resample: bool


def plan_grid(positions: np.ndarray, on_missing: str, *, max_slices: int,
              max_voxels: int) -> Grid:
    """The slice positions to output: ``positions`` as they are, or a uniform grid at the median
    step when there are gaps or irregular steps (rejected for ``on_missing="reject"``)."""
    steps = np.diff(positions)
    spacing = float(np.median(steps))
    ratio = steps / spacing
    gaps = ratio > GAP_RATIO
    missing = int(np.sum(np.rint(ratio[gaps]) - 1))
    irregular = bool(np.any(np.abs(ratio[~gaps] - 1) > IRREGULAR_TOLERANCE)
                     or np.any(np.abs(ratio[gaps] - np.rint(ratio[gaps])) > IRREGULAR_TOLERANCE))
    if gaps.any() and on_missing == "reject":
        raise InputRejected(f"missing slices: about {missing} slice(s) missing in "
                            f"{int(gaps.sum())} gap(s) (a position step above {GAP_RATIO}x "
                            "the median)", code="missing_slices")
    resample = bool(gaps.any()) or irregular
    n = int(round((positions[-1] - positions[0]) / spacing)) + 1 if resample else len(positions)
    if n > max_slices:
        raise InputRejected(f"volume of {n} slices exceeds the cap of {max_voxels} voxels "
                            "(checked before decoding)", code="too_large")
    target = positions[0] + spacing * np.arange(n) if resample else positions.copy()
    return Grid(target, spacing, missing, irregular, resample)


def tilt_deg(sel: Selection) -> float:
    """Angle (degrees) between the slice normal and the line through the first and last slice."""
    delta = sel.slices[-1].ipp - sel.slices[0].ipp
    cosine = abs(float(delta @ sel.normal)) / max(float(np.linalg.norm(delta)), 1e-12)
    return float(np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0))))


def affine_lps(sel: Selection, spacing: float, tilted: bool) -> np.ndarray:
    """(column, row, slice, 1) -> LPS mm. PixelSpacing[0] is the step between rows."""
    first = sel.slices[0]
    if tilted:  # the true step, sheared: voxel centres stay where the scanner put them
        delta = sel.slices[-1].ipp - first.ipp
        step = delta * spacing / (sel.positions[-1] - sel.positions[0])
    else:
        step = sel.normal * spacing
    affine = np.eye(4)
    affine[:3, 0] = first.iop[:3] * first.pixel_spacing[1]
    affine[:3, 1] = first.iop[3:] * first.pixel_spacing[0]
    affine[:3, 2] = step
    affine[:3, 3] = first.ipp
    return affine


def interpolate_slices(stack: np.ndarray, positions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 0 from ``positions`` to ``target`` (both ascending)."""
    out = np.empty((len(target),) + stack.shape[1:], dtype=np.float32)
    upper = np.clip(np.searchsorted(positions, target, side="left"), 1, len(positions) - 1)
    for t, (pos, hi) in enumerate(zip(target, upper, strict=True)):
        lo = hi - 1
        w = float(np.clip((pos - positions[lo]) / (positions[hi] - positions[lo]), 0.0, 1.0))
        out[t] = stack[lo] * np.float32(1.0 - w) + stack[hi] * np.float32(w)
    return out
