"""Classification head shared by the 2D and 3D models: global pooling, dropout, dense output.

The head works on channels-last feature maps of rank 4 ``(batch, H, W, C)`` or rank 5
``(batch, D, H, W, C)`` and always names its layers ``head_pool``, ``head_dropout`` and
``predictions`` so freezing and Grad-CAM code can tell head from backbone by name.

The output layer computes in float32 even under a mixed precision policy (``mixed_bfloat16``,
``mixed_float16``): probabilities and the loss stay numerically stable while the backbone runs
in half precision.
"""

from __future__ import annotations

import keras
from keras import layers

ACTIVATIONS = ("sigmoid", "softmax")
POOLINGS = ("avg", "max")
#: Names of the layers :func:`classification_head` creates, in order.
HEAD_LAYER_NAMES = ("head_pool", "head_dropout", "predictions")

_POOLING_LAYERS = {
    ("avg", 4): layers.GlobalAveragePooling2D,
    ("max", 4): layers.GlobalMaxPooling2D,
    ("avg", 5): layers.GlobalAveragePooling3D,
    ("max", 5): layers.GlobalMaxPooling3D,
}


def classification_head(
    features: keras.KerasTensor,
    *,
    n_outputs: int,
    activation: str,
    dropout: float = 0.2,
    pooling: str = "avg",
) -> keras.KerasTensor:
    """Append global pooling → dropout → dense (float32) to a feature map.

    Args:
        features: Channels-last feature map, ``(batch, H, W, C)`` or ``(batch, D, H, W, C)``.
        n_outputs: Number of output units (classes, or labels for multi-label), >= 1.
        activation: ``"sigmoid"`` (independent labels) or ``"softmax"`` (exclusive classes).
        dropout: Dropout rate in [0, 1) applied to the pooled features.
        pooling: ``"avg"`` or ``"max"`` global pooling.

    Returns:
        float32 tensor ``(batch, n_outputs)``.

    Raises:
        ValueError: An argument outside the values above, or a feature map of another rank.
    """
    check_head_args(n_outputs=n_outputs, activation=activation, dropout=dropout, pooling=pooling)
    rank = len(features.shape)
    if rank not in (4, 5):
        raise ValueError(
            f"features must be a rank-4 (2D) or rank-5 (3D) feature map. Received: shape={features.shape}"
        )
    x = _POOLING_LAYERS[(pooling, rank)](name="head_pool")(features)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(n_outputs, activation=activation, dtype="float32", name="predictions")(x)


def check_head_args(*, n_outputs: int, activation: str, dropout: float, pooling: str) -> None:
    """Validate head arguments before any layer is built.

    Raises:
        ValueError: Naming the first bad argument and the value received.
    """
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
        raise ValueError(f"n_outputs must be an integer >= 1. Received: n_outputs={n_outputs!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}. Received: {activation!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}. Received: {pooling!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
