"""A built model's backbone, layer by layer and block by block: freezing for fine-tuning
(:func:`backbone_layers`, :func:`backbone_blocks`, :func:`unfreeze_top`) and the Grad-CAM target
layer (:func:`gradcam_layer`). For :func:`pipeline.models.builder.build_model` models, 2D and 3D.
"""

from __future__ import annotations

import re

import keras

from pipeline.models.backbones import BACKBONES
from pipeline.models.cnn3d import ARCHITECTURES_3D
from pipeline.models.heads import HEAD_LAYER_NAMES
from pipeline.models.preprocessing import PREPROCESSING_PREFIX

# One "block" for freezing: ResNet/DenseNet 'conv5_block3', EfficientNet 'block7a',
# MobileNetV3 'expanded_conv_10' (its first block is plain 'expanded_conv').
_BLOCK_PATTERN = re.compile(r"^(conv\d+_block\d+|block\d+[a-z]|expanded_conv(?:_\d+)?)_")


def _check_name(backbone: str) -> None:
    if backbone not in BACKBONES and backbone not in ARCHITECTURES_3D:
        raise ValueError(f"backbone must be one of {[*BACKBONES, *ARCHITECTURES_3D]}. Received: {backbone!r}")


def backbone_layers(model: keras.Model, backbone: str) -> list[keras.layers.Layer]:
    """The backbone's layers of a :func:`~pipeline.models.build_model` model, in ``model.layers`` order.

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
        model: A :func:`~pipeline.models.build_model` model (modified in place).
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

    The registry's :attr:`~pipeline.models.backbones.BackboneSpec.gradcam_layer` when set, else
    the last backbone layer with a spatial output (3D models: ``conv5_block{n}_out`` or ``relu``).

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
