"""Data augmentation from params: albumentations transform specs -> a seeded :class:`Augmenter`.

Public API: :data:`ALLOWED_2D`, :data:`ALLOWED_3D`, :data:`DEFAULT_2D`, :data:`DEFAULT_3D`,
:func:`validate_spec` and :class:`Augmenter`. albumentations is imported only when a spec is
validated or applied.
"""

from __future__ import annotations

from pipeline.augment.augmenter import Augmenter
from pipeline.augment.catalog import ALLOWED_2D, ALLOWED_3D, DEFAULT_2D, DEFAULT_3D
from pipeline.augment.spec import validate_spec

__all__ = ["ALLOWED_2D", "ALLOWED_3D", "DEFAULT_2D", "DEFAULT_3D", "Augmenter", "validate_spec"]
