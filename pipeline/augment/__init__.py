"""Data augmentation from params: albumentations transform specs -> a seeded :class:`Augmenter`.

Public API: :data:`ALLOWED_2D`, :data:`ALLOWED_3D`, :data:`DEFAULT_2D`, :data:`DEFAULT_3D`,
:data:`STRONG_2D`, :data:`STRONG_3D`, :data:`PRESETS`, :func:`resolve_spec` (a task's list from
``train.augment`` / ``train.augment_preset``), :func:`validate_spec` and :class:`Augmenter`.
albumentations is imported only when a spec is validated or applied.
"""

from __future__ import annotations

from pipeline.augment.augmenter import Augmenter
from pipeline.augment.catalog import ALLOWED_2D, ALLOWED_3D, DEFAULT_2D, DEFAULT_3D
from pipeline.augment.presets import PRESETS, STRONG_2D, STRONG_3D, preset_spec, resolve_spec
from pipeline.augment.spec import validate_spec

__all__ = ["ALLOWED_2D", "ALLOWED_3D", "DEFAULT_2D", "DEFAULT_3D", "PRESETS", "STRONG_2D", "STRONG_3D",
           "Augmenter", "preset_spec", "resolve_spec", "validate_spec"]
