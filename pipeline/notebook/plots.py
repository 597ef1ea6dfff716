"""Matplotlib figures for the notebooks: image galleries and orthogonal views of volumes, with
lesion outlines and heatmaps drawn exactly as the HTML report draws them
(:func:`pipeline.report.imaging.render_overlay`: ``turbo`` heatmap with per-pixel opacity,
green outline).

Rendering only: arrays in, figures out. Orientation of volumes (D, H, W) follows the ingest
convention, increasing D, H, W = patient Superior, Posterior, Left: axial slices are shown as
stored (radiological convention: patient's right on the viewer's left, anterior at the top),
coronal and sagittal slices with Superior at the top and anterior on the left of the sagittal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

VIEWS = ("axial", "coronal", "sagittal")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A stored uint8 image as is; a float image in [0, 1] (model input, augmented) as uint8."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay(image: np.ndarray, *, mask: np.ndarray | None = None, heatmap: np.ndarray | None = None,
            opacity: float = 0.5) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 1)`` image (uint8, or float in [0, 1]) -> ``(H, W, 3)`` uint8 RGB with
    the heatmap blended and the mask's outline drawn, as in the report."""
    from pipeline.report.imaging import render_overlay

    image = to_uint8(_squeeze(image))
    return render_overlay(image, None if heatmap is None else _squeeze(heatmap), opacity=opacity,
                          mask=None if mask is None else _squeeze(mask))


def orthogonal_slices(volume: np.ndarray, center: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The three slices through ``center`` (default: the middle) of a ``(D, H, W[, 1])`` volume,
    oriented for display (see the module docstring).

    Returns:
        ``{"axial": (H, W), "coronal": (D, W), "sagittal": (D, H)}``, views of ``volume``.

    Raises:
        ValueError: Not 3D, or ``center`` outside the volume.
    """
    vol = _squeeze(volume)
    if vol.ndim != 3:
        raise ValueError(f"volume must be (D, H, W) or (D, H, W, 1). Received: shape={np.shape(volume)}")
    d, h, w = (n // 2 for n in vol.shape) if center is None else (int(c) for c in center)
    if not all(0 <= c < n for c, n in zip((d, h, w), vol.shape, strict=True)):
        raise ValueError(f"center must lie inside the volume {vol.shape}. Received: {(d, h, w)}")
    return {"axial": vol[d], "coronal": vol[::-1, h, :], "sagittal": vol[::-1, :, w]}


def lesion_center(mask: np.ndarray | None) -> tuple[int, ...] | None:
    """Centre (rounded centre of mass) of the largest connected region of a mask, in its spatial
    axes (a trailing channel of 1 is ignored); None for no mask or an empty one. With several
    lesions this lands on one of them, where the centroid of all would fall between them."""
    if mask is None:
        return None
    from scipy import ndimage

    inside = _squeeze(mask) != 0
    labels, n = ndimage.label(inside)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    center = ndimage.center_of_mass(labels == int(np.argmax(sizes)) + 1)
    return tuple(int(round(c)) for c in center)


def show_gallery(images: Sequence[np.ndarray] | np.ndarray, *, masks: Sequence[Any] | None = None,
                 heatmaps: Sequence[Any] | None = None, titles: Sequence[str] | None = None,
                 ncols: int = 4, size: float = 2.6, opacity: float = 0.5, suptitle: str | None = None) -> Any:
    """A grid of 2D images with optional mask outlines and heatmaps.

    Args:
        images: ``(H, W)`` / ``(H, W, 1)`` images, uint8 or float in [0, 1].
        masks: Per image a mask or None (same length as ``images``).
        heatmaps: Per image a heatmap in [0, 1] or None.
        titles: Per image a title.
        ncols: Images per row.
        size: Inches per panel.
        opacity: Heatmap opacity.
        suptitle: Figure title.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: No images, or ``masks``/``heatmaps``/``titles`` of another length.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("images must not be empty")
    for name, seq in (("masks", masks), ("heatmaps", heatmaps), ("titles", titles)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} must have one entry per image ({n}). Received: {len(seq)}")
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(overlay(images[i], mask=None if masks is None else masks[i],
                          heatmap=None if heatmaps is None else heatmaps[i], opacity=opacity))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_orthogonal(volume: np.ndarray, *, mask: np.ndarray | None = None,
                    heatmap: np.ndarray | None = None, center: Sequence[int] | None = None,
                    spacing: Sequence[float] | None = None, title: str | None = None,
                    axes: Sequence[Any] | None = None, opacity: float = 0.5) -> Any:
    """Axial, coronal and sagittal slices of a ``(D, H, W[, 1])`` volume in one row.

    Args:
        volume: uint8, or float in [0, 1].
        mask: Optional lesion mask (outline drawn), same shape.
        heatmap: Optional heatmap in [0, 1], same shape.
        center: ``(d, h, w)`` the slices go through (default: the heatmap's peak slices as in the
            report's viewer, else the largest lesion's centre, else the middle).
        spacing: ``(D, H, W)`` voxel size in mm, for the aspect ratio (default isotropic).
        title: Title of the first panel's row (prefix of the three panel titles).
        axes: Three matplotlib axes to draw on (default: a new figure).
        opacity: Heatmap opacity.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    from pipeline.report.imaging import peak_index

    vol = _squeeze(volume)
    m = None if mask is None else _squeeze(mask)
    hm = None if heatmap is None else _squeeze(heatmap)
    if center is None:
        center = lesion_center(m) if hm is None or not hm.any() else None
        center = center or peak_index(hm, None, vol.shape)
    slices = orthogonal_slices(vol, center)
    mslices = orthogonal_slices(m, center) if m is not None else dict.fromkeys(VIEWS)
    hslices = orthogonal_slices(hm, center) if hm is not None else dict.fromkeys(VIEWS)
    sd, sh, sw = (1.0, 1.0, 1.0) if spacing is None else (float(s) for s in spacing)
    aspects = {"axial": sh / sw, "coronal": sd / sw, "sagittal": sd / sh}
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.4))
    fig = axes[0].figure
    for ax, view, index in zip(axes, VIEWS, center, strict=True):
        ax.imshow(overlay(slices[view], mask=mslices[view], heatmap=hslices[view], opacity=opacity),
                  aspect=aspects[view])
        ax.set_title(f"{title + ' ' if title else ''}{view} {index}", fontsize=8)
        ax.axis("off")
    return fig


def _squeeze(array: np.ndarray) -> np.ndarray:
    """Drop a trailing channel axis of size 1."""
    array = np.asarray(array)
    return array[..., 0] if array.ndim >= 3 and array.shape[-1] == 1 else array
