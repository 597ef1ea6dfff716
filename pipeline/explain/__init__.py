"""Explanations for trained classifiers: class activation maps and their faithfulness.

- :func:`compute_maps` / :class:`Explainer`: Grad-CAM (tf-explain in 2D, batched; tf-keras-vis in
  3D), Grad-CAM++ and Score-CAM (tf-keras-vis), float32 ``(N, *spatial)`` maps in [0, 1] on the
  input's grid, for 2D and 3D, float32 and mixed-precision models.
- :func:`resolve_target_layer`: the layer the maps are computed on (``"auto"`` or a name).
- :func:`average_maps`: an ensemble's map (``train.folds``) from its members' maps; the
  :class:`Explainer` of an ensemble model does this itself.
- :func:`deletion_test`, :func:`deletion_curve`: does masking what the map highlights lower the
  prediction more than masking random pixels?

Computing only: rendering (overlays, colour maps, HTML) belongs to the report. Importing this
package does not import TensorFlow; the functions do.
"""

from __future__ import annotations

from pipeline.explain.ensemble import average_maps
from pipeline.explain.faithfulness import (
    FILLS,
    DeletionCurve,
    DeletionResult,
    deletion_curve,
    deletion_test,
)
from pipeline.explain.gradcam import BACKENDS, METHODS, Explainer, compute_maps
from pipeline.explain.scores import resolve_class_index
from pipeline.explain.target_layer import resolve_target_layer, spatial_layers

__all__ = [
    "BACKENDS",
    "FILLS",
    "METHODS",
    "DeletionCurve",
    "DeletionResult",
    "Explainer",
    "average_maps",
    "compute_maps",
    "deletion_curve",
    "deletion_test",
    "resolve_class_index",
    "resolve_target_layer",
    "spatial_layers",
]
