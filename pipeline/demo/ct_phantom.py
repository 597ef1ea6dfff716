"""Synthetic chest anatomy for the 3D CT demo (:mod:`pipeline.demo.ct`).

Parameters are drawn once (``draw_*``, from an explicit ``np.random.Generator``); rendering is
a deterministic function of them (plus a Generator for noise), so a drawn case can be logged
and replayed.

Hounsfield units, evaluated at voxel centres given by a :class:`Grid` (DICOM patient
coordinates LPS, mm: +x patient left, +y posterior, +z superior). Shared shapes:
:mod:`pipeline.demo.shapes`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pipeline.demo.shapes import (
    VISIBLE_HU,
    Blob,
    Segment,
    blob_profile,
    segment_distance,
    soft_inside,
)


@dataclass(frozen=True)
class Grid:
    """A voxel grid: array axes ``(k, j, i)`` = (slice, row, column).

    Attributes:
        shape: ``(n_k, n_j, n_i)``.
        affine: 4x4 mapping voxel indices ``(i, j, k, 1)`` to LPS mm (voxel centres).
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    def coords(self, block: tuple[slice, slice, slice] | None = None) -> list[np.ndarray]:
        """LPS coordinates ``[x, y, z]`` (mm, float32) of the voxel centres in a block."""
        rk, rj, ri = block or (slice(None),) * 3
        k = np.arange(self.shape[0], dtype=np.float32)[rk][:, None, None]
        j = np.arange(self.shape[1], dtype=np.float32)[rj][None, :, None]
        i = np.arange(self.shape[2], dtype=np.float32)[ri][None, None, :]
        a = self.affine.astype(np.float32)
        return [a[r, 0] * i + a[r, 1] * j + a[r, 2] * k + a[r, 3] for r in range(3)]

    def block(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice]:
        """Index block covering the LPS box ``[lo, hi]`` (mm)."""
        corners = np.array(np.meshgrid(*zip(lo, hi, strict=True), indexing="ij")).reshape(3, -1)
        ijk = np.linalg.solve(self.affine[:3, :3], corners - self.affine[:3, 3:4])
        first = np.clip(np.floor(ijk.min(axis=1)).astype(int) - 1, 0, None)
        last = np.ceil(ijk.max(axis=1)).astype(int) + 2
        k, j, i = (slice(int(first[a]), int(min(last[a], self.shape[2 - a]))) for a in (2, 1, 0))
        return k, j, i

    def contains(self, point: tuple[float, ...], margin: float) -> bool:
        """True if ``point`` (LPS mm) lies inside the grid by at least ``margin`` voxels."""
        ijk = np.linalg.solve(self.affine[:3, :3], np.asarray(point) - self.affine[:3, 3])
        upper = np.array(self.shape[::-1]) - 1 - margin
        return bool(np.all(ijk >= margin) and np.all(ijk <= upper))


@dataclass(frozen=True)
class ThoraxAnatomy:
    """One patient's chest for CT (LPS mm, z = 0 near the carina)."""

    body_a: float
    body_b: float
    body_y: float
    fat: float
    lung_x: float
    lung_a: float
    lung_b: float
    lung_c: float
    lung_y: float
    lung_z: float
    lung_hu: float
    dome_z: float
    dome_h: float
    medi_w: float
    heart: Blob
    spine_y: float
    rib_pitch: float
    vessels: tuple[Segment, ...]
    benign: tuple[Blob, ...]


def draw_thorax_anatomy(rng: np.random.Generator) -> ThoraxAnatomy:
    """Draw a patient's thorax, including vessel blobs that mimic small nodules."""
    u = rng.uniform
    body_a, body_b = u(140.0, 175.0), u(95.0, 120.0)
    lung_a, lung_b, lung_c = body_a * u(0.3, 0.34), body_b * u(0.68, 0.76), u(110.0, 130.0)
    lung_x, lung_y, lung_z = body_a * u(0.42, 0.48), u(-5.0, 5.0), u(-25.0, -10.0)
    heart = Blob((u(15.0, 35.0), u(-45.0, -25.0), lung_z - u(40.0, 55.0)), u(55.0, 70.0),
                 u(40.0, 50.0), aspect=u(0.75, 0.9))
    anatomy = ThoraxAnatomy(
        body_a=body_a, body_b=body_b, body_y=u(-5.0, 5.0), fat=u(8.0, 22.0), lung_x=lung_x,
        lung_a=lung_a, lung_b=lung_b, lung_c=lung_c, lung_y=lung_y, lung_z=lung_z,
        lung_hu=u(-870.0, -820.0), dome_z=lung_z - lung_c * u(0.7, 0.8), dome_h=u(25.0, 40.0),
        medi_w=u(30.0, 40.0), heart=heart, spine_y=body_b * u(0.6, 0.7),
        rib_pitch=u(24.0, 30.0), vessels=(), benign=(),
    )
    vessels = _draw_lung_vessels(anatomy, rng)
    benign = tuple(Blob(sample_lung_point_3d(anatomy, rng, depth=10.0), u(2.0, 3.5), 40.0)
                   for _ in range(int(rng.integers(2, 7))))
    return dataclasses.replace(anatomy, vessels=vessels, benign=benign)


