"""Where the image is: field of view, body and burned-in markers, from the pixels alone.

Masks for auditing class activation maps (:mod:`pipeline.explain.audit`): heat on the padding,
on the image's border, on a burned-in "L" or on the air around the patient is not heat on
anatomy. Every function takes images on the model's input grid, float32 ``(N, H, W, 1)`` or
``(N, D, H, W, 1)`` in [0, 1] (the trailing channel is optional; the stored uint8 arrays are read
as ``value / 255``), and returns bool ``(N, H, W)`` / ``(N, D, H, W)`` on the same grid. Each
image is processed on its own, all images at once (``scipy.ndimage`` on the stack, connectivity
within an image only). This module checks the inputs and holds the field of view and border; the
body and marker detectors are in :mod:`pipeline.explain.fov_masks`.

Rules. Lengths are given for a 256 px image and scale with ``s = min(H, W) / 256``.

- **Field of view** (2D): the smallest rectangle holding every non-zero pixel. The ingest's
  aspect-preserving resize pads with exact zeros, so the padding lies outside it. In 3D the whole
  grid: the ingest pads volumes with air (-1024 HU), which the voxels cannot tell from real air.
- **Body** (2D radiograph): the field of view minus its *background*: the dark pixels (``<=
  dark_level`` = 0.05 after a Gaussian blur of ``2 s`` px) connected to its outer band (``6 s``
  px, at least 3: the air around the patient and a black electronic collimation shutter are
  found also behind a thin frame line), grown over the adjacent unblurred pixels ``<=
  dark_level``. The rest is opened (``3 x 3`` square, ``6 s`` times, at least 2: cuts off frames,
  rulers, wires and text lying on the background), kept where it forms a component of ``>= 1 %``
  of the field of view and ``>= 10 %`` of the image's largest one (both arms of a lateral view
  stay; letters do not), and its holes are filled (dark lungs enclosed by the chest wall are
  body). Lung reaching the edge of a tight crop stays body: windowed lung is brighter than 0.05
  except in its darkest ~1 % of pixels. A white (unexposed) collimation border stays body.
- **Body** (3D CT): voxels above ``air_hu`` (-950 HU, after a 3 x 3 in-plane median filter) are
  tissue; lung (about -900..-700 HU) lies above it, air (-1000) and the padding (-1024) below.
  The tissue is opened per slice (3 x 3 square, ``table_radius`` times: removes a table thinner
  than ``2 table_radius + 1`` voxels, except a seam where it lies flat against the back), the
  largest 3D component is kept (a thicker table lying apart is another component) and holes are
  filled per axial slice (trachea, gas, emphysema enclosed by tissue). A window whose floor is
  above ``air_hu`` (soft tissue, [40, 400]: floor -160 HU) maps air and lung both to 0: tissue
  is then anything above the floor, and its holes (the lungs) are filled before the opening so
  that a thin chest wall survives it; a table touching the back then stays where it closes a
  pocket of air. Not body: emphysematous lung below -950 HU that reaches the edge of a cropped
  volume. Body: a foam mattress above -950 HU pressed against the back.
- **Markers** (2D only: CT voxels are reconstructed HU and carry no burned-in text): small,
  bright, high-contrast, sharp-edged blobs (letters, arrows, circled "R"). A pixel is a
  candidate when it is bright (``>= min_value`` = 0.45) and stands out of its surroundings by
  ``>= contrast`` = 0.3 (white top-hat with a ``21 s`` px square, at least 3, which removes
  anything wider than the square in both directions: mediastinum, abdomen, a bright shoulder).
  Candidate components (8-connected) are kept when their area is between ``max(2, 4 s^2)`` px
  and 0.5 % of the image, they fit in a square of 12 % of the short side, and their edge is
  sharp: the 1-pixel ring around them is darker than they are by ``>= edge_contrast`` = 0.25 on
  average (text steps from white to background within a pixel, bone fades over several).
  ``min_value`` is well below saturation because 1-2 px strokes lose brightness to
  area-averaging when a film is shrunk to the model grid. Not found: dark text on a light label
  box, grey text (< 0.45); also found: ECG electrodes, clips, wire ends (not anatomy either).

Measured on the covid_cxr collection (575 films, ingest at 128 px): a marker in 55 % of the
films (70 % at 256 px), nearly all of them text, side letters and arrows on visual review; the
synthetic demo radiographs (no text) give one false detection per ~200 films. Body: the median
film loses 1 % of its field of view to background (90th percentile 12 %: lateral views and
small patients). On 300 LIDC nodule volumes (lung crops padded with air), the body holds the
whole crop in the median case (5th percentile 86 %) and 99.99 % of the nodule voxels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from pipeline.explain.fov_masks import REFERENCE_SIDE as REFERENCE_SIDE  # re-exported: part of this API
from pipeline.explain.fov_masks import body_2d, body_3d, markers_2d, tissue_level

Kind = Literal["2d", "3d"]
KINDS: tuple[str, ...] = ("2d", "3d")
#: The ingest's default CT window ``[center, width]`` in HU (``tasks.<task>.ingest.hu_window``).
DEFAULT_HU_WINDOW: tuple[float, float] = (-600.0, 1500.0)
#: Images (or volumes) processed together: bounds the memory of the stacked filters.
CHUNK = 16


def check_kind(kind: str) -> None:
    """Raises ValueError unless ``kind`` is one of :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}. Received: kind={kind!r}")


