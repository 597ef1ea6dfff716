"""Which albumentations transforms we expose, how each one sees the data, and the defaults.

Every exposed transform is applied in one of four *modes* (how the sample is handed to
albumentations 2.0.8):

- ``"image"``: 2D tasks, ``image=`` (H, W, C) / ``mask=`` (H, W, 1).
- ``"slices"``: 3D tasks, 2D transforms applied in-plane with the same parameters to every
  slice: ``images=`` (D, H, W, C) / ``masks=`` (D, H, W, 1). ``volume=`` is not used for these
  because ``RandomBrightnessContrast`` and ``GaussNoise`` raise ``KeyError: 'images'`` on it.
- ``"volume"``: 3D tasks, genuinely 3D transforms: ``volume=`` / ``mask3d=`` (D, H, W, C).
- ``"volume_image"``: 3D ``CoarseDropout3D`` only: ``volume=`` without the mask, which is left
  unchanged (as ``fill_mask=None`` promises). albumentations 2.0.8 sends ``mask3d`` through
  ``apply_to_volume`` with the volume's ``fill`` (its ``apply_to_mask`` override is never
  called), so holes were cut into the mask whatever ``fill_mask`` said.
- ``"voxels"``: 3D ``GaussNoise`` only. On ``images=`` albumentations draws one noise map and
  adds it to every slice (a noise pattern constant along z, unlike real CT noise), so the volume
  is handed over as one (H, W, D*C) image and the noise is drawn per voxel (with the default
  ``per_channel=True``).
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["image", "slices", "volume", "volume_image", "voxels"]
Kind = Literal["2d", "3d"]

ALLOWED_2D: tuple[str, ...] = (
    "Affine",
    "HorizontalFlip",
    "VerticalFlip",
    "RandomResizedCrop",
    "ElasticTransform",
    "GridDistortion",
    "RandomBrightnessContrast",
    "RandomGamma",
    "GaussNoise",
    "GaussianBlur",
    "CLAHE",
    "CoarseDropout",
)
"""Transforms for 2D tasks. ``RandomResizedCrop`` gets ``size`` = the input (H, W) (do not set it).
``CLAHE`` works on float32 (albumentations rounds to uint8 internally and converts back, which is
lossless for our 1/255-quantised images); it is exposed for experiments but if CLAHE is wanted it
belongs in preprocessing, applied to train and test alike."""

ALLOWED_3D: tuple[str, ...] = (
    "Affine",
    "HorizontalFlip",
    "RandomBrightnessContrast",
    "RandomGamma",
    "GaussNoise",
    "GaussianBlur",
    "GridDistortion",
    "CoarseDropout3D",
    "CubicSymmetry",
    "RandomCrop3D",
    "CenterCrop3D",
)
"""Transforms for 3D tasks (volumes (D, H, W, C), axial slices (H, W)). The 2D ones act in-plane,
with the same parameters on every slice (``GridDistortion``: one in-plane grid for the volume).
``RandomCrop3D``/``CenterCrop3D`` are always followed by a ``PadIfNeeded3D`` back to the input
shape (centred, fill 0), so the output shape equals the input shape. ``CubicSymmetry`` permutes
and flips the three axes: only sensible for isotropic, cubic volumes (D == H == W, equal
spacing); it is rejected at call time for any other shape."""

VOLUME_TRANSFORMS = frozenset({"CoarseDropout3D", "CubicSymmetry", "RandomCrop3D", "CenterCrop3D"})
CROPS_3D = frozenset({"RandomCrop3D", "CenterCrop3D"})
RESIZING = frozenset({"RandomResizedCrop"})
"""Transforms that resample with ``cv2.resize`` (their masks need ``INTER_NEAREST_EXACT``)."""
SIZED_TO_INPUT = frozenset({"RandomResizedCrop"})
"""Transforms whose ``size`` is filled in with the input (H, W) when the pipeline is built."""

DEFAULT_2D: list[dict] = [
    {"transform": "Affine", "p": 0.7, "rotate": [-7, 7], "scale": [0.95, 1.05],
     "translate_percent": [-0.04, 0.04], "shear": [-2, 2]},
    {"transform": "RandomBrightnessContrast", "p": 0.5, "brightness_limit": [-0.1, 0.1],
     "contrast_limit": [-0.1, 0.1]},
    {"transform": "RandomGamma", "p": 0.3, "gamma_limit": [85, 115]},
    {"transform": "GaussNoise", "p": 0.2, "std_range": [0.005, 0.02]},
    {"transform": "GaussianBlur", "p": 0.1, "blur_limit": [3, 3], "sigma_limit": [0.3, 0.8]},
]
"""Chest X-ray defaults: patient positioning (small rotation/scale/shift/shear), exposure and
detector LUT (brightness/contrast/gamma), quantum noise (std 0.5-2 % of full scale) and a slight
blur (detector resolution). Deliberately absent: ``HorizontalFlip`` (it changes situs - heart on
the right, dextrocardia - a medical reviewer would reject such training images), ``VerticalFlip``
(CXR anatomy has a fixed cranio-caudal orientation; a flipped CXR is out of distribution),
``CoarseDropout``/``RandomResizedCrop`` (may erase or crop out the finding, turning the label
wrong), elastic/grid distortion (anatomy does not deform like that between patients) and CLAHE
(a preprocessing choice, not a random one). The ``strong`` preset
(:data:`pipeline.augment.presets.STRONG_2D`) trades some of these risks for regularisation."""

DEFAULT_3D: list[dict] = [
    {"transform": "Affine", "p": 0.5, "rotate": [-10, 10], "scale": [0.95, 1.05],
     "translate_percent": [-0.05, 0.05]},
    {"transform": "HorizontalFlip", "p": 0.5},
    {"transform": "RandomBrightnessContrast", "p": 0.3, "brightness_limit": [-0.05, 0.05],
     "contrast_limit": [-0.05, 0.05]},
    {"transform": "RandomGamma", "p": 0.2, "gamma_limit": [90, 110]},
    {"transform": "GaussNoise", "p": 0.2, "std_range": [0.005, 0.02]},
]
"""CT defaults: in-plane patient positioning (rotation about the cranio-caudal axis, scale,
shift), left-right flip (the standard augmentation for lung nodule classification: nodule
presence does not depend on the side), small window/calibration changes (5 % of the window
width, about 100 HU for the lung window) and per-voxel noise. Not by default: crops (their size
must be chosen against the ingest ``volume_shape``), ``CoarseDropout3D`` (may erase a nodule),
``CubicSymmetry`` (our CT volumes are anisotropic) and blur."""


def allowed_for(kind: str) -> tuple[str, ...]:
    """Return the exposed transform names for ``kind`` ("2d" or "3d").

    Raises:
        ValueError: Unknown kind.
    """
    if kind == "2d":
        return ALLOWED_2D
    if kind == "3d":
        return ALLOWED_3D
    raise ValueError(f"kind must be one of ['2d', '3d']. Received: kind={kind!r}")


def mode_of(name: str, kind: str) -> Mode:
    """Return how transform ``name`` is applied for ``kind`` (see the module docstring)."""
    if kind == "2d":
        return "image"
    if name == "CoarseDropout3D":
        return "volume_image"
    if name in VOLUME_TRANSFORMS:
        return "volume"
    if name == "GaussNoise":
        return "voxels"
    return "slices"
