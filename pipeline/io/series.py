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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.dicom import DEFAULT_MAX_PIXEL_BYTES, decode_pixels, is_image_sop, open_dicom
from pipeline.io.errors import InputRejected
from pipeline.io.orientation import LPS_TO_RAS, geometry_meta, reorient_to_canonical

MISSING_SLICE_MODES: tuple[str, ...] = ("interpolate", "reject")
#: Gantry tilt (degrees) above which a series is flagged.
TILT_TOLERANCE_DEG = 0.5
#: A position step larger than this multiple of the median step is a gap.
GAP_RATIO = 1.5
#: Relative deviation of a step from the median above which spacing is irregular.
IRREGULAR_TOLERANCE = 0.1


@dataclass(frozen=True)
class _Slice:
    path: Path
    name: str  # relative to the scanned directory, POSIX separators
    series_uid: str
    iop: np.ndarray  # (6,) unit row cosine then unit column cosine, LPS
    ipp: np.ndarray  # (3,) mm, LPS
    rows: int
    cols: int
    pixel_spacing: tuple[float, float]  # (between rows, between columns), mm
    instance: int | None


@dataclass(frozen=True)
class _Selection:
    slices: list[_Slice]  # kept slices, sorted by position along the normal
    positions: np.ndarray  # (n,) mm along the normal, ascending
    normal: np.ndarray  # (3,) LPS unit vector, row cosine x column cosine
    excluded: list[dict[str, str]]
    n_files: int


@dataclass(frozen=True)
class _Grid:
    positions: np.ndarray  # target slice positions along the normal, mm
    spacing: float  # median step, mm
    missing: int
    irregular: bool
    resample: bool


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
        max_pixel_bytes: Per-slice decoded-size cap passed to :func:`decode_pixels`.

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
    sel = _select_series(Path(directory))
    if len(sel.slices) < max(min_slices, 2):
        raise InputRejected(f"too few slices ({len(sel.slices)}, need at least "
                            f"{max(min_slices, 2)})", code="too_few_slices")
    first = sel.slices[0]
    grid = _plan_grid(sel.positions, on_missing_slices,
                      max_slices=max_voxels // (first.rows * first.cols), max_voxels=max_voxels)
    stack, attrs = _decode_stack(sel.slices, max_pixel_bytes)
    if grid.resample:
        stack = _interpolate(stack, sel.positions, grid.positions)
    tilt = _tilt_deg(sel)
    source_affine = LPS_TO_RAS @ _affine_lps(sel, grid.spacing, tilt > TILT_TOLERANCE_DEG)
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
    sel = _select_series(Path(directory))
    ds = open_dicom(sel.slices[0].path, stop_before_pixels=True)
    value = str(ds.get("PatientID", "") or "").strip()
    return value or None


# --- selection -------------------------------------------------------------------------------


def _select_series(directory: Path) -> _Selection:
    if not directory.is_dir():
        raise InputRejected("series path is not a directory", code="unreadable")
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    excluded: list[dict[str, str]] = []
    slices = _scan_headers(directory, files, excluded)
    slices = _keep_largest_series(slices, excluded)
    slices = _keep_majority(slices, lambda s: tuple(np.round(s.iop, 3)),
                            lambda s, ref: bool(np.max(np.abs(s.iop - ref.iop)) <= 1e-3),
                            "orientation differs from the majority (localizer/scout)", excluded)
    slices = _keep_majority(slices, _size_key, lambda s, ref: _size_key(s) == _size_key(ref),
                            "Rows/Columns/PixelSpacing differ from the majority", excluded)
    if not slices:
        raise InputRejected("no usable DICOM image slices in the directory",
                            code="empty_series")
    normal = np.cross(slices[0].iop[:3], slices[0].iop[3:])
    slices, positions = _sort_and_dedupe(slices, normal, excluded)
    excluded.sort(key=lambda e: e["file"])
    return _Selection(slices, positions, normal, excluded, len(files))


def _scan_headers(directory: Path, files: list[Path], excluded: list[dict]) -> list[_Slice]:
    slices = []
    for path in files:
        name = path.relative_to(directory).as_posix()
        try:
            slices.append(_parse_header(open_dicom(path, stop_before_pixels=True), path, name))
        except InputRejected as exc:
            excluded.append({"file": name, "reason": exc.reason})
    return slices


def _parse_header(ds: Any, path: Path, name: str) -> _Slice:
    if not is_image_sop(ds):
        raise InputRejected("non-image SOP class", code="not_image")
    try:
        single = int(ds.get("NumberOfFrames", 1) or 1) == 1
        single = single and int(ds.get("SamplesPerPixel", 1) or 1) == 1
    except (TypeError, ValueError):
        single = False
    if not single:
        raise InputRejected("not a single-frame grayscale slice", code="not_slice")
    try:
        uid = str(ds.SeriesInstanceUID)
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
        spacing = tuple(float(v) for v in ds.PixelSpacing)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise InputRejected("missing or malformed image plane geometry (ImagePositionPatient, "
                            "ImageOrientationPatient, PixelSpacing, Rows, Columns, "
                            "SeriesInstanceUID)", code="no_geometry") from None
    _check_plane(iop, ipp, spacing, rows, cols)
    iop = np.concatenate([iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])])
    return _Slice(path, name, uid, iop, ipp, rows, cols, spacing, _instance_number(ds))


