"""Named augmentation presets (``tasks.<t>.train.augment_preset``) and the choice of a task's list.

A task trains with its explicit ``train.augment`` list when one is set (``[]`` = no augmentation),
otherwise with the list of its ``train.augment_preset``: ``mild`` (:data:`DEFAULT_2D` /
:data:`DEFAULT_3D`, the default) or ``strong`` (:data:`STRONG_2D` / :data:`STRONG_3D`, for small
training sets trained from scratch, where the mild lists leave the model overfitting).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.augment.catalog import DEFAULT_2D, DEFAULT_3D, allowed_for
from pipeline.augment.spec import validate_spec

STRONG_2D: list[dict] = [
    {"transform": "RandomResizedCrop", "p": 0.5, "scale": [0.75, 1.0], "ratio": [0.9, 1.1]},
    {"transform": "Affine", "p": 0.8, "rotate": [-12, 12], "scale": [0.85, 1.15],
     "translate_percent": [-0.08, 0.08], "shear": [-5, 5]},
    {"transform": "GridDistortion", "p": 0.25, "num_steps": 5, "distort_limit": [-0.15, 0.15]},
    {"transform": "CLAHE", "p": 0.2, "clip_limit": [1.0, 3.0], "tile_grid_size": [8, 8]},
    {"transform": "RandomBrightnessContrast", "p": 0.6, "brightness_limit": [-0.15, 0.15],
     "contrast_limit": [-0.15, 0.15]},
    {"transform": "RandomGamma", "p": 0.4, "gamma_limit": [80, 125]},
    {"transform": "GaussNoise", "p": 0.3, "std_range": [0.01, 0.04]},
    {"transform": "GaussianBlur", "p": 0.2, "blur_limit": [3, 5], "sigma_limit": [0.3, 1.0]},
    {"transform": "CoarseDropout", "p": 0.3, "num_holes_range": [1, 4],
     "hole_height_range": [0.05, 0.1], "hole_width_range": [0.05, 0.1]},
]
"""Chest radiographs, strong (after published CXR recipes): scale jitter (a crop of 75-100 % of
the area, aspect 0.9-1.1, resized back), positioning (rotation +-12 deg, scale 0.85-1.15, shift
+-8 %, shear +-5 deg), a mild grid distortion (grid steps stretched by up to 15 %: at most about
5 px at 128 px), local contrast (CLAHE, clip limit 1-3), exposure/LUT (brightness and contrast
+-15 %, gamma 0.8-1.25), quantum noise (std 1-4 % of full scale), blur (sigma 0.3-1 px) and cutout
(1-4 holes of 5-10 % of each side, filled with 0; each hole covers at most 1 % of the image, so a
finding is rarely erased whole). CLAHE is a random perturbation here (p 0.2: local contrast as
different processing software renders it), not the preprocessing step that the
:data:`~pipeline.augment.catalog.ALLOWED_2D` notes warn about; it rounds the image to 1/255 steps
(at most 0.5/255 off after the geometric transforms interpolated). The geometric transforms move
a mask with the image; CLAHE, intensity, noise, blur and cutout leave it unchanged.

