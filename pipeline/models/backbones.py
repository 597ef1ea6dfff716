"""2D backbone registry and the model builder used by the train stage (2D and 3D).

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
legacy ``.h5`` loading matches by layer order) load into the backbone unchanged.

Why repeat gray to 3 channels instead of folding the first kernel: a conv on a gray image
repeated to 3 channels equals a conv on the gray image with the kernel summed over its input
channels (``sum_c W_c * g = (sum_c W_c) * g``), so the two are mathematically the same; the
repeat keeps the pretrained first layer untouched (weights load as published), keeps layer
names identical to ``keras.applications`` (Grad-CAM targets, weight files), and costs only the
first conv's extra input channels. ``weights=None`` with ``C_in == 1`` repeats too, so both
paths build the identical architecture.

Per-family preprocessing (model input ``x`` in [0, 1]; equals ``keras.applications.<family>.
preprocess_input(x * 255)`` on the 3-channel image, checked by the tests):

- ``resnet`` (caffe): ``x * 255``, RGB → BGR, minus the ImageNet BGR means (103.939, 116.779,
  123.68). For a repeated gray image the channel order is irrelevant, so no reordering.
- ``resnet_v2`` (tf): ``x * 2 - 1``.
- ``densenet`` (torch): ``(x - mean) / std`` with ImageNet RGB mean (0.485, 0.456, 0.406) and
  std (0.229, 0.224, 0.225).
- ``efficientnet``, ``efficientnet_v2``, ``mobilenet_v3``: ``x * 255``; these models contain
  their own Rescaling/Normalization layers (``include_preprocessing=True``) expecting 0–255.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import keras
import numpy as np
from keras import layers

from pipeline.models.cnn3d import ARCHITECTURES_3D
from pipeline.models.heads import HEAD_LAYER_NAMES, check_head_args, classification_head
from pipeline.models.inflate import inflate_2d_weights
from pipeline.models.resnet2d import ResNet18, ResNet34

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
#: Prefix of the in-model preprocessing layers (neither backbone nor head).
PREPROCESSING_PREFIX = "input_"
#: 3D backbones that can start from a 2D keras.applications backbone's weights (by inflation).
INFLATION_SOURCES: Mapping[str, str] = MappingProxyType({"resnet50_3d": "resnet50"})
# One "block" for freezing: ResNet/DenseNet 'conv5_block3', EfficientNet 'block7a',
# MobileNetV3 'expanded_conv_10' (its first block is plain 'expanded_conv').
_BLOCK_PATTERN = re.compile(r"^(conv\d+_block\d+|block\d+[a-z]|expanded_conv(?:_\d+)?)_")


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


@dataclass(frozen=True)
class _Rescale:
    """Per-channel ``x * scale + offset`` on the [0, 1] input (RGB order unless ``bgr``)."""

    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    bgr: bool = False


_TO_255 = _Rescale((255.0,) * 3, (0.0,) * 3)
_RESCALE = {
    "resnet": _Rescale((255.0,) * 3, tuple(-m for m in CAFFE_MEAN_BGR), bgr=True),
    "resnet_v2": _Rescale((2.0,) * 3, (-1.0,) * 3),
    "densenet": _Rescale(tuple(1 / s for s in TORCH_STD_RGB),
                         tuple(-m / s for m, s in zip(TORCH_MEAN_RGB, TORCH_STD_RGB, strict=True))),
    "efficientnet": _TO_255,
    "efficientnet_v2": _TO_255,
    "mobilenet_v3": _TO_255,
    "resnet_basic": _Rescale((1.0,) * 3, (0.0,) * 3),
}
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


def add_preprocessing(x: keras.KerasTensor, family: str, *, repeat_gray: bool = True) -> keras.KerasTensor:
    """Append the layers turning a [0, 1] image into what ``family``'s ImageNet weights expect.

    Works for 2D ``(batch, H, W, C)`` and 3D ``(batch, D, H, W, C)`` tensors with ``C`` 1 or 3.
    All layers are float32 (precision of the mean subtraction under mixed precision) and named
    with :data:`PREPROCESSING_PREFIX`; the last one is ``input_preprocessing``.

    Args:
        x: Input tensor, values in [0, 1].
        family: A :class:`BackboneSpec` family.
        repeat_gray: Repeat a single channel to 3 (2D). If False a single channel is kept and
            gets the mean of the three channels' scale and offset (3D inflation, where the
            first kernel is summed over channels instead; approximate for caffe's per-channel
            means, exact for the other families' equal constants).

    Returns:
        The preprocessed tensor.
    """
    channels = x.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"input channels must be 1 or 3. Received: {channels}")
    rescale = _RESCALE[family]
    if channels == 1 and repeat_gray:
        x = layers.Concatenate(name="input_rgb", dtype="float32")([x, x, x])
        channels = 3
    if channels == 3 and rescale.bgr:
        x = _reverse_channels(x)
    scale, offset = list(rescale.scale), list(rescale.offset)
    if channels == 1:
        scale, offset = [float(np.mean(scale))], [float(np.mean(offset))]
    return layers.Rescaling(scale=scale, offset=offset, dtype="float32", name="input_preprocessing")(x)


def _reverse_channels(x: keras.KerasTensor) -> keras.KerasTensor:
    """RGB → BGR with weightless built-in layers: channels to axis 1, crop each, re-stack."""
    rank = len(x.shape)
    crop = layers.Cropping2D if rank == 4 else layers.Cropping3D
    x = layers.Permute((rank - 1, *range(1, rank - 1)), dtype="float32", name="input_bgr_permute")(x)
    keep = ((0, 0),) * (rank - 3)
    parts = [crop(((c, 2 - c), *keep), data_format="channels_last", dtype="float32",
                  name=f"input_bgr_take{c}")(x) for c in (2, 1, 0)]
    x = layers.Concatenate(axis=1, dtype="float32", name="input_bgr_concat")(parts)
    return layers.Permute((*range(2, rank), 1), dtype="float32", name="input_bgr_restore")(x)


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


def _check_name(backbone: str) -> None:
    if backbone not in BACKBONES and backbone not in ARCHITECTURES_3D:
        raise ValueError(f"backbone must be one of {[*BACKBONES, *ARCHITECTURES_3D]}. Received: {backbone!r}")


def backbone_layers(model: keras.Model, backbone: str) -> list[keras.layers.Layer]:
    """The backbone's layers of a :func:`build_model` model, in ``model.layers`` order.

    Excludes the input, the ``input_*`` preprocessing layers and the head layers.

    Raises:
        ValueError: Unknown backbone name.
    """
    _check_name(backbone)
    return [layer for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)
            and not layer.name.startswith(PREPROCESSING_PREFIX)
            and layer.name not in HEAD_LAYER_NAMES]


def backbone_blocks(model: keras.Model, backbone: str) -> list[tuple[str, list[keras.layers.Layer]]]:
    """The backbone's layers grouped into blocks, bottom (``"stem"``) to top.

    A block is the family's naming unit (``conv5_block3``, ``block7a``, ``expanded_conv_10``).
    Layers before the first block form ``"stem"``; a layer outside any block (DenseNet
    transitions ``pool2_*``, final ``bn``/``relu``, ResNetV2 ``post_*``, EfficientNet ``top_*``)
    belongs to the block it follows, so the top block includes the final feature layers.

    Returns:
        ``[(block name, layers), ...]``.
    """
    blocks: list[tuple[str, list[keras.layers.Layer]]] = [("stem", [])]
    index: dict[str, int] = {}
    current = 0
    for layer in backbone_layers(model, backbone):
        match = _BLOCK_PATTERN.match(layer.name)
        if match:
            current = index.setdefault(match.group(1), len(blocks))
            if current == len(blocks):
                blocks.append((match.group(1), []))
        blocks[current][1].append(layer)
    return blocks


def unfreeze_top(model: keras.Model, backbone: str, n_blocks: int | str) -> None:
    """Make the head and the top ``n_blocks`` backbone blocks trainable, the rest frozen.

    BatchNormalization layers stay frozen everywhere (``trainable=False`` also makes Keras run
    them in inference mode, keeping the pretrained statistics), the usual fine-tuning recipe.
    Recompile the model afterwards for the change to take effect in ``fit``.

    Args:
        model: A :func:`build_model` model (modified in place).
        backbone: Its backbone name.
        n_blocks: Blocks to unfreeze counted from the top (see :func:`backbone_blocks`):
            0 = head only, ``"all"`` = every non-BatchNormalization layer.

    Raises:
        ValueError: ``n_blocks`` not ``"all"`` nor an integer in [0, number of blocks].
    """
    blocks = backbone_blocks(model, backbone)
    n = len(blocks) if n_blocks == "all" else n_blocks
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(blocks):
        raise ValueError(f"n_blocks must be 'all' or an integer in [0, {len(blocks)}] for {backbone}. "
                         f"Received: n_blocks={n_blocks!r}")
    top = {id(layer) for _, block in blocks[len(blocks) - n:] for layer in block}
    model.trainable = True  # resets every layer; the backbone is then set layer by layer
    for _, block in blocks:
        for layer in block:
            layer.trainable = id(layer) in top and not isinstance(layer, keras.layers.BatchNormalization)


def gradcam_layer(model: keras.Model, backbone: str) -> str:
    """Name of the layer whose output Grad-CAM should use (the last conv block's output).

    The registry's :attr:`BackboneSpec.gradcam_layer` when set, else the last backbone layer
    with a spatial output (3D models: ``conv5_block{n}_out`` or ``relu``).

    Raises:
        ValueError: Unknown backbone, or the registry's layer is missing from ``model``.
    """
    _check_name(backbone)
    name = BACKBONES[backbone].gradcam_layer if backbone in BACKBONES else None
    if name is not None:
        if name not in {layer.name for layer in model.layers}:
            raise ValueError(f"model has no layer {name!r}; was it built with backbone={backbone!r}? "
                             f"Received: model={model.name!r}")
        return name
    rank = len(model.inputs[0].shape)
    spatial = [layer for layer in backbone_layers(model, backbone) if len(layer.output.shape) == rank]
    return spatial[-1].name
