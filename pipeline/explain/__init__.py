"""Explanations for trained classifiers: class activation maps and their faithfulness.

- :func:`compute_maps` / :class:`Explainer`: Grad-CAM (tf-explain in 2D, batched; tf-keras-vis in
  3D), Grad-CAM++ and Score-CAM (tf-keras-vis), float32 ``(N, *spatial)`` maps in [0, 1] on the
  input's grid, for 2D and 3D, float32 and mixed-precision models.
- :func:`resolve_target_layer`: the layer the maps are computed on (``"auto"`` or a name).
- :func:`average_maps`: an ensemble's map (``train.folds``) from its members' maps; the
  :class:`Explainer` of an ensemble model does this itself.
- :func:`deletion_test`, :func:`deletion_curve`: does masking what the map highlights lower the
  prediction more than masking random pixels?
- :func:`shortcut_audit`: how much heat lies on the image border, on burned-in markers and outside
  the body (:func:`field_of_view`, :func:`body_mask`, :func:`marker_mask`), against chance;
  :func:`restrict_to_fov` drops the heat outside a mask for localization without it.

Computing only: rendering (overlays, colour maps, HTML) belongs to the report. Importing this
package does not import TensorFlow; the functions do.
"""

from __future__ import annotations

from pipeline.explain.audit import audit_shares, shortcut_audit
from pipeline.explain.cam_rules import BACKENDS, METHODS
from pipeline.explain.ensemble import average_maps
from pipeline.explain.faithfulness import DeletionCurve, DeletionResult, deletion_curve, deletion_test
from pipeline.explain.fov import body_mask, border_mask, field_of_view, marker_mask
from pipeline.explain.gradcam import Explainer, compute_maps
from pipeline.explain.masking import FILLS
from pipeline.explain.scores import resolve_class_index
from pipeline.explain.shortcut_regions import AuditRegions, audit_regions, restrict_to_fov
from pipeline.models.target_layer import resolve_target_layer, spatial_layers

__all__ = [
    "BACKENDS",
    "FILLS",
    "METHODS",
    "AuditRegions",
    "DeletionCurve",
    "DeletionResult",
    "Explainer",
    "audit_regions",
    "audit_shares",
    "average_maps",
    "body_mask",
    "border_mask",
    "compute_maps",
    "deletion_curve",
    "deletion_test",
    "field_of_view",
    "marker_mask",
    "resolve_class_index",
    "resolve_target_layer",
    "restrict_to_fov",
    "shortcut_audit",
    "spatial_layers",
]
