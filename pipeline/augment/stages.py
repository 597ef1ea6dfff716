"""Turning a validated spec into albumentations ``Compose`` stages and applying them.

A spec is split into *stages*: maximal runs of consecutive transforms that share a mode
(:func:`pipeline.augment.catalog.mode_of`); each stage is one ``Compose``, and the stages run in
spec order, so the listed order of transforms is the applied order. For 2D tasks there is a
single ``"image"`` stage. For 3D tasks, e.g. ``[RandomCrop3D, Affine, HorizontalFlip,
GaussNoise, CoarseDropout3D]`` becomes volume(RandomCrop3D + PadIfNeeded3D) -> slices(Affine,
HorizontalFlip) -> voxels(GaussNoise) -> volume_image(CoarseDropout3D).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any

import numpy as np

from pipeline.augment.catalog import CROPS_3D, RESIZING, SIZED_TO_INPUT, Mode, mode_of
from pipeline.augment.spec import make_transform, transform_kwargs

Stage = tuple[Mode, Any]
"""``(mode, albumentations.Compose)``."""

_TARGETS: dict[str, tuple[str, str]] = {
    "image": ("image", "mask"),
    "slices": ("images", "masks"),
    "volume": ("volume", "mask3d"),
    "volume_image": ("volume", ""),
}


def build_stages(spec: Sequence[Mapping[str, Any]], *, kind: str,
                 spatial_shape: tuple[int, ...]) -> list[Stage]:
    """Build the ``Compose`` stages of a validated spec for inputs of ``spatial_shape``.

    Args:
        spec: Output of :func:`validate_spec`.
        kind: "2d" or "3d".
        spatial_shape: (H, W) for 2D, (D, H, W) for 3D, in pixels/voxels.

    Returns:
        Stages in application order. Masks are resampled nearest-neighbour: ``INTER_NEAREST``
        for warps (exact: each output pixel maps to one source position) and
        ``INTER_NEAREST_EXACT`` for resizes, because OpenCV's plain nearest resize is not
        pixel-centre aligned and shifted masks by up to one pixel against the bilinear image.

    Raises:
        ValueError: ``CubicSymmetry`` on a non-cubic volume; a 3D crop larger than the volume.
    """
    import albumentations as A

    stages = []
    for mode, entries in groupby(spec, key=lambda e: mode_of(e["transform"], kind)):
        transforms = [t for entry in entries for t in _transforms(entry, spatial_shape)]
        stages.append((mode, A.Compose(transforms, p=1.0, seed=0)))
    return stages


def apply_stage(stage: Stage, image: np.ndarray,
                mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply one stage to ``image`` (H, W, C) or (D, H, W, C) and ``mask`` (same, C == 1)."""
    mode, compose = stage
    if mode == "voxels":
        return _from_channels(compose(image=_to_channels(image))["image"], image.shape), mask
    image_key, mask_key = _TARGETS[mode]
    if mask is None or not mask_key:
        return compose(**{image_key: image})[image_key], mask
    out = compose(**{image_key: image, mask_key: mask})
    return out[image_key], out[mask_key]


def _transforms(entry: Mapping[str, Any], spatial_shape: tuple[int, ...]) -> list[Any]:
    import albumentations as A

    name = entry["transform"]
    kwargs = transform_kwargs(entry)
    if name in SIZED_TO_INPUT:
        kwargs["size"] = tuple(spatial_shape[-2:])
    if name == "CubicSymmetry" and len(set(spatial_shape)) != 1:
        raise ValueError(f"CubicSymmetry needs a cubic volume (D == H == W). Received: shape={spatial_shape}")
    if name in CROPS_3D and any(c > s for c, s in zip(kwargs["size"], spatial_shape, strict=True)):
        raise ValueError(f"{name}.size must fit in the input volume {spatial_shape}. "
                         f"Received: size={kwargs['size']}")
    transform = make_transform(name, kwargs)
    if hasattr(transform, "mask_interpolation"):
        transform.mask_interpolation = _mask_interpolation(name)
    if name not in CROPS_3D:
        return [transform]
    # A crop is always padded back (centred, zeros) so the output shape equals the input shape.
    pad = A.PadIfNeeded3D(min_zyx=tuple(spatial_shape), position="center", fill=0, fill_mask=0, p=1.0)
    return [transform, pad]


def _mask_interpolation(name: str) -> int:
    import cv2

    return cv2.INTER_NEAREST_EXACT if name in RESIZING else cv2.INTER_NEAREST


def _to_channels(volume: np.ndarray) -> np.ndarray:
    """(D, H, W, C) -> (H, W, D*C), so per-channel noise is per-voxel noise."""
    depth, height, width, channels = volume.shape
    return np.ascontiguousarray(volume.transpose(1, 2, 0, 3).reshape(height, width, depth * channels))


def _from_channels(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    depth, height, width, channels = shape
    return np.ascontiguousarray(flat.reshape(height, width, depth, channels).transpose(2, 0, 1, 3))
