"""The detectors behind :func:`pipeline.explain.fov.body_mask` and
:func:`pipeline.explain.fov.marker_mask`: body of a 2D radiograph, body of a 3D CT volume and
burned-in markers of a 2D radiograph, with their scipy.ndimage building blocks.

Each detector takes one chunk of images as float32 ``(N, *spatial)`` in [0, 1] (already
validated and converted by :mod:`pipeline.explain.fov`) and returns bool of the same shape. The
images of a chunk are processed together, with structuring elements that connect pixels within
one image (or one slice) only. The rules they implement, their parameters and the measured
behaviour are in :mod:`pipeline.explain.fov`'s docstring; lengths are given for a
:data:`REFERENCE_SIDE` px image and scale with ``min(H, W) / REFERENCE_SIDE``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Image side (px) at which the lengths of the rules are given.
REFERENCE_SIDE = 256


def _scale(shape: Sequence[int]) -> float:
    return min(shape) / REFERENCE_SIDE


def _in_plane(rank: int, full: bool = False) -> np.ndarray:
    """Structuring element connecting pixels within one image/slice of a stacked array only."""
    from scipy import ndimage as ndi

    plane = np.ones((3, 3), bool) if full else ndi.generate_binary_structure(2, 1)
    out = np.zeros((3,) * (rank - 2) + (3, 3), bool)
    out[(1,) * (rank - 2)] = plane
    return out


def _within_image(rank: int) -> np.ndarray:
    """Face connectivity inside each image/volume of a stack, none across the stack axis."""
    from scipy import ndimage as ndi

    out = np.zeros((3,) * rank, bool)
    out[1] = ndi.generate_binary_structure(rank - 1, 1)
    return out


def _component_image(labels: np.ndarray, n: int) -> np.ndarray:
    """Index of the image (axis 0) holding each label ``0..n`` (label 0: image 0)."""
    owner = np.zeros(n + 1, np.int64)
    index = np.arange(labels.shape[0]).reshape((-1,) + (1,) * (labels.ndim - 1))
    stack = np.broadcast_to(index, labels.shape)
    owner[labels.ravel()] = stack.ravel()
    return owner


def body_2d(x: np.ndarray, fov: np.ndarray, dark_level: float) -> np.ndarray:
    """Body of 2D radiographs ``(N, H, W)`` inside their field of view ``fov``
    (:func:`pipeline.explain.fov.field_of_view` of ``x``)."""
    from scipy import ndimage as ndi

    if x.size == 0 or not fov.any():
        return fov
    scale = _scale(x.shape[1:])
    blurred = ndi.gaussian_filter(x, (0.0,) + (2.0 * max(scale, 0.5),) * 2)
    dark = (blurred <= dark_level) & fov
    plane = _in_plane(3)
    labels, _ = ndi.label(dark, structure=plane)
    # Seeds in a band, not on the edge line: a thin frame around a screen capture would hide them.
    width = max(2, int(round(6 * scale)))
    band = fov & ~ndi.binary_erosion(fov, structure=plane, iterations=max(3, width), border_value=0)
    seeded = np.zeros(labels.max() + 1, bool)
    seeded[labels[band & dark]] = True
    seeded[0] = False
    # Blurring moved the edge outwards by a pixel or two: follow the raw dark pixels back to it.
    background = ndi.binary_dilation(seeded[labels], structure=plane, iterations=width,
                                     mask=(x <= dark_level) & fov)
    candidate = fov & ~background
    candidate = ndi.binary_opening(candidate, structure=_in_plane(3, full=True), iterations=width)
    labels, n = ndi.label(candidate, structure=plane)
    if n == 0:
        return candidate
    sizes = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
    owner = _component_image(labels, n)
    largest = np.zeros(len(x))
    np.maximum.at(largest, owner[1:], sizes[1:])
    fov_area = fov.sum(axis=(1, 2))
    keep = (sizes >= 0.01 * fov_area[owner]) & (sizes >= 0.1 * largest[owner])
    keep[0] = False
    return ndi.binary_fill_holes(keep[labels], structure=plane) & fov


def tissue_level(hu_window: Sequence[float], air_hu: float) -> tuple[float, bool]:
    """``air_hu`` in the window's [0, 1] units, and whether the window's floor is above it (the
    level is then just above 0)."""
    values = [float(v) for v in hu_window]
    if len(values) != 2 or not (np.isfinite(values).all() and values[1] > 0) or not np.isfinite(air_hu):
        raise ValueError(f"hu_window must be [center, width] (HU, width > 0) and air_hu finite. "
                         f"Received: hu_window={list(hu_window)}, air_hu={air_hu!r}")
    center, width = values
    level = (air_hu - (center - width / 2)) / width
    if level >= 1.0:
        raise ValueError(f"air_hu={air_hu} is above the window's ceiling ({center + width / 2} HU): no "
                         f"voxel could be tissue. Received: hu_window={list(hu_window)}")
    return max(level, 0.5 / 255.0), level <= 0.0


def body_3d(x: np.ndarray, level: float, radius: int, lung_blind: bool) -> np.ndarray:
    """Body of CT volumes ``(N, D, H, W)``: tissue above ``level``, opened per slice ``radius``
    times, the largest component, holes filled per slice (``level``, ``lung_blind``:
    :func:`tissue_level`)."""
    from scipy import ndimage as ndi

    if x.size == 0:
        return np.zeros(x.shape, bool)
    in_plane = _in_plane(4)
    tissue = ndi.median_filter(x, size=(1, 1, 3, 3)) > level
    if lung_blind:  # lungs are not tissue here: the opening must not break a thin chest wall
        tissue = ndi.binary_fill_holes(tissue, structure=in_plane)
    square = _in_plane(4, full=True)
    core = ndi.binary_opening(tissue, structure=square, iterations=radius) if radius else tissue
    labels, n = ndi.label(core, structure=_within_image(4))
    if n == 0:
        return core
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    owner = _component_image(labels, n)
    best = np.zeros(len(x), np.int64)
    np.maximum.at(best, owner, sizes)
    keep = (sizes == best[owner]) & (sizes > 0)
    # One component per volume even on ties: the lowest label of the largest size.
    first = np.full(len(x), n + 1)
    np.minimum.at(first, owner[keep], np.flatnonzero(keep))
    keep &= np.arange(n + 1) == first[owner]
    return ndi.binary_fill_holes(keep[labels], structure=in_plane)


def markers_2d(x: np.ndarray, min_value: float, contrast: float, edge_contrast: float,
                max_area: float, max_extent: float) -> np.ndarray:
    """Burned-in markers of 2D radiographs ``(N, H, W)`` (parameters:
    :func:`pipeline.explain.fov.marker_mask`)."""
    from scipy import ndimage as ndi

    scale = _scale(x.shape[1:])
    size = max(3, int(round(21 * scale)) | 1)
    tophat = x - ndi.grey_opening(x, size=(1, size, size))
    candidate = (x >= min_value) & (tophat >= contrast)
    labels, n = ndi.label(candidate, structure=_in_plane(3, full=True))
    if n == 0:
        return candidate
    index = np.arange(1, n + 1)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    boxes = ndi.find_objects(labels)
    extent = np.array([max(b[1].stop - b[1].start, b[2].stop - b[2].start) for b in boxes])
    grown = ndi.grey_dilation(labels, size=(1, 3, 3))
    ring = np.where((labels == 0) & (grown > 0), grown, 0)
    inner = ndi.mean(x, labels, index)
    outer = np.nan_to_num(ndi.mean(x, ring, index), nan=0.0)  # no ring: touches nothing
    plane_area = x.shape[1] * x.shape[2]
    keep = ((area >= max(2.0, 4.0 * scale**2)) & (area <= max_area * plane_area)
            & (extent <= max(3.0, max_extent * min(x.shape[1:]))) & (inner - outer >= edge_contrast))
    return np.concatenate([[False], keep])[labels]