def _draw_lung_vessels(a: ThoraxAnatomy, rng: np.random.Generator) -> tuple[Segment, ...]:
    segments = []
    for side in (-1.0, 1.0):
        hilum = np.array([side * (a.medi_w + 12.0), a.lung_y - 5.0, a.lung_z + 0.1 * a.lung_c])
        for _ in range(int(rng.integers(7, 10))):
            end = np.array(sample_lung_point_3d(a, rng, depth=15.0, side=side))
            end = hilum + (end - hilum) * 0.75
            segments.append(Segment(tuple(hilum), tuple(end), rng.uniform(1.5, 2.8), 40.0))
            for _ in range(2):
                tip = end + rng.normal(0.0, 25.0, size=3)
                segments.append(Segment(tuple(end), tuple(tip), rng.uniform(0.8, 1.4), 40.0))
    return tuple(segments)


def lung_distance(a: ThoraxAnatomy, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Approximate signed distance (mm) to the lungs: negative inside either lung.

    Bounded by an ellipsoid per lung, the diaphragm dome, the mediastinum and the heart.
    """
    heart = (_ellipsoid_distance(a.heart, x, y, z) - 1.0) * a.heart.radius * a.heart.aspect
    out = None
    for side in (-1.0, 1.0):
        ex = (x - side * a.lung_x) / a.lung_a
        ey = (y - a.lung_y) / a.lung_b
        ez = (z - a.lung_z) / a.lung_c
        d = (np.sqrt(ex * ex + ey * ey + ez * ez) - 1.0) * a.lung_a
        lift = 15.0 if side < 0 else 0.0  # the right hemidiaphragm sits higher
        dome = a.dome_z + lift + a.dome_h * np.clip(1.0 - ex * ex - ey * ey, 0.0, 1.0)
        d = np.maximum(np.maximum(d, dome - z), a.medi_w - side * x)
        out = d if out is None else np.minimum(out, d)
    return np.maximum(out, -heart)


def sample_lung_point_3d(a: ThoraxAnatomy, rng: np.random.Generator, *, depth: float,
                         side: float | None = None, grid: Grid | None = None,
                         margin: float = 0.0) -> tuple[float, float, float]:
    """A point at least ``depth`` mm inside a lung (and inside ``grid`` by ``margin`` voxels).

    Rejection sampling in batches of 256 candidates (vectorised), first accepted one wins.
    """
    for _ in range(20):
        n = 256
        sides = np.full(n, side) if side is not None else rng.choice([-1.0, 1.0], size=n)
        pts = np.stack([sides * a.lung_x + rng.uniform(-a.lung_a, a.lung_a, n),
                        a.lung_y + rng.uniform(-a.lung_b, a.lung_b, n),
                        a.lung_z + rng.uniform(-a.lung_c, a.lung_c, n)], axis=1)
        inside = lung_distance(a, *pts.T) <= -depth
        for p in pts[inside]:
            point = (float(p[0]), float(p[1]), float(p[2]))
            if grid is None or grid.contains(point, margin):
                return point
    raise RuntimeError("could not place a point inside the lungs and the grid")


def render_thorax(a: ThoraxAnatomy, grid: Grid, *, nodules: tuple[Blob, ...], noise_hu: float,
                  rng: np.random.Generator,
                  halos: tuple[Blob, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Render a CT volume in HU on ``grid``.

    Args:
        a: The patient's anatomy.
        grid: Voxel grid (any orientation).
        nodules: Spheroids (centre mm, radius mm, ``amplitude`` = nodule HU, ``aspect`` =
            z/xy radius ratio) replacing lung tissue, soft-edged.
        noise_hu: Standard deviation of the added noise, HU.
        rng: Noise source.
        halos: Ground-glass halos around nodules (same fields), drawn before the nodules and
            not part of the mask.

    Returns:
        ``(hu, mask)``: float32 HU and the boolean visible nodule support (where the nodules,
        after the same blur as the image and before noise, raise HU by >=
        :data:`~pipeline.demo.shapes.VISIBLE_HU` over the tissue they replace, halo included),
        both shaped ``grid.shape``.
    """
    from scipy.ndimage import gaussian_filter

    x, y, z = grid.coords()
    er = np.sqrt((x / a.body_a) ** 2 + ((y - a.body_y) / a.body_b) ** 2)
    body = (er - 1.0) * a.body_b
    hu = np.full(grid.shape, -1000.0, dtype=np.float32)
    hu = _mix(hu, -100.0, soft_inside(body, 1.0))
    hu = _mix(hu, 40.0, soft_inside(body + a.fat, 1.5))
    hu = _mix(hu, 700.0, _ribs_3d(a, body, y, z))
    hu = _mix(hu, 650.0, soft_inside(np.hypot(x, y - a.spine_y) - 17.0, 1.0))
    hu = _mix(hu, 15.0, soft_inside(np.hypot(x, y - a.spine_y - 25.0) - 7.0, 1.0))
    lungs = soft_inside(lung_distance(a, x, y, z), 1.5)
    hu = _mix(hu, a.lung_hu, lungs)
    hu = _mix(hu, 45.0, soft_inside(np.hypot(x - 22.0, y - a.spine_y + 30.0) - 12.0, 1.0))
    vessels = np.zeros(grid.shape, dtype=np.float32)
    for seg in a.vessels:
        _draw_tube(vessels, grid, seg)
    for blob in a.benign:
        _draw_ball(vessels, grid, blob)
    hu = _mix(hu, 40.0, vessels * lungs)
    added = np.zeros(grid.shape, dtype=np.float32)  # HU the nodules add (not the halos)
    for blob, is_nodule in [(h, False) for h in halos] + [(n, True) for n in nodules]:
        block = grid.block(np.subtract(blob.center, 2 * blob.radius),
                           np.add(blob.center, 2 * blob.radius))
        dist = _ellipsoid_distance(blob, *grid.coords(block))
        before = hu[block].copy()
        hu[block] = _mix(before, blob.amplitude, blob_profile(dist) * lungs[block])
        if is_nodule:
            added[block] += hu[block] - before
    hu = gaussian_filter(hu, _CT_BLUR)
    mask = gaussian_filter(added, _CT_BLUR) >= VISIBLE_HU if nodules else added > 0
    hu += rng.normal(0.0, noise_hu, size=hu.shape).astype(np.float32)
    return hu, mask


#: Scanner blur (voxels) applied to the whole CT volume, and to the nodules' added HU.
_CT_BLUR = 0.6


def _mix(hu: np.ndarray, value: float, weight: np.ndarray) -> np.ndarray:
    return hu + (value - hu) * weight


def _ribs_3d(a: ThoraxAnatomy, body: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Rib cross-sections: a shell inside the fat layer, banded along a tilted z."""
    shell = soft_inside(np.abs(body + a.fat + 7.0) - 4.0, 1.0)
    phase = (z + 0.35 * (a.body_y - y)) / a.rib_pitch
    bands = soft_inside(0.5 - np.cos(2 * np.pi * phase), 0.15)
    cage = soft_inside(np.abs(z - a.lung_z) - a.lung_c - 10.0, 5.0)
    return shell * bands * cage


def _ellipsoid_distance(blob: Blob, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    cx, cy, cz = blob.center
    r = blob.radius
    return np.sqrt(((x - cx) / r) ** 2 + ((y - cy) / r) ** 2 + ((z - cz) / (r * blob.aspect)) ** 2)


def _draw_tube(out: np.ndarray, grid: Grid, seg: Segment) -> None:
    lo = np.minimum(seg.start, seg.end) - 2 * seg.width
    hi = np.maximum(seg.start, seg.end) + 2 * seg.width
    block = grid.block(lo, hi)
    d = segment_distance(grid.coords(block), seg)
    out[block] = np.maximum(out[block], soft_inside(d - seg.width, 0.7))


def _draw_ball(out: np.ndarray, grid: Grid, blob: Blob) -> None:
    block = grid.block(np.subtract(blob.center, 2 * blob.radius),
                       np.add(blob.center, 2 * blob.radius))
    d = _ellipsoid_distance(blob, *grid.coords(block)) * blob.radius
    out[block] = np.maximum(out[block], soft_inside(d - blob.radius, 0.7))