Still absent: ``HorizontalFlip`` and ``VerticalFlip``. A left-right flip moves the heart to the
right (dextrocardia, situs inversus) and mirrors every asymmetric structure (aortic knob, gastric
bubble, the lower right hemidiaphragm), so the model learns from anatomy that hardly occurs at
test time; a vertical flip is never seen at all. Some recipes flip anyway (at p <= 0.5); set an
explicit ``augment`` list to try it. ``ElasticTransform`` is left out because its ``alpha`` and
``sigma`` are in pixels (the same values distort a 128 px and a 512 px image very differently);
``GridDistortion`` is relative to the image size."""

STRONG_3D: list[dict] = [
    {"transform": "Affine", "p": 0.7, "rotate": [-15, 15], "scale": [0.9, 1.1],
     "translate_percent": [-0.08, 0.08], "shear": [-3, 3]},
    {"transform": "HorizontalFlip", "p": 0.5},
    {"transform": "GridDistortion", "p": 0.2, "num_steps": 5, "distort_limit": [-0.1, 0.1]},
    {"transform": "RandomBrightnessContrast", "p": 0.5, "brightness_limit": [-0.1, 0.1],
     "contrast_limit": [-0.1, 0.1]},
    {"transform": "RandomGamma", "p": 0.3, "gamma_limit": [85, 120]},
    {"transform": "GaussianBlur", "p": 0.15, "blur_limit": [3, 3], "sigma_limit": [0.3, 0.8]},
    {"transform": "GaussNoise", "p": 0.3, "std_range": [0.005, 0.03]},
    {"transform": "CoarseDropout3D", "p": 0.2, "num_holes_range": [1, 3],
     "hole_depth_range": [0.05, 0.15], "hole_height_range": [0.05, 0.15],
     "hole_width_range": [0.05, 0.15]},
]
"""CT volumes, strong. In-plane, with the same parameters on every slice: positioning (rotation
+-15 deg about the cranio-caudal axis, scale 0.9-1.1, shift +-8 %, shear +-3 deg), the left-right
flip of :data:`DEFAULT_3D`, a mild grid distortion (breathing, soft-tissue deformation; grid
steps stretched by up to 10 %), window/calibration changes (brightness and contrast +-10 % of the
window width, about 150 HU for the lung window; gamma 0.85-1.2) and a slight blur. Per voxel:
noise (std 0.5-3 % of the window). In 3D: cutout (1-3 boxes of 5-15 % of each axis; the mask is
left unchanged). Not included: crops (their size depends on ``ingest.volume_shape``) and
``CubicSymmetry`` (our CT volumes are anisotropic)."""

DEFAULT_PRESET = "mild"
PRESETS: dict[str, dict[str, list[dict]]] = {
    "mild": {"2d": DEFAULT_2D, "3d": DEFAULT_3D},
    "strong": {"2d": STRONG_2D, "3d": STRONG_3D},
}
"""Preset name -> task kind -> transform list. The names are the values
``tasks.<t>.train.augment_preset`` accepts (:class:`pipeline.config.TrainParams`)."""


def preset_spec(preset: str, *, kind: str, key: str = "augment_preset") -> list[dict]:
    """Return a copy of the transform list of ``preset`` for ``kind``.

    Args:
        preset: A :data:`PRESETS` name ("mild" or "strong").
        kind: "2d" or "3d".
        key: Params path of ``preset``, used in error messages.

    Returns:
        A deep copy of the preset's list (callers may modify it).

    Raises:
        ValueError: Unknown preset (lists the known ones) or kind.
    """
    allowed_for(kind)  # raises for an unknown kind
    if preset not in PRESETS:
        raise ValueError(f"{key} must be one of {list(PRESETS)}. Received: {preset!r}")
    return copy.deepcopy(PRESETS[preset][kind])


def resolve_spec(augment: Sequence[Mapping[str, Any]] | None, *, preset: str, kind: str,
                 key: str) -> list[dict]:
    """Return the validated transform list a task trains with.

    An explicit ``augment`` list wins over the preset. Setting both a list and a preset other
    than the default ``mild`` is most likely a mistake, so it warns.

    Args:
        augment: ``tasks.<t>.train.augment``: a transform list (``[]`` = no augmentation) or
            None (use the preset).
        preset: ``tasks.<t>.train.augment_preset``: a :data:`PRESETS` name.
        kind: "2d" or "3d".
        key: Params path of the train section (``tasks.cxr.train``), used in messages.

    Returns:
        The normalised list (see :func:`validate_spec`).

    Raises:
        ValueError: Unknown preset or kind, or an invalid ``augment`` list; the message names
            ``<key>.augment_preset`` or ``<key>.augment[i]``.

    Warns:
        UserWarning: ``augment`` is set and ``preset`` is not ``mild``: the preset is ignored.
    """
    spec = preset_spec(preset, kind=kind, key=f"{key}.augment_preset")
    if augment is None:
        return validate_spec(spec, kind=kind, key=f"{key}.augment_preset={preset}")
    if preset != DEFAULT_PRESET:
        warnings.warn(f"{key}.augment is set, so {key}.augment_preset={preset!r} is ignored; "
                      f"remove one of them", UserWarning, stacklevel=2)
    return validate_spec(augment, kind=kind, key=f"{key}.augment")
