"""Synthetic chest anatomy for the demo datasets, 2D (radiograph) and 3D (CT).

Parameters are drawn once (``draw_*``, from an explicit ``np.random.Generator``); rendering is
a deterministic function of them (plus a Generator for noise), so a drawn case can be logged
and replayed.

2D radiograph: "physical" intensity = projected attenuation, ~0 for air, ~1 for the densest
soft-tissue areas (higher = denser = whiter on a MONOCHROME2 display). Anatomy lives in *unit*
coordinates: x to the image right (patient left on a PA view), y downwards, the unit being half
the smaller image side; a :class:`Pose` maps them onto pixels.

3D CT: Hounsfield units, evaluated at voxel centres given by a :class:`Grid` (DICOM patient
coordinates LPS, mm: +x patient left, +y posterior, +z superior).
"""

from __future__ import annotations

import dataclasses
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


# --------------------------------------------------------------------------------------------
# 2D chest radiograph
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChestAnatomy:
    """One patient's chest (unit coordinates; see the module docstring)."""

    body_w: float
    tissue: float
    lung_sep: float
    lung_w: float
    lung_h: float
    lung_cy: float
    lung_air: float
    dome_base: float
    dome_h: float
    medi_w: float
    heart: Blob
    rib_pitch: float
    rib_top: float
    rib_amp: float
    rib_curve: float
    clavicles: tuple[Segment, ...]
    vessels: tuple[Segment, ...]
    benign: tuple[Blob, ...]


@dataclass(frozen=True)
class Pose:
    """Patient position on the detector: shift (units), rotation (radians), magnification."""

    dx: float = 0.0
    dy: float = 0.0
    angle: float = 0.0
    scale: float = 1.0


def draw_chest_anatomy(rng: np.random.Generator) -> ChestAnatomy:
    """Draw a patient's chest; includes benign look-alikes (nipple shadows, end-on vessels)."""
    u = rng.uniform
    lung_sep, lung_w, lung_cy = u(0.38, 0.45), u(0.26, 0.32), u(-0.12, -0.04)
    lung_h = u(0.56, 0.66)
    heart = Blob((u(0.06, 0.14), lung_cy + lung_h * u(0.45, 0.6)), u(0.26, 0.32), u(0.04, 0.09),
                 aspect=u(0.75, 0.9), angle=u(-0.6, -0.3))
    clavicles = tuple(
        Segment((s * u(0.06, 0.1), u(-0.66, -0.58)), (s * u(0.5, 0.6), u(-0.78, -0.68)),
                u(0.022, 0.03), u(0.08, 0.13))
        for s in (-1.0, 1.0)
    )
    benign = []
    if rng.random() < 0.4:  # nipple shadows, usually both sides
        y = u(0.2, 0.35)
        for s in (-1.0, 1.0):
            benign.append(Blob((s * u(0.5, 0.6), y + u(-0.03, 0.03)), u(0.02, 0.035),
                               u(0.03, 0.07)))
    for _ in range(int(rng.integers(0, 3))):  # end-on vessels near the hila
        s = -1.0 if rng.random() < 0.5 else 1.0
        benign.append(Blob((s * u(0.18, 0.3), u(-0.15, 0.15)), u(0.012, 0.022), u(0.04, 0.08)))
    return ChestAnatomy(
        body_w=u(0.85, 0.98), tissue=u(0.48, 0.58), lung_sep=lung_sep, lung_w=lung_w,
        lung_h=lung_h, lung_cy=lung_cy, lung_air=u(0.3, 0.38),
        dome_base=lung_cy + lung_h * u(0.78, 0.9), dome_h=u(0.08, 0.14), medi_w=u(0.09, 0.12),
        heart=heart, rib_pitch=u(0.105, 0.125), rib_top=u(-0.72, -0.64), rib_amp=u(0.05, 0.09),
        rib_curve=u(0.9, 1.4), clavicles=clavicles,
        vessels=_draw_vessel_tree(rng, lung_sep, lung_cy), benign=tuple(benign),
    )


