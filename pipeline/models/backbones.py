"""The 2D backbone registry: name -> :class:`BackboneSpec` (constructor, family, preprocessing,
Grad-CAM layer).

:data:`BACKBONES` holds the ``keras.applications`` ImageNet backbones (ResNet, ResNetV2,
DenseNet, EfficientNet, EfficientNetV2, MobileNetV3) and the single-channel ResNet18/34 built
in this package (:mod:`pipeline.models.resnet2d`); :func:`get_backbone` looks one up. The 3D
registry is :data:`pipeline.models.cnn3d.ARCHITECTURES_3D`; models are built by
:func:`pipeline.models.builder.build_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import keras

from pipeline.models.resnet2d import ResNet18, ResNet34


@dataclass(frozen=True)
class BackboneSpec:
    """What belongs together for one 2D backbone.

    Attributes:
        name: Registry key (lower case), e.g. ``"resnet50"``.
        constructor: The ``keras.applications`` callable, e.g. ``keras.applications.ResNet50``.
        family: Preprocessing/naming family: ``resnet``, ``resnet_v2``, ``densenet``,
            ``efficientnet``, ``efficientnet_v2`` or ``mobilenet_v3``.
        preprocessing: What the model does to its [0, 1] input (human-readable).
        gradcam_layer: Last conv block output for Grad-CAM; None = resolve from the model (the
            last backbone layer, for families whose final activation has no stable name).
        min_input_size: Smallest accepted H and W in pixels.
    """

    name: str
    constructor: Callable[..., keras.Model]
    family: str
    preprocessing: str
    gradcam_layer: str | None
    min_input_size: int = 32


_FAMILIES = {  # family → (preprocessing description, Grad-CAM layer)
    "resnet": ("caffe: x*255, RGB->BGR, minus ImageNet BGR means (103.939, 116.779, 123.68)",
               "conv5_block3_out"),
    "resnet_v2": ("tf: x*2-1 (i.e. x*255/127.5-1)", "post_relu"),
    "densenet": ("torch: (x - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)", "relu"),
    "efficientnet": ("x*255; the model's own Rescaling(1/255) + Normalization do the rest",
                     "top_activation"),
    "efficientnet_v2": ("x*255; the model's own Rescaling (+ Normalization for B0-B3) do the rest",
                        "top_activation"),
    "mobilenet_v3": ("x*255; the model's own Rescaling(1/127.5, offset=-1) does the rest", None),
    "resnet_basic": ("none: [0, 1] input, single channel kept (trained from scratch)", None),
}
#: Families built in this package (no ImageNet weights, single-channel input, ``base_width``).
NATIVE_FAMILIES = ("resnet_basic",)


def _spec(name: str, constructor: Callable[..., keras.Model], family: str) -> BackboneSpec:
    preprocessing, gradcam = _FAMILIES[family]
    return BackboneSpec(name, constructor, family, preprocessing, gradcam)


_APPS = keras.applications
BACKBONES: Mapping[str, BackboneSpec] = MappingProxyType({spec.name: spec for spec in (
    _spec("resnet50", _APPS.ResNet50, "resnet"),
    _spec("resnet101", _APPS.ResNet101, "resnet"),
    _spec("resnet152", _APPS.ResNet152, "resnet"),
    _spec("resnet50v2", _APPS.ResNet50V2, "resnet_v2"),
    _spec("resnet101v2", _APPS.ResNet101V2, "resnet_v2"),
    _spec("resnet152v2", _APPS.ResNet152V2, "resnet_v2"),
    _spec("densenet121", _APPS.DenseNet121, "densenet"),
    _spec("densenet169", _APPS.DenseNet169, "densenet"),
    _spec("densenet201", _APPS.DenseNet201, "densenet"),
    *(_spec(f"efficientnetb{i}", getattr(_APPS, f"EfficientNetB{i}"), "efficientnet") for i in range(8)),
    *(_spec(f"efficientnetv2b{i}", getattr(_APPS, f"EfficientNetV2B{i}"), "efficientnet_v2")
      for i in range(4)),
    _spec("efficientnetv2s", _APPS.EfficientNetV2S, "efficientnet_v2"),
    _spec("efficientnetv2m", _APPS.EfficientNetV2M, "efficientnet_v2"),
    _spec("efficientnetv2l", _APPS.EfficientNetV2L, "efficientnet_v2"),
    _spec("mobilenetv3small", _APPS.MobileNetV3Small, "mobilenet_v3"),
    _spec("mobilenetv3large", _APPS.MobileNetV3Large, "mobilenet_v3"),
    _spec("resnet18", ResNet18, "resnet_basic"),
    _spec("resnet34", ResNet34, "resnet_basic"),
)})


def get_backbone(name: str) -> BackboneSpec:
    """Look up a 2D backbone.

    Raises:
        ValueError: Unknown name; the message lists the valid ones.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {list(BACKBONES)}. Received: {name!r}")
    return BACKBONES[name]
