"""3D CNN backbones for channels-last volumes ``(D, H, W, C)``, built from plain Keras layers.

Every constructor mirrors ``keras.applications``: it takes ``input_shape`` or ``input_tensor``,
has no classification top, and returns a ``keras.Model`` whose output is the last feature map,
so :func:`pipeline.models.build_model` can call it on a preprocessed tensor and get one flat
model. Layer names follow the Keras 2D conventions (``conv1_conv``, ``conv2_block1_1_conv``,
``conv5_block2_out``, DenseNet's ``pool2_conv`` and final ``bn``/``relu``) so freezing by block
and Grad-CAM target lookup work exactly as for the 2D families.

Geometry, for the ingest's 32x64x64 CT volumes (5 mm voxels):

- ``resnet18_3d``/``resnet34_3d``/``densenet121_3d``: stem conv 7x7x7 with stride (1, 2, 2),
  because the volumes are thin in depth relative to their in-plane size; the stem max-pool and
  every later stage then halve all three axes (32x64x64 → 16x16x16 → ... → 2x2x2 at the last
  stage). 'same' padding everywhere, so volumes down to a few slices still work.
- ``resnet50_3d``: the bottleneck ResNet-50 with layer names identical to
  ``keras.applications.ResNet50`` so 2D ImageNet weights can be inflated into it by name
  (:mod:`pipeline.models.inflate`). Temporal (depth) stride is 1 everywhere and every conv has
  'same' zero padding in depth, so depth stays ``D`` and, for a volume whose slices are all the
  same image, interior slices see exactly what the 2D network sees (see ``inflate``). Its cost
  is therefore about ``D`` times a 2D ResNet-50 (times 3 for the 3x3x3 convs): a GPU model.

Inputs are float32 in [0, 1]; the constructors add no preprocessing (``build_model`` adds the
ImageNet preprocessing for ``resnet50_3d``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import keras
from keras import layers

BN_EPSILON = 1.001e-5  # as keras.applications, so inflated BatchNormalization behaves identically
#: Moving-statistics momentum of BatchNormalization (PyTorch's default 0.1 update, as the reference
#: ResNet/DenseNet implementations). Keras' 0.99 needs thousands of steps to track the batch
#: statistics, far more than small from-scratch medical runs take: validation then sees stale
#: statistics and near-constant outputs. Irrelevant for frozen (fine-tuned) BatchNormalization.
BN_MOMENTUM = 0.9


def _input(input_shape: Sequence[int] | None, input_tensor: keras.KerasTensor | None) -> keras.KerasTensor:
    if input_tensor is not None:
        return input_tensor
    if input_shape is None or len(input_shape) != 4:
        raise ValueError(f"input_shape must be (D, H, W, C). Received: input_shape={input_shape}")
    return keras.Input(shape=tuple(input_shape), name="volume")


def _model(img_input: keras.KerasTensor, outputs: keras.KerasTensor, name: str) -> keras.Model:
    return keras.Model(keras.utils.get_source_inputs(img_input), outputs, name=name)


def _rank(x) -> int:
    """Spatial rank of a channels-last batch tensor: 2 for images, 3 for volumes."""
    return len(x.shape) - 2


def _conv_bn(x, filters, kernel, *, strides=1, name, relu=True, use_bias=False, padding="same"):
    conv = layers.Conv2D if _rank(x) == 2 else layers.Conv3D
    x = conv(filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
             name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def basic_block(x, filters: int, *, stride=1, conv_shortcut: bool = False, name: str):
    """ResNet-18/34 basic block: two 3x3(x3) convs plus the (projected) shortcut (2D or 3D).

    Args:
        x: Input tensor.
        filters: Output channels.
        stride: Stride of the first conv and the shortcut (int or 3-tuple).
        conv_shortcut: Project the shortcut with a 1x1x1 conv (needed when shape changes).
        name: Block label, e.g. ``"conv3_block1"``.

    Returns:
        Output tensor, named ``f"{name}_out"``.
    """
    shortcut = x
    if conv_shortcut:
        shortcut = _conv_bn(x, filters, 1, strides=stride, name=f"{name}_0", relu=False)
    x = _conv_bn(x, filters, 3, strides=stride, name=f"{name}_1")
    x = _conv_bn(x, filters, 3, name=f"{name}_2", relu=False)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(x, filters: int, *, stride=1, conv_shortcut: bool = True, temporal_kernel: int = 3,
                     name: str):
    """ResNet-50 bottleneck block, a 3D copy of ``keras.applications`` ``residual_block_v1``.

    Same layer names, biases and BatchNormalization epsilon as the 2D block; the 1x1 convs
    become 1x1x1 and the 3x3 conv becomes ``temporal_kernel``x3x3. ``stride`` applies to
    H and W only (depth stride 1).

    Returns:
        Output tensor, named ``f"{name}_out"``.
    """
    strides = (1, stride, stride)
    shortcut = x
    if conv_shortcut:
        shortcut = _conv_bn(x, 4 * filters, 1, strides=strides, name=f"{name}_0", relu=False,
                            use_bias=True)
    x = _conv_bn(x, filters, 1, strides=strides, name=f"{name}_1", use_bias=True)
    x = _conv_bn(x, filters, (temporal_kernel, 3, 3), name=f"{name}_2", use_bias=True)
    x = _conv_bn(x, 4 * filters, 1, name=f"{name}_3", relu=False, use_bias=True)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _stem(x, *, width, kernel, strides, pool_size, pool_strides, use_bias, keras_padding):
    """Stem conv1_conv/bn/relu then pool1_pool.

    ``keras_padding`` reproduces keras.applications ResNet exactly (``conv1_pad``/``pool1_pad``
    symmetric zero padding, then 'valid'), which inflation needs for pixel-aligned outputs;
    otherwise 'same' padding (fewer layers; TF's grappler also logs a harmless "remapper
    failed" error when training an explicit ZeroPadding3D → Conv3D pair on CPU).
    """
    padding = "same"
    two_d = _rank(x) == 2
    zero_pad = layers.ZeroPadding2D if two_d else layers.ZeroPadding3D
    if keras_padding:
        padding = "valid"
        x = zero_pad(tuple((k // 2, k // 2) for k in kernel), name="conv1_pad")(x)
    x = _conv_bn(x, width, kernel, strides=strides, name="conv1", use_bias=use_bias, padding=padding)
    if keras_padding:
        x = zero_pad(tuple((k // 2, k // 2) for k in pool_size), name="pool1_pad")(x)
    pool = layers.MaxPooling2D if two_d else layers.MaxPooling3D
    return pool(pool_size, strides=pool_strides, padding=padding, name="pool1_pool")(x)


def resnet_basic_3d(
    blocks: Sequence[int],
    *,
    input_shape: Sequence[int] | None,
    input_tensor: keras.KerasTensor | None,
    base_width: int,
    name: str,
) -> keras.Model:
    """Generic basic-block 3D ResNet (stages ``conv2``..``conv5``, widths ``base_width * 2**i``).

    Args:
        blocks: Blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        input_shape: ``(D, H, W, C)``, used when ``input_tensor`` is None.
        input_tensor: Optional Keras tensor to build on (its source Input becomes the input).
        base_width: Channels of the stem and the first stage (64 in the paper).
        name: Model name.

    Returns:
        Model from the volume to the last stage's output ``conv5_block{n}_out``.
    """
    img_input = _input(input_shape, input_tensor)
    x = _stem(img_input, width=base_width, kernel=(7, 7, 7), strides=(1, 2, 2), pool_size=(3, 3, 3),
              pool_strides=(2, 2, 2), use_bias=False, keras_padding=False)
    return _model(img_input, _basic_stages(x, blocks, base_width), name)


def _basic_stages(x, blocks: Sequence[int], base_width: int):
    """Stages conv2..conv5 of basic blocks (shared by the 2D and 3D ResNet-18/34)."""
    for stage, n_blocks in enumerate(blocks):
        filters = base_width * 2**stage
        for block in range(1, n_blocks + 1):
            first = block == 1
            x = basic_block(x, filters, stride=2 if first and stage > 0 else 1,
                            conv_shortcut=first and stage > 0, name=f"conv{stage + 2}_block{block}")
    return x


def resnet18_3d(input_shape=None, input_tensor=None, *, base_width: int = 64,
                name: str = "resnet18_3d") -> keras.Model:
    """3D ResNet-18 (basic blocks ``[2, 2, 2, 2]``); Grad-CAM layer ``conv5_block2_out``."""
    return resnet_basic_3d((2, 2, 2, 2), input_shape=input_shape, input_tensor=input_tensor,
                           base_width=base_width, name=name)


def resnet34_3d(input_shape=None, input_tensor=None, *, base_width: int = 64,
                name: str = "resnet34_3d") -> keras.Model:
    """3D ResNet-34 (basic blocks ``[3, 4, 6, 3]``); Grad-CAM layer ``conv5_block3_out``."""
    return resnet_basic_3d((3, 4, 6, 3), input_shape=input_shape, input_tensor=input_tensor,
                           base_width=base_width, name=name)


def resnet50_3d(input_shape=None, input_tensor=None, *, base_width: int = 64, temporal_kernel: int = 3,
                name: str = "resnet50_3d") -> keras.Model:
    """3D ResNet-50 whose layer names match ``keras.applications.ResNet50`` (for inflation).

    Stem conv ``temporal_kernel``x7x7 stride (1, 2, 2), stem max-pool 1x3x3 stride (1, 2, 2)
    (as I3D: no pooling across slices), bottleneck 3x3 convs ``temporal_kernel``x3x3, depth
    stride 1 throughout; widths ``base_width`` * (1, 2, 4, 8) with 4x expansion.

    Args:
        input_shape: ``(D, H, W, C)``, used when ``input_tensor`` is None.
        input_tensor: Optional Keras tensor to build on.
        base_width: 64 to receive ResNet50 weights; smaller only for random-init experiments.
        temporal_kernel: Depth extent of the stem and 3x3 kernels (odd, >= 1).
        name: Model name.

    Returns:
        Model from the volume to ``conv5_block3_out`` (depth ``D``, H and W / 32).
    """
    if temporal_kernel < 1 or temporal_kernel % 2 == 0:
        raise ValueError(f"temporal_kernel must be odd and >= 1. Received: temporal_kernel={temporal_kernel}")
    img_input = _input(input_shape, input_tensor)
    x = _stem(img_input, width=base_width, kernel=(temporal_kernel, 7, 7), strides=(1, 2, 2),
              pool_size=(1, 3, 3), pool_strides=(1, 2, 2), use_bias=True, keras_padding=True)
    for stage, n_blocks in enumerate((3, 4, 6, 3)):
        for block in range(1, n_blocks + 1):
            x = bottleneck_block(x, base_width * 2**stage, stride=2 if block == 1 and stage > 0 else 1,
                                 conv_shortcut=block == 1, temporal_kernel=temporal_kernel,
                                 name=f"conv{stage + 2}_block{block}")
    return _model(img_input, x, name)


def _dense_layer(x, growth_rate: int, name: str):
    """DenseNet-BC layer (BN-ReLU-1x1x1 conv-BN-ReLU-3x3x3 conv), concatenated to its input."""
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_0_bn")(x)
    y = layers.Activation("relu", name=f"{name}_0_relu")(y)
    y = layers.Conv3D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.Conv3D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(x, reduction: float, name: str):
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv3D(int(x.shape[-1] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling3D(2, strides=2, padding="same", name=f"{name}_pool")(x)


def densenet_3d(
    blocks: Sequence[int],
    *,
    input_shape: Sequence[int] | None,
    input_tensor: keras.KerasTensor | None,
    growth_rate: int,
    base_width: int,
    reduction: float = 0.5,
    name: str,
) -> keras.Model:
    """Generic 3D DenseNet-BC (dense stages ``conv2``..``conv5``, transitions ``pool2``..``pool4``).

    Args:
        blocks: Dense layers per stage, e.g. ``(6, 12, 24, 16)`` for DenseNet-121.
        input_shape: ``(D, H, W, C)``, used when ``input_tensor`` is None.
        input_tensor: Optional Keras tensor to build on.
        growth_rate: Channels each dense layer adds (32 in the paper).
        base_width: Channels of the stem conv (64 in the paper).
        reduction: Channel compression of the transitions (0.5 in the paper).
        name: Model name.

    Returns:
        Model from the volume to the final ``relu`` feature map.
    """
    img_input = _input(input_shape, input_tensor)
    x = layers.Conv3D(base_width, 7, strides=(1, 2, 2), padding="same", use_bias=False,
                      name="conv1_conv")(img_input)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.MaxPooling3D(3, strides=2, padding="same", name="pool1")(x)
    for stage, n_layers in enumerate(blocks):
        for layer in range(1, n_layers + 1):
            x = _dense_layer(x, growth_rate, name=f"conv{stage + 2}_block{layer}")
        if stage < len(blocks) - 1:
            x = _transition(x, reduction, name=f"pool{stage + 2}")
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    return _model(img_input, x, name)


def densenet121_3d(input_shape=None, input_tensor=None, *, base_width: int = 64, growth_rate: int = 32,
                   name: str = "densenet121_3d") -> keras.Model:
    """3D DenseNet-121 (``[6, 12, 24, 16]``, compression 0.5); Grad-CAM layer ``relu``.

    ``base_width`` and ``growth_rate`` default to the paper's 64/32; the demo can pass e.g.
    16/8 for a net that trains on a CPU.
    """
    return densenet_3d((6, 12, 24, 16), input_shape=input_shape, input_tensor=input_tensor,
                       growth_rate=growth_rate, base_width=base_width, name=name)


#: 3D backbone name → constructor ``(input_shape=None, input_tensor=None, *, base_width=...)``.
ARCHITECTURES_3D: Mapping[str, Callable[..., keras.Model]] = MappingProxyType({
    "resnet18_3d": resnet18_3d,
    "resnet34_3d": resnet34_3d,
    "resnet50_3d": resnet50_3d,
    "densenet121_3d": densenet121_3d,
})