def as_spatial(images: np.ndarray, kind: Kind) -> np.ndarray:
    """float32 ``(N, *spatial)`` from images with or without a trailing channel of 1.

    uint8 is read as ``value / 255``; non-finite values become 0 (NaN, -inf) or 1 (+inf).

    Raises:
        ValueError: Unknown ``kind``, or not ``(N, H, W[, 1])`` / ``(N, D, H, W[, 1])``.
    """
    return _to_float(spatial_view(images, kind))


def spatial_view(images: np.ndarray, kind: Kind) -> np.ndarray:
    """``images`` without a trailing channel of 1, not converted (a memory map stays one).

    Raises:
        ValueError: Unknown ``kind``, or not a numeric ``(N, H, W[, 1])`` / ``(N, D, H, W[, 1])``.
    """
    check_kind(kind)
    arr = np.asarray(images)
    rank = 2 if kind == "2d" else 3
    if arr.ndim == rank + 2 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != rank + 1 or min(arr.shape[1:], default=0) < 1 or arr.dtype.kind not in "uif":
        axes = "H, W" if rank == 2 else "D, H, W"
        raise ValueError(f"images must be a numeric (N, {axes}) array, a trailing channel of 1 allowed, "
                         f"for kind={kind!r}. Received: shape={np.shape(images)}, dtype={arr.dtype}")
    return arr


def _to_float(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    return np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)


def field_of_view(images: np.ndarray, kind: Kind) -> np.ndarray:
    """Imaged area without the ingest's zero padding (2D); the whole grid (3D).

    Args:
        images: See the module docstring.
        kind: ``"2d"`` (radiographs) or ``"3d"`` (CT volumes).

    Returns:
        bool ``(N, *spatial)``: per 2D image the smallest rectangle holding its non-zero pixels
        (all False for an all-zero image).

    Raises:
        ValueError: Bad ``kind`` or shape.
    """
    x = spatial_view(images, kind)
    if kind == "3d":
        return np.ones(x.shape, bool)
    nonzero = np.asarray(x > 0)  # NaN is not > 0, +inf is (as in as_spatial)
    rows = _between_first_and_last(nonzero.any(axis=2))
    cols = _between_first_and_last(nonzero.any(axis=1))
    return rows[:, :, None] & cols[:, None, :]


def border_mask(fov: np.ndarray, *, fraction: float = 0.08) -> np.ndarray:
    """Outer band of each field of view: ``fraction`` of its height/width from each side.

    The band lies inside the bounding box of each image's field of view (2D), so padding is
    not border. For 3D ``(N, D, H, W)`` the band is in-plane (H and W) on every slice: the
    first and last slices are anatomy cut by the scan range, not an image edge.

    Args:
        fov: bool ``(N, H, W)`` or ``(N, D, H, W)`` (:func:`field_of_view`).
        fraction: Band width as a share of the field of view's height/width, in [0, 0.5];
            rounded up to whole pixels (0 gives no band).

    Returns:
        bool, same shape, inside ``fov``.

    Raises:
        ValueError: ``fraction`` outside [0, 0.5], or ``fov`` not 3D/4D.
    """
    fov = np.asarray(fov, bool)
    if isinstance(fraction, bool) or not 0.0 <= fraction <= 0.5:
        raise ValueError(f"fraction must be in [0, 0.5]. Received: fraction={fraction!r}")
    if fov.ndim not in (3, 4):
        raise ValueError(f"fov must be (N, H, W) or (N, D, H, W). Received: shape={fov.shape}")
    planes = fov.reshape(-1, *fov.shape[-2:])
    rows = _band(planes.any(axis=2), fraction)
    cols = _band(planes.any(axis=1), fraction)
    return ((rows[:, :, None] | cols[:, None, :]) & planes).reshape(fov.shape)


