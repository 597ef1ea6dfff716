"""Shapes shared by the 2D and 3D demo phantoms.

Used by :mod:`pipeline.demo.xray_phantom` and :mod:`pipeline.demo.ct_phantom`: soft blobs
(:class:`Blob`) and blurred tubes (:class:`Segment`) with their profile and distance helpers,
and the visibility thresholds that define the demo lesion masks (:data:`VISIBLE_HU`,
:data:`VISIBLE_PHYSICAL`). Coordinates are 2D unit coordinates for the radiograph phantom and
3D LPS mm for the CT phantom (see those modules).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Lesion masks cover what a reader sees, not the half-maximum core (issue 11: the half-maximum
#: support of these flat-topped profiles held only ~1/3 of the visibly raised CT voxels). The
#: rule: a pixel/voxel belongs to the lesion where the lesion raises the noise-free image by at
#: least 1/15 of its display range. CT: 100 HU of the 1500 HU lung window (17 of 256 grey
#: levels, 4 sigma of the noisiest demo volume, ~11% of a nodule's ~900 HU peak contrast: the
#: profile's 0.11 level, ~1.47 half-maximum radii). Radiographs: 0.05 physical units, 1/15 of
#: a demo radiograph's typical 0.5-99.5 percentile range (~0.78); 10-25% of an opacity's peak.
VISIBLE_HU = 100.0
VISIBLE_PHYSICAL = 0.05


@dataclass(frozen=True)
class Blob:
    """A soft ellipse/ellipsoid: flat top, edge at ``radius`` (half maximum).

    Attributes:
        center: 2D unit coordinates ``(x, y)`` or 3D LPS mm ``(x, y, z)``.
        radius: Half-maximum radius along the major axis (units, or mm).
        amplitude: 2D: value added at the centre (physical units). 3D: the HU the blob
            takes at its centre (nodules); unused for vessel look-alikes (40 HU).
        aspect: Second radius / ``radius`` (2D: the axis across ``angle``; 3D: the z radius).
        angle: Rotation of the major axis, radians (2D only).
    """

    center: tuple[float, ...]
    radius: float
    amplitude: float
    aspect: float = 1.0
    angle: float = 0.0


@dataclass(frozen=True)
class Segment:
    """A blurred straight tube from ``start`` to ``end`` (ribs, clavicles, vessels)."""

    start: tuple[float, ...]
    end: tuple[float, ...]
    width: float
    amplitude: float


def blob_profile(distance: np.ndarray) -> np.ndarray:
    """Flat-topped soft profile: 1 at the centre, 0.5 at ``distance == 1`` (normalised)."""
    return np.exp(-np.log(2.0) * distance**3)


def soft_inside(signed_distance: np.ndarray, edge: float) -> np.ndarray:
    """Soft indicator: ~1 where ``signed_distance < 0`` (inside), 0.5 on the boundary."""
    return 0.5 * (1.0 - np.tanh(signed_distance / edge))


def segment_distance(points: list[np.ndarray], seg: Segment) -> np.ndarray:
    """Euclidean distance from points (one array per coordinate) to ``seg``."""
    a = np.asarray(seg.start, dtype=np.float32)
    d = np.asarray(seg.end, dtype=np.float32) - a
    length2 = float(d @ d) or 1e-12
    t = sum((p - a[i]) * d[i] for i, p in enumerate(points)) / length2
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt(sum((p - a[i] - t * d[i]) ** 2 for i, p in enumerate(points)))