def _draw_vessel_tree(rng: np.random.Generator, lung_sep: float,
                      lung_cy: float) -> tuple[Segment, ...]:
    segments = []
    for side in (-1.0, 1.0):
        hilum = np.array([side * (lung_sep - 0.24), lung_cy + 0.1])
        for angle in rng.uniform(-1.2, 1.2, size=int(rng.integers(6, 9))):
            direction = np.array([side * np.cos(angle), np.sin(angle)])
            end = hilum + direction * rng.uniform(0.2, 0.35)
            segments.append(Segment(tuple(hilum), tuple(end), rng.uniform(0.008, 0.012),
                                    rng.uniform(0.035, 0.06)))
            for turn in (-0.4, 0.4):
                a2 = angle + turn + rng.uniform(-0.2, 0.2)
                tip = end + np.array([side * np.cos(a2), np.sin(a2)]) * rng.uniform(0.1, 0.18)
                segments.append(Segment(tuple(end), tuple(tip), rng.uniform(0.004, 0.007),
                                        rng.uniform(0.02, 0.035)))
    return tuple(segments)


def draw_pose(rng: np.random.Generator) -> Pose:
    """Draw a realistic small positioning variation."""
    return Pose(dx=rng.uniform(-0.05, 0.05), dy=rng.uniform(-0.06, 0.06),
                angle=rng.uniform(-0.05, 0.05), scale=rng.uniform(0.9, 1.05))


class Canvas:
    """Maps between pixels and anatomy unit coordinates for one image and pose."""

    def __init__(self, rows: int, cols: int, pose: Pose) -> None:
        self.rows, self.cols, self.pose = rows, cols, pose
        self.unit = min(rows, cols) / 2.0
        self._c, self._s = float(np.cos(pose.angle)), float(np.sin(pose.angle))

    def coords(self, rs: slice = slice(None), cs: slice = slice(None)) -> list[np.ndarray]:
        """Anatomy coordinates ``[x, y]`` of the pixel centres in a block."""
        r = np.arange(self.rows, dtype=np.float32)[rs][:, None]
        c = np.arange(self.cols, dtype=np.float32)[cs][None, :]
        u = (c - (self.cols - 1) / 2.0) / self.unit - self.pose.dx
        v = (r - (self.rows - 1) / 2.0) / self.unit - self.pose.dy
        x = (self._c * u + self._s * v) / self.pose.scale
        y = (-self._s * u + self._c * v) / self.pose.scale
        return [x.astype(np.float32), y.astype(np.float32)]

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """``(row, col)`` of an anatomy point."""
        xs, ys = x * self.pose.scale, y * self.pose.scale
        u = self._c * xs - self._s * ys + self.pose.dx
        v = self._s * xs + self._c * ys + self.pose.dy
        return v * self.unit + (self.rows - 1) / 2.0, u * self.unit + (self.cols - 1) / 2.0

    def block(self, points: list[tuple[float, float]], margin: float) -> tuple[slice, slice]:
        """Pixel block covering anatomy ``points`` plus ``margin`` units."""
        pix = np.array([self.to_pixel(x, y) for x, y in points])
        pad = margin * self.unit * self.pose.scale + 2
        r0, c0 = np.floor(pix.min(axis=0) - pad).astype(int)
        r1, c1 = np.ceil(pix.max(axis=0) + pad).astype(int)
        return (slice(max(r0, 0), max(min(r1, self.rows), 0)),
                slice(max(c0, 0), max(min(c1, self.cols), 0)))


