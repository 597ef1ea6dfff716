"""The model builder used by the train stage (2D and 3D): :func:`build_model`.

Every model is ONE flat functional ``keras.Model``::

    image (H, W, C_in) float32 in [0, 1]
      → input_rgb            Concatenate: gray repeated to 3 channels (C_in == 1 only)
      → input_bgr_*          Permute/Cropping/Concatenate: RGB → BGR (caffe family, C_in == 3)
      → input_preprocessing  Rescaling: the family's ImageNet normalisation (float32)
      → the keras.applications backbone's own layers (conv1_conv ... conv5_block3_out)
      → head_pool → head_dropout → predictions (float32)

The backbone is created by calling its ``keras.applications`` constructor with
``input_tensor=<preprocessed tensor>``, so its layers sit directly in ``model.layers`` (no
nested sub-model) and Grad-CAM tools can reach e.g. ``conv5_block3_out``. Preprocessing uses
only serialisable built-in layers (no ``Lambda``), so ``keras.saving.load_model(...,
safe_mode=True)`` works, and none of them carries weights, so pretrained weight files (which
legacy ``.h5`` loading matches by layer order) load into the backbone unchanged. The
preprocessing layers, and why gray is repeated to 3 channels, are in
:mod:`pipeline.models.preprocessing`; the 2D registry in :mod:`pipeline.models.backbones`, the
3D architectures in :mod:`pipeline.models.cnn3d`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import keras

from pipeline.models.backbones import BACKBONES, NATIVE_FAMILIES, BackboneSpec, get_backbone
from pipeline.models.cnn3d import ARCHITECTURES_3D
from pipeline.models.heads import check_head_args, classification_head
from pipeline.models.inflate import inflate_2d_weights
from pipeline.models.preprocessing import add_preprocessing

#: 3D backbones that can start from a 2D keras.applications backbone's weights (by inflation).
INFLATION_SOURCES: Mapping[str, str] = MappingProxyType({"resnet50_3d": "resnet50"})


def build_model(
    *,
    kind: str,
    backbone: str,
    input_shape: Sequence[int],
    n_outputs: int,
    activation: str,
    weights: str | os.PathLike | None = None,
    dropout: float = 0.2,
    pooling: str = "avg",
    base_width: int | None = None,
) -> keras.Model:
    """Build a classifier: preprocessing → backbone → head, as one flat functional model.

    Args:
        kind: ``"2d"`` (``backbone`` from :data:`BACKBONES`) or ``"3d"`` (from
            ``ARCHITECTURES_3D``).
        backbone: Registry name, e.g. ``"resnet50"`` or ``"resnet18_3d"``.
        input_shape: ``(H, W, C_in)`` for 2D, ``(D, H, W, C_in)`` for 3D; the model input is
            float32 in [0, 1]. ``C_in`` must be 1 or 3 where ImageNet preprocessing applies.
        n_outputs: Output units.
        activation: ``"sigmoid"`` or ``"softmax"``.
        weights: ``"imagenet"``, None (random init) or a weights file for the bare
            ``keras.applications`` constructor with ``include_top=False`` (legacy ``.h5`` or
            ``.weights.h5``). For 3D only ``resnet50_3d`` accepts weights: ResNet50's 2D
            weights, inflated (:func:`pipeline.models.inflate.inflate_2d_weights`, "mean").
        dropout: Dropout rate before the output layer.
        pooling: ``"avg"`` or ``"max"`` global pooling.
        base_width: Stem/first-stage channels of the models built here (3D models and the 2D
            ``resnet18``/``resnet34``; default: the paper's 64); for ``densenet121_3d`` the growth
            rate becomes ``base_width // 2``. Fixed-width keras.applications backbones refuse it.

    Returns:
        An uncompiled ``keras.Model`` with output ``(batch, n_outputs)`` float32.

    Raises:
        ValueError: Unknown kind/backbone, bad shape, weights or head argument.
    """
    check_head_args(n_outputs=n_outputs, activation=activation, dropout=dropout, pooling=pooling)
    head = {"n_outputs": n_outputs, "activation": activation, "dropout": dropout, "pooling": pooling}
    weights = _check_weights(weights)
    shape = tuple(int(n) for n in input_shape)
    if kind == "2d":
        return _build_2d(get_backbone(backbone), shape, weights, head, base_width)
    if kind == "3d":
        return _build_3d(backbone, shape, weights, base_width, head)
    raise ValueError(f"kind must be one of ['2d', '3d']. Received: kind={kind!r}")


def _check_weights(weights):
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        return os.fspath(weights)
    raise ValueError(f"weights must be None, 'imagenet' or an existing weights file. Received: {weights!r}")


def _build_2d(spec: BackboneSpec, shape: tuple[int, ...], weights, head: dict,
              base_width: int | None = None) -> keras.Model:
    if len(shape) != 3 or shape[-1] not in (1, 3) or min(shape[:2]) < spec.min_input_size:
        raise ValueError(f"input_shape for {spec.name} must be (H, W, 1 or 3) with H, W >= "
                         f"{spec.min_input_size}. Received: input_shape={shape}")
    native = spec.family in NATIVE_FAMILIES
    if base_width is not None and not native:
        native_names = [n for n, s in BACKBONES.items() if s.family in NATIVE_FAMILIES]
        raise ValueError(f"base_width applies to {native_names} and the 3D models; {spec.name} has "
                         f"a fixed width. Received: base_width={base_width}")
    inputs = keras.Input(shape=shape, name="image")
    x = add_preprocessing(inputs, spec.family, repeat_gray=not native)
    extra = _width_kwargs(spec.name, base_width) if native else {}
    backbone = spec.constructor(include_top=False, weights=weights, input_tensor=x,
                                input_shape=(*shape[:2], shape[-1] if native else 3), pooling=None, **extra)
    return keras.Model(inputs, classification_head(backbone.output, **head), name=f"{spec.name}_classifier")


def _build_3d(name: str, shape: tuple[int, ...], weights, base_width: int | None, head: dict) -> keras.Model:
    if name not in ARCHITECTURES_3D:
        raise ValueError(f"backbone must be one of {list(ARCHITECTURES_3D)}. Received: {name!r}")
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape for {name} must be (D, H, W, C). Received: input_shape={shape}")
    source = INFLATION_SOURCES.get(name)
    if weights is not None and source is None:
        raise ValueError(f"weights for {name} must be None (pretrained weights exist only for "
                         f"{list(INFLATION_SOURCES)}). Received: weights={weights!r}")
    inputs = keras.Input(shape=shape, name="volume")
    x = inputs if source is None else add_preprocessing(inputs, BACKBONES[source].family, repeat_gray=False)
    backbone = ARCHITECTURES_3D[name](input_tensor=x, **_width_kwargs(name, base_width))
    model = keras.Model(inputs, classification_head(backbone.output, **head), name=f"{name}_classifier")
    if weights is not None:
        model_2d = BACKBONES[source].constructor(include_top=False, weights=weights,
                                                 input_shape=(None, None, 3))
        inflate_2d_weights(model, model_2d, time_kernel="mean")
    return model


def _width_kwargs(name: str, base_width: int | None) -> dict:
    if base_width is None:
        return {}
    if isinstance(base_width, bool) or not isinstance(base_width, int) or base_width < 2:
        raise ValueError(f"base_width must be an integer >= 2. Received: base_width={base_width!r}")
    if name.startswith("densenet"):
        return {"base_width": base_width, "growth_rate": base_width // 2}
    return {"base_width": base_width}
