"""Synthetic chest anatomy for the 2D radiograph demo (:mod:`pipeline.demo.cxr`).

Parameters are drawn once (``draw_*``, from an explicit ``np.random.Generator``); rendering is
a deterministic function of them (plus a Generator for noise), so a drawn case can be logged
and replayed.

"Physical" intensity = projected attenuation, ~0 for air, ~1 for the densest soft-tissue areas
(higher = denser = whiter on a MONOCHROME2 display). Anatomy lives in *unit* coordinates: x to
the image right (patient left on a PA view), y downwards, the unit being half the smaller image
side; a :class:`Pose` maps them onto pixels. Shared shapes: :mod:`pipeline.demo.shapes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.demo.shapes import (
    VISIBLE_PHYSICAL,
    Blob,
    Segment,
    blob_profile,
    segment_distance,
    soft_inside,
)


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
        >= :data:`~pipeline.demo.shapes.VISIBLE_PHYSICAL` before exposure and noise.
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