def _check_plane(iop: np.ndarray, ipp: np.ndarray, spacing: tuple, rows: int, cols: int) -> None:
    ok = (iop.shape == (6,) and ipp.shape == (3,) and len(spacing) == 2 and rows > 0
          and cols > 0 and np.isfinite(iop).all() and np.isfinite(ipp).all()
          and all(np.isfinite(s) and s > 0 for s in spacing))
    if ok:
        norms = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
        ok = max(abs(n - 1) for n in norms) < 1e-2 and abs(iop[:3] @ iop[3:]) < 1e-2
    if not ok:
        raise InputRejected("invalid image plane geometry (direction cosines, position or "
                            "pixel spacing)", code="no_geometry")


def _instance_number(ds: Any) -> int | None:
    try:
        return int(ds.InstanceNumber)
    except (AttributeError, TypeError, ValueError):
        return None


def _size_key(s: _Slice) -> tuple:
    return s.rows, s.cols, round(s.pixel_spacing[0], 4), round(s.pixel_spacing[1], 4)


def _keep_largest_series(slices: list[_Slice], excluded: list[dict]) -> list[_Slice]:
    counts = Counter(s.series_uid for s in slices)
    if not counts:
        return []
    best = min(counts, key=lambda uid: (-counts[uid], uid))  # deterministic on ties
    return _partition(slices, lambda s: s.series_uid == best,
                      "different series in the same directory", excluded)


def _keep_majority(slices: list[_Slice], key: Callable[[_Slice], Any],
                   matches: Callable[[_Slice, _Slice], bool], reason: str,
                   excluded: list[dict]) -> list[_Slice]:
    if not slices:
        return []
    mode = Counter(key(s) for s in slices).most_common(1)[0][0]
    reference = next(s for s in slices if key(s) == mode)
    return _partition(slices, lambda s: matches(s, reference), reason, excluded)


def _partition(slices: list[_Slice], keep: Callable[[_Slice], bool], reason: str,
               excluded: list[dict]) -> list[_Slice]:
    kept = []
    for s in slices:
        if keep(s):
            kept.append(s)
        else:
            excluded.append({"file": s.name, "reason": reason})
    return kept


def _sort_and_dedupe(slices: list[_Slice], normal: np.ndarray,
                     excluded: list[dict]) -> tuple[list[_Slice], np.ndarray]:
    proj = np.asarray([s.ipp @ normal for s in slices])
    order = np.argsort(proj, kind="stable")
    slices, proj = [slices[i] for i in order], proj[order]
    steps = np.diff(proj)
    moving = steps[steps > 1e-6]
    tol = 1e-3 * float(np.median(moving)) if moving.size else 1e-6
    clusters = np.split(np.arange(len(slices)), np.flatnonzero(steps > tol) + 1)
    kept = []
    for cluster in clusters:
        members = sorted(cluster, key=lambda i: _instance_sort_key(slices[i]))
        kept.append(members[0])
        for i in members[1:]:
            excluded.append({"file": slices[i].name, "reason": "duplicate slice position "
                             "(kept the slice with the lowest InstanceNumber)"})
    return [slices[i] for i in kept], proj[kept]


