"""Where the shortcut audit (:mod:`pipeline.explain.audit`) looks, and how much heat is there.

:func:`audit_regions` finds the audited regions of an image set from its pixels
(:mod:`pipeline.explain.fov`): the border band of the field of view, the grown burned-in markers
(2D) and what lies outside the body, as an :class:`AuditRegions`. :func:`heat_shares` measures
the share of a map's heat inside a region and :func:`chance_levels` the share a flat map would
score (the region's share of the grid). :func:`restrict_to_fov` removes the heat outside a mask
and renormalises, so localization can be reported with and without it. The rules that turn
shares into flags are in :mod:`pipeline.explain.audit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.explain.fov import (
    DEFAULT_HU_WINDOW,
    Kind,
    body_mask,
    border_mask,
    field_of_view,
    marker_mask,
    spatial_view,
)

REGIONS: tuple[str, ...] = ("border", "marker", "outside_body")


@dataclass(frozen=True)
class AuditRegions:
    """Masks of one image set, bool ``(N, *spatial)`` on the maps' grid.

    Attributes:
        fov: Field of view (:func:`pipeline.explain.fov.field_of_view`).
        body: Body (:func:`pipeline.explain.fov.body_mask`).
        border: Outer band of the field of view.
        marker: Grown marker mask (2D), or None (3D).
        outside_body: ``~body``.
        border_fraction: Band width used, share of the field of view's side.
        marker_margin: Growth of the markers used, px (0 in 3D).
    """

    fov: np.ndarray
    body: np.ndarray
    border: np.ndarray
    marker: np.ndarray | None
    outside_body: np.ndarray
    border_fraction: float
    marker_margin: int

    def masks(self) -> dict[str, np.ndarray | None]:
        """The audited regions by name (:data:`REGIONS`)."""
        return {"border": self.border, "marker": self.marker, "outside_body": self.outside_body}


def audit_regions(images: np.ndarray, kind: Kind, *, border_fraction: float = 0.08,
                  marker_margin: int | None = None,
                  hu_window: Sequence[float] = DEFAULT_HU_WINDOW) -> AuditRegions:
    """Field of view, body, border band and (2D) grown markers of ``images``.

    Args:
        images: float32 ``(N, H, W[, 1])`` / ``(N, D, H, W[, 1])`` in [0, 1] on the model grid, or
            the stored uint8 arrays.
        kind: ``"2d"`` (radiographs) or ``"3d"`` (CT).
        border_fraction: Border band width, share of the field of view's side, in [0, 0.5].
        marker_margin: Pixels the markers are grown by (in-plane); None = 3 % of the short side.
        hu_window: 3D: the ``[center, width]`` HU window of the volumes.

    Returns:
        :class:`AuditRegions`.

    Raises:
        ValueError: Bad kind, shape or parameter.
    """
    x = spatial_view(images, kind)
    fov = field_of_view(x, kind)
    body = body_mask(x, kind, hu_window=hu_window)
    border = border_mask(fov, fraction=border_fraction)
    margin = 0
    marker = None
    if kind == "2d":
        margin = _margin(marker_margin, x.shape[1:])
        marker = _grow(marker_mask(x), margin)
    return AuditRegions(fov=fov, body=body, border=border, marker=marker, outside_body=~body,
                        border_fraction=float(border_fraction), marker_margin=margin)


def heat_shares(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per map: ``sum(map * region) / sum(map)``; 0 for a map without positive heat.

    Args:
        maps: ``(N, *spatial)``; negative and non-finite values count as 0.
        region: bool, same shape.

    Returns:
        float64 ``(N,)`` in [0, 1].

    Raises:
        ValueError: Shapes differ.
    """
    heat = positive_heat(maps)
    region = np.asarray(region, bool)
    if region.shape != heat.shape:
        raise ValueError(f"maps and region must have the same shape. "
                         f"Received: {heat.shape} and {region.shape}")
    axes = tuple(range(1, heat.ndim))
    total = heat.sum(axis=axes, dtype=np.float64)
    inside = np.where(region, heat, np.float32(0.0)).sum(axis=axes, dtype=np.float64)
    return np.where(total > 0, np.clip(inside / np.where(total > 0, total, 1.0), 0.0, 1.0), 0.0)


def chance_levels(region: np.ndarray) -> np.ndarray:
    """Per image: the region's share of the grid (the heat share of a flat map); float64 ``(N,)``."""
    region = np.asarray(region, bool)
    return region.reshape(len(region), -1).mean(axis=1) if region.size else np.zeros(len(region))


def restrict_to_fov(maps: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """Maps without their heat outside ``fov`` (e.g. the body), renormalised to maximum 1.

    Args:
        maps: ``(N, *spatial)`` maps (any non-negative scale; negative/non-finite count as 0).
        fov: bool mask, same shape.

    Returns:
        float32, same shape, in [0, 1]: 0 outside ``fov``; each map's maximum is 1, or the map
        is all zero when it had no heat inside ``fov``.

    Raises:
        ValueError: Shapes differ.
    """
    from pipeline.explain.maps import normalize

    heat = positive_heat(maps)
    fov = np.asarray(fov, bool)
    if fov.shape != heat.shape:
        raise ValueError(f"maps and fov must have the same shape. Received: {heat.shape} and {fov.shape}")
    return normalize(np.where(fov, heat, 0.0))


# --- helpers -------------------------------------------------------------------------------------

def positive_heat(maps: np.ndarray) -> np.ndarray:
    """``maps`` as float32 with negative and non-finite values set to 0 (checks the shape)."""
    maps = np.asarray(maps, np.float32)
    if maps.ndim not in (3, 4):
        raise ValueError(f"maps must be (N, H, W) or (N, D, H, W). Received: shape={maps.shape}")
    return np.where(np.isfinite(maps), np.maximum(maps, np.float32(0.0)), np.float32(0.0))


def _margin(marker_margin: int | None, shape: Sequence[int]) -> int:
    if marker_margin is None:
        return max(1, int(round(0.03 * min(shape))))
    bad_type = isinstance(marker_margin, bool) or not isinstance(marker_margin, int | np.integer)
    if bad_type or marker_margin < 0:
        raise ValueError(f"marker_margin must be None or an integer >= 0. "
                         f"Received: marker_margin={marker_margin!r}")
    return int(marker_margin)


def _grow(mask: np.ndarray, margin: int) -> np.ndarray:
    from scipy import ndimage as ndi

    if margin == 0 or not mask.any():
        return mask
    square = np.zeros((3, 3, 3), bool)
    square[1] = True  # in-plane only: images of the stack stay apart
    return ndi.binary_dilation(mask, structure=square, iterations=margin)