def lung_field(a: ChestAnatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Soft mask of both lung fields at unit coordinates ``x, y`` (0..1).

    Bounded by the lung outline, the diaphragm domes, the mediastinum and the heart border.
    """
    out = np.zeros(np.broadcast(x, y).shape, dtype=np.float32)
    medial = a.medi_w + 0.06 * np.clip(y - a.lung_cy + 0.3, 0.0, 1.0)
    heart = (_blob_distance(a.heart, x, y) - 1.0) * a.heart.radius
    for side in (-1.0, 1.0):
        cx = side * a.lung_sep
        ex = np.abs(x - cx) / a.lung_w
        ey = np.abs(y - a.lung_cy) / a.lung_h
        d_shape = (np.sqrt(ex * ex * np.sqrt(np.sqrt(ex)) + ey * ey) - 1.0) * a.lung_w  # ex**2.25
        lift = 0.03 if side < 0 else 0.0  # the right hemidiaphragm sits higher
        dome = a.dome_base - lift - a.dome_h * (1.0 - np.clip(((x - cx) / a.lung_w) ** 2, 0, 1))
        d = np.maximum(np.maximum(d_shape, y - dome), medial - side * x)
        out = np.maximum(out, soft_inside(np.maximum(d, -heart), 0.012))
    return out


def sample_lung_point(a: ChestAnatomy, rng: np.random.Generator, *,
                      min_depth: float = 0.9) -> tuple[float, float]:
    """A point well inside a lung field (``lung_field >= min_depth``), unit coordinates."""
    for _ in range(1000):
        side = -1.0 if rng.random() < 0.5 else 1.0
        x = side * a.lung_sep + rng.uniform(-a.lung_w, a.lung_w)
        y = a.lung_cy + rng.uniform(-a.lung_h, a.lung_h)
        if float(lung_field(a, np.float32(x), np.float32(y))) >= min_depth:
            return x, y
    raise RuntimeError("could not place a point inside the lung fields")  # pragma: no cover


@dataclass(frozen=True)
class Exposure:
    """Per-image acquisition: contrast (gamma, gain), low-frequency field, noise (physical)."""

    gamma: float
    gain: float
    field_amp: float
    field_k: tuple[float, float]
    field_phase: float
    heel: float
    noise: float


def draw_exposure(rng: np.random.Generator) -> Exposure:
    """Draw a per-image exposure/contrast/noise setting."""
    return Exposure(gamma=rng.uniform(0.85, 1.2), gain=rng.uniform(0.9, 1.1),
                    field_amp=rng.uniform(0.0, 0.04),
                    field_k=(rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0)),
                    field_phase=rng.uniform(0, 2 * np.pi), heel=rng.uniform(-0.06, 0.06),
                    noise=rng.uniform(0.005, 0.02))


def render_chest(a: ChestAnatomy, canvas: Canvas, *, lesions: tuple[Blob, ...],
                 exposure: Exposure, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render a radiograph.

    Args:
        a: The patient's anatomy.
        canvas: Image size and pose.
        lesions: Opacities (unit coordinates); they are confined to the lung fields.
        exposure: Contrast, exposure field and noise level.
        rng: Noise source.

    Returns:
        ``(image, lesion_mask)``: float32 physical intensity ``(rows, cols)`` (>= 0) and the
        boolean visible lesion support: where the lesions, confined to the lung fields, add
        >= :data:`VISIBLE_PHYSICAL` before exposure and noise.
    """
    x, y = canvas.coords()
    lungs = lung_field(a, x, y)
    img = a.tissue * _trunk(a, x, y) + _mediastinum(a, x, y)
    img += _ribs(a, x, y) * soft_inside(np.abs(x) - (a.lung_sep + a.lung_w + 0.06), 0.03)
    img -= a.lung_air * lungs * _lung_depth(a, x, y, rng)
    for seg in a.clavicles:
        _draw_segment(img, canvas, seg)
    inside_lungs = np.zeros_like(img)
    for seg in a.vessels:
        _draw_segment(inside_lungs, canvas, seg)
    lesion_only = np.zeros_like(img)
    for blob in lesions:
        _draw_blob(inside_lungs, canvas, blob)
        _draw_blob(lesion_only, canvas, blob)
    img += inside_lungs * lungs
    for blob in a.benign:
        _draw_blob(img, canvas, blob)
    mask = lesion_only * lungs >= VISIBLE_PHYSICAL
    return _expose(img, x, y, exposure, rng), mask


def _trunk(a: ChestAnatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Projected soft-tissue thickness (0..1): neck at the top, shoulders, chest wall."""
    half_width = a.body_w * (1.0 - 0.6 * soft_inside(y + 0.8, 0.06))
    return np.sqrt(np.clip(1.0 - (x / half_width) ** 2, 0.0, 1.0)) ** 0.6


def _mediastinum(a: ChestAnatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mediastinum, spine (with vertebral texture) and heart shadow."""
    medial = a.medi_w + 0.06 * np.clip(y - a.lung_cy + 0.3, 0.0, 1.0)
    out = 0.12 * soft_inside(np.abs(x) - medial, 0.02)
    out += 0.08 * soft_inside(np.abs(x) - 0.06, 0.01) * (1 + 0.3 * np.cos(y * 60.0))
    heart = np.sqrt(np.clip(1.0 - _blob_distance(a.heart, x, y) ** 2, 0.0, 1.0))
    return out + a.heart.amplitude * heart


def _lung_depth(a: ChestAnatomy, x: np.ndarray, y: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Relative air thickness: more at the centre of each lung, mottled parenchyma."""
    from scipy.ndimage import gaussian_filter

    ex = (np.abs(x) - a.lung_sep) / a.lung_w
    ey = (y - a.lung_cy) / a.lung_h
    depth = 0.65 + 0.35 * np.sqrt(np.clip(1.0 - ex**2 - ey**2, 0.0, 1.0))
    texture = gaussian_filter(rng.normal(0.0, 1.0, size=x.shape).astype(np.float32), 1.5)
    return depth * (1.0 + 0.25 * texture)


def _ribs(a: ChestAnatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Posterior (curving down laterally) and fainter anterior rib bands."""
    ax = np.abs(x)
    post = (y - a.rib_top - a.rib_curve * (ax - 0.1) ** 2) / a.rib_pitch
    ant = (y - a.rib_top + 0.8 * (ax - 0.35) ** 2) / (a.rib_pitch * 1.3)
    bands = np.clip(np.cos(2 * np.pi * post), 0, 1) ** 6 + 0.4 * np.clip(
        np.cos(2 * np.pi * ant), 0, 1) ** 6
    within = soft_inside(a.rib_top - 0.05 - y, 0.02) * soft_inside(y - a.dome_base - 0.05, 0.03)
    return a.rib_amp * bands * within * soft_inside(0.07 - ax, 0.02) * (1 + 0.2 * np.cos(x * 9))


def _expose(img: np.ndarray, x: np.ndarray, y: np.ndarray, e: Exposure,
            rng: np.random.Generator) -> np.ndarray:
    field = 1.0 + e.field_amp * np.cos(e.field_k[0] * x + e.field_k[1] * y + e.field_phase)
    img = np.clip(img, 0.0, None) * field * (1.0 + e.heel * y)
    img = e.gain * np.clip(img, 0.0, None) ** e.gamma
    img += rng.normal(0.0, e.noise, size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, None).astype(np.float32)


def _blob_distance(blob: Blob, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx, dy = x - blob.center[0], y - blob.center[1]
    c, s = float(np.cos(blob.angle)), float(np.sin(blob.angle))
    major, minor = c * dx + s * dy, -s * dx + c * dy
    return np.sqrt(major**2 + (minor / blob.aspect) ** 2) / blob.radius


def _draw_blob(img: np.ndarray, canvas: Canvas, blob: Blob) -> None:
    rs, cs = canvas.block([blob.center[:2]], 2.0 * blob.radius)
    x, y = canvas.coords(rs, cs)
    img[rs, cs] += blob.amplitude * blob_profile(_blob_distance(blob, x, y))


def _draw_segment(img: np.ndarray, canvas: Canvas, seg: Segment) -> None:
    rs, cs = canvas.block([seg.start[:2], seg.end[:2]], 3.0 * seg.width)
    d = segment_distance(canvas.coords(rs, cs), seg)
    img[rs, cs] += seg.amplitude * np.exp(-((d / seg.width) ** 2))


# --------------------------------------------------------------------------------------------
# 3D chest CT
# --------------------------------------------------------------------------------------------


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
        after the same blur as the image and before noise, raise HU by >= :data:`VISIBLE_HU`
        over the tissue they replace, halo included), both shaped ``grid.shape``.
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
