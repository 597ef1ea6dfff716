"""Model builders for the train stage: 2D keras.applications backbones, 3D CNNs, shared head.

- :data:`BACKBONES`: 2D registry (name → :class:`BackboneSpec`: constructor, family,
  preprocessing, Grad-CAM layer; :mod:`~pipeline.models.backbones`).
- :data:`ARCHITECTURES_3D`: 3D registry (``resnet18_3d``, ``resnet34_3d``, ``resnet50_3d``,
  ``densenet121_3d``; :mod:`~pipeline.models.cnn3d`).
- :func:`build_model`: one flat functional model, input float32 in [0, 1]
  (:mod:`~pipeline.models.builder`; its in-model ImageNet preprocessing layers:
  :mod:`~pipeline.models.preprocessing`).
- :func:`backbone_layers`, :func:`backbone_blocks`, :func:`unfreeze_top`: freezing for
  fine-tuning; :func:`gradcam_layer`: Grad-CAM target layer name (:mod:`~pipeline.models.blocks`).
- :func:`inflate_2d_weights`: I3D inflation of 2D weights into a 3D model.
- :func:`build_ensemble`, :func:`ensemble_members`: the mean of several classifiers as one
  functional model (k-fold cross-validation, ``train.folds``), and recognising one.

Importing this package does not import Keras: each name above loads its module when first used
(so :mod:`~pipeline.models.target_layer`, which the report reaches through
:mod:`pipeline.explain`, costs no TensorFlow import: 5 s per stage process on a slow CPU).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.models.backbones import BACKBONES, BackboneSpec, get_backbone
    from pipeline.models.blocks import backbone_blocks, backbone_layers, gradcam_layer, unfreeze_top
    from pipeline.models.builder import build_model
    from pipeline.models.cnn3d import ARCHITECTURES_3D
    from pipeline.models.ensemble import build_ensemble, ensemble_members
    from pipeline.models.heads import classification_head
    from pipeline.models.inflate import inflate_2d_weights

#: Public name -> the module that defines it.
_HOMES = {
    "BACKBONES": "backbones", "BackboneSpec": "backbones", "get_backbone": "backbones",
    "backbone_blocks": "blocks", "backbone_layers": "blocks", "gradcam_layer": "blocks",
    "unfreeze_top": "blocks", "build_model": "builder", "ARCHITECTURES_3D": "cnn3d",
    "build_ensemble": "ensemble", "ensemble_members": "ensemble",
    "classification_head": "heads", "inflate_2d_weights": "inflate",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'pipeline.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pipeline.models.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ARCHITECTURES_3D",
    "BACKBONES",
    "BackboneSpec",
    "backbone_blocks",
    "backbone_layers",
    "build_ensemble",
    "build_model",
    "classification_head",
    "ensemble_members",
    "get_backbone",
    "gradcam_layer",
    "inflate_2d_weights",
    "unfreeze_top",
]
