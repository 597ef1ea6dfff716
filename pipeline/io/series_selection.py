"""Which files of a directory form the series, and in what order (steps 1-3 of
:mod:`pipeline.io.series`).

Every file is scanned header-only (:class:`Slice`); files that are not DICOM, not images or lack
image-plane geometry are excluded, never fatal. The series with the most slices wins; slices
whose orientation or Rows/Columns/PixelSpacing differ from the majority are excluded. The rest
are sorted by ImagePositionPatient projected on the slice normal, duplicate positions keeping
the lowest InstanceNumber (:func:`select_series`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.dicom import is_image_sop, open_dicom
from pipeline.io.errors import InputRejected


@dataclass(frozen=True)
class Slice:
    """One file's header: the image plane and what groups and sorts it."""

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
class Selection:
    """The chosen series (:func:`select_series`) and what was left out."""

    slices: list[Slice]  # kept slices, sorted by position along the normal
    positions: np.ndarray  # (n,) mm along the normal, ascending
    normal: np.ndarray  # (3,) LPS unit vector, row cosine x column cosine
    excluded: list[dict[str, str]]
    n_files: int


def select_series(directory: Path) -> Selection:
    """The main series of ``directory``, sorted along the slice normal, de-duplicated.

    Raises:
        InputRejected: Not a directory, or no usable image slice in it.
    """
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
    return Selection(slices, positions, normal, excluded, len(files))


def _scan_headers(directory: Path, files: list[Path], excluded: list[dict]) -> list[Slice]:
    slices = []
    for path in files:
        name = path.relative_to(directory).as_posix()
        try:
            slices.append(_parse_header(open_dicom(path, stop_before_pixels=True), path, name))
        except InputRejected as exc:
            excluded.append({"file": name, "reason": exc.reason})
    return slices


def _parse_header(ds: Any, path: Path, name: str) -> Slice:
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
    return Slice(path, name, uid, iop, ipp, rows, cols, spacing, _instance_number(ds))


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


def _size_key(s: Slice) -> tuple:
    return s.rows, s.cols, round(s.pixel_spacing[0], 4), round(s.pixel_spacing[1], 4)


def _keep_largest_series(slices: list[Slice], excluded: list[dict]) -> list[Slice]:
    counts = Counter(s.series_uid for s in slices)
    if not counts:
        return []
    best = min(counts, key=lambda uid: (-counts[uid], uid))  # deterministic on ties
    return _partition(slices, lambda s: s.series_uid == best,
                      "different series in the same directory", excluded)


def _keep_majority(slices: list[Slice], key: Callable[[Slice], Any],
                   matches: Callable[[Slice, Slice], bool], reason: str,
                   excluded: list[dict]) -> list[Slice]:
    if not slices:
        return []
    mode = Counter(key(s) for s in slices).most_common(1)[0][0]
    reference = next(s for s in slices if key(s) == mode)
    return _partition(slices, lambda s: matches(s, reference), reason, excluded)


def _partition(slices: list[Slice], keep: Callable[[Slice], bool], reason: str,
               excluded: list[dict]) -> list[Slice]:
    kept = []
    for s in slices:
        if keep(s):
            kept.append(s)
        else:
            excluded.append({"file": s.name, "reason": reason})
    return kept


def _sort_and_dedupe(slices: list[Slice], normal: np.ndarray,
                     excluded: list[dict]) -> tuple[list[Slice], np.ndarray]:
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


def _instance_sort_key(s: Slice) -> tuple:
    return (s.instance is None, s.instance or 0, s.name)
