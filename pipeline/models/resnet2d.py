"""2D ResNet-18/34 (basic blocks) built from Keras layers, with the keras.applications interface.

keras.applications has no ResNet-18/34, yet they are the standard small baselines of medical
imaging benchmarks (MedMNIST reports ResNet-18 and ResNet-50) and the practical choice for
training from scratch on a CPU. They share their blocks and layer names with the 3D versions in
:mod:`pipeline.models.cnn3d` (``conv1_conv``, ``conv2_block1_out`` ... ``conv5_block2_out``), so
freezing by block and Grad-CAM work as for every other backbone. There are no ImageNet weights
for them: ``weights`` is None or a weights file saved from the same architecture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras

from pipeline.models.cnn3d import _basic_stages, _model, _stem


def resnet_basic_2d(blocks: Sequence[int], *, include_top: bool = False, weights: str | None = None,
                    input_tensor: keras.KerasTensor | None = None,
                    input_shape: Sequence[int] | None = None, pooling: str | None = None,
                    base_width: int = 64, name: str) -> keras.Model:
    """Generic basic-block 2D ResNet; standard stem (7x7 stride-2 conv, 3x3 stride-2 max-pool).

    Args mirror ``keras.applications`` (``include_top`` must be False and ``pooling`` None: the
    head is added by :func:`pipeline.models.build_model`).

    Raises:
        ValueError: ``weights="imagenet"`` (none exist), a missing weights file, a top or pooling.
    """
    if include_top or pooling is not None:
        raise ValueError(f"{name} is a feature extractor: include_top must be False and pooling None. "
                         f"Received: include_top={include_top}, pooling={pooling!r}")
    if weights is not None and not (isinstance(weights, str | os.PathLike) and os.path.isfile(weights)):
        raise ValueError(f"{name} has no ImageNet weights (keras.applications offers none); weights "
                         f"must be None or a weights file. Received: weights={weights!r}")
    if input_tensor is None:
        input_tensor = keras.Input(shape=tuple(input_shape or (None, None, 1)), name="image")
    x = _stem(input_tensor, width=base_width, kernel=(7, 7), strides=(2, 2), pool_size=(3, 3),
              pool_strides=(2, 2), use_bias=False, keras_padding=False)
    model = _model(input_tensor, _basic_stages(x, blocks, base_width), name)
    if weights is not None:
        model.load_weights(weights)
    return model


def ResNet18(**kwargs) -> keras.Model:  # noqa: N802 (keras.applications naming)
    """2D ResNet-18 (``[2, 2, 2, 2]``); Grad-CAM layer ``conv5_block2_out``."""
    return resnet_basic_2d((2, 2, 2, 2), name="resnet18", **kwargs)


def ResNet34(**kwargs) -> keras.Model:  # noqa: N802
    """2D ResNet-34 (``[3, 4, 6, 3]``); Grad-CAM layer ``conv5_block3_out``."""
    return resnet_basic_2d((3, 4, 6, 3), name="resnet34", **kwargs)
