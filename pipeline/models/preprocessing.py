"""In-model preprocessing: the layers turning a [0, 1] image into what a family's ImageNet
weights expect (:func:`add_preprocessing`), all named with :data:`PREPROCESSING_PREFIX`.

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
- ``resnet_basic`` (:mod:`pipeline.models.resnet2d`, trained from scratch): none (an identity
  Rescaling); the builder does not repeat a single channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
#: Prefix of the in-model preprocessing layers (neither backbone nor head).
PREPROCESSING_PREFIX = "input_"


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


def add_preprocessing(x: keras.KerasTensor, family: str, *, repeat_gray: bool = True) -> keras.KerasTensor:
    """Append the layers turning a [0, 1] image into what ``family``'s ImageNet weights expect.

    Works for 2D ``(batch, H, W, C)`` and 3D ``(batch, D, H, W, C)`` tensors with ``C`` 1 or 3.
    All layers are float32 (precision of the mean subtraction under mixed precision) and named
    with :data:`PREPROCESSING_PREFIX`; the last one is ``input_preprocessing``.

    Args:
        x: Input tensor, values in [0, 1].
        family: A :class:`~pipeline.models.backbones.BackboneSpec` family.
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