def body_mask(images: np.ndarray, kind: Kind, *, hu_window: Sequence[float] = DEFAULT_HU_WINDOW,
              dark_level: float = 0.05, air_hu: float = -950.0, table_radius: int = 1) -> np.ndarray:
    """The patient: the field of view without the surrounding air, padding, text and table.

    Args:
        images: See the module docstring.
        kind: ``"2d"`` (radiographs) or ``"3d"`` (CT volumes).
        hu_window: 3D: the ``[center, width]`` HU window that mapped the volumes to [0, 1].
        dark_level: 2D: background level in [0, 1) (air, black shutter), after blurring.
        air_hu: 3D: tissue/air threshold in HU.
        table_radius: 3D: per-slice opening (voxels) that detaches the patient table; 0 keeps a
            table that touches the patient.

    Returns:
        bool ``(N, *spatial)``, inside :func:`field_of_view` (rules: module docstring).

    Raises:
        ValueError: Bad ``kind``, shape or parameter.
    """
    x = spatial_view(images, kind)
    if kind == "2d":
        if isinstance(dark_level, bool) or not 0.0 <= dark_level < 1.0:
            raise ValueError(f"dark_level must be in [0, 1). Received: dark_level={dark_level!r}")
        return _chunked(lambda part: body_2d(part, field_of_view(part, "2d"), dark_level), x)
    if isinstance(table_radius, bool) or not isinstance(table_radius, int) or table_radius < 0:
        raise ValueError(f"table_radius must be an integer >= 0. Received: table_radius={table_radius!r}")
    level, lung_blind = tissue_level(hu_window, air_hu)
    return _chunked(lambda part: body_3d(part, level, table_radius, lung_blind), x)


def marker_mask(images: np.ndarray, *, min_value: float = 0.45, contrast: float = 0.3,
                edge_contrast: float = 0.25, max_area: float = 0.005, max_extent: float = 0.12) -> np.ndarray:
    """Burned-in text and markers of 2D radiographs ("L", "R", "PORTABLE", arrows, dates).

    Args:
        images: 2D images (see the module docstring).
        min_value: Minimum value of a marker pixel, in (0, 1].
        contrast: Minimum white top-hat (height above the local background) of a marker pixel.
        edge_contrast: Minimum difference between a component's mean and its 1-pixel ring's.
        max_area: Maximum component area, as a share of the image.
        max_extent: Maximum component height and width, as a share of the image's short side.

    Returns:
        bool ``(N, H, W)``.

    Raises:
        ValueError: Bad shape or parameter.
    """
    x = spatial_view(images, "2d")
    for name, value in (("min_value", min_value), ("contrast", contrast), ("edge_contrast", edge_contrast),
                        ("max_area", max_area), ("max_extent", max_extent)):
        if isinstance(value, bool) or not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be in (0, 1]. Received: {name}={value!r}")
    return _chunked(lambda part: markers_2d(part, min_value, contrast, edge_contrast, max_area,
                                            max_extent), x)


# --- helpers -------------------------------------------------------------------------------------

def _chunked(function: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """``function`` of :data:`CHUNK` images at a time (as float32, :func:`as_spatial`); bool of
    ``x``'s shape."""
    out = np.zeros(x.shape, bool)
    for start in range(0, len(x), CHUNK):
        out[start:start + CHUNK] = function(_to_float(np.asarray(x[start:start + CHUNK])))
    return out


def _between_first_and_last(flags: np.ndarray) -> np.ndarray:
    """Per row of ``(N, L)`` bools: True from the first True to the last True (inclusive)."""
    after_first = np.logical_or.accumulate(flags, axis=1)
    before_last = np.logical_or.accumulate(flags[:, ::-1], axis=1)[:, ::-1]
    return after_first & before_last


def _band(flags: np.ndarray, fraction: float) -> np.ndarray:
    """Per row of ``(N, L)`` bools: the first and last ``ceil(fraction * extent)`` positions of
    the span from the first True to the last True."""
    length = flags.shape[1]
    idx = np.arange(length)[None, :]
    has = flags.any(axis=1)
    first = np.where(has, flags.argmax(axis=1), 0)[:, None]
    last = np.where(has, length - 1 - flags[:, ::-1].argmax(axis=1), -1)[:, None]
    width = np.ceil(fraction * (last - first + 1) - 1e-9).astype(int)
    inside = (idx >= first) & (idx <= last)
    return inside & ((idx < first + width) | (idx > last - width))