def _instance_sort_key(s: _Slice) -> tuple:
    return (s.instance is None, s.instance or 0, s.name)


# --- grid and geometry -----------------------------------------------------------------------


def _plan_grid(positions: np.ndarray, on_missing: str, *, max_slices: int,
               max_voxels: int) -> _Grid:
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
    return _Grid(target, spacing, missing, irregular, resample)


def _tilt_deg(sel: _Selection) -> float:
    delta = sel.slices[-1].ipp - sel.slices[0].ipp
    cosine = abs(float(delta @ sel.normal)) / max(float(np.linalg.norm(delta)), 1e-12)
    return float(np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0))))


def _affine_lps(sel: _Selection, spacing: float, tilted: bool) -> np.ndarray:
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


def _interpolate(stack: np.ndarray, positions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 0 from ``positions`` to ``target`` (both ascending)."""
    out = np.empty((len(target),) + stack.shape[1:], dtype=np.float32)
    upper = np.clip(np.searchsorted(positions, target, side="left"), 1, len(positions) - 1)
    for t, (pos, hi) in enumerate(zip(target, upper, strict=True)):
        lo = hi - 1
        w = float(np.clip((pos - positions[lo]) / (positions[hi] - positions[lo]), 0.0, 1.0))
        out[t] = stack[lo] * np.float32(1.0 - w) + stack[hi] * np.float32(w)
    return out


# --- decoding --------------------------------------------------------------------------------


def _decode_stack(slices: list[_Slice], max_pixel_bytes: int) -> tuple[np.ndarray, dict]:
    stack = np.empty((len(slices), slices[0].rows, slices[0].cols), dtype=np.float32)
    attrs: dict = {}
    for k, s in enumerate(slices):
        try:
            ds = open_dicom(s.path)
            stack[k] = _decode_slice(ds, s, max_pixel_bytes)
        except InputRejected as exc:
            raise InputRejected(f"slice '{s.name}': {exc.reason}", code=exc.code) from None
        if k == 0:
            attrs = _series_attributes(ds)
    return stack, attrs


def _decode_slice(ds: Any, s: _Slice, max_pixel_bytes: int) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    try:
        frames = decode_pixels(ds, max_pixel_bytes=max_pixel_bytes)
    except InputRejected:
        raise
    except Exception as exc:  # decode_pixels lets a few pydicom errors through
        raise InputRejected(f"pixel data could not be decoded ({type(exc).__name__})",
                            code="decode_error") from None
    if frames.shape != (1, s.rows, s.cols):
        raise InputRejected("pixel data shape differs from the scanned header",
                            code="decode_error")
    try:
        values = apply_modality_lut(frames[0], ds)
    except Exception as exc:  # malformed RescaleSlope/Intercept or Modality LUT
        raise InputRejected(f"invalid modality LUT ({type(exc).__name__})",
                            code="bad_header") from None
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise InputRejected("non-finite values after the modality LUT", code="non_finite")
    return values


def _series_attributes(ds: Any) -> dict:
    """Non-PHI acquisition attributes of the first slice."""
    ts = getattr(ds, "file_meta", None)
    ts = ts.get("TransferSyntaxUID") if ts is not None else None
    try:
        kvp = float(ds.KVP) if ds.get("KVP") not in (None, "") else None
    except (TypeError, ValueError):
        kvp = None
    return {
        "modality": str(ds.get("Modality", "") or "") or None,
        "manufacturer": str(ds.get("Manufacturer", "") or "") or None,
        "transfer_syntax": str(ts) if ts else None,
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "kvp": kvp,
    }
