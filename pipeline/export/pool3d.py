"""3D pooling as 2D pooling, so 3D models convert to TFLite with builtin ops only.

TFLite has a builtin 3D convolution (``CONV_3D``) but no 3D max or average pooling: the
converter keeps ``MaxPool3D``/``AvgPool3D`` as TensorFlow ("Flex") ops, which the TFLite
interpreter in the ``tensorflow`` wheel cannot run (no Flex delegate; nor can plain LiteRT). A
``(kd, kh, kw)`` pooling is separable, so it is rewritten as builtin ops:

    (N, D, H, W, C) -> reshape (N*D, H, W, C) -> 2D pool (kh, kw) over H, W
                    -> reshape (N, D, H'*W', C) -> 2D pool (kd, 1) over D
                    -> reshape (N, D', H', W', C)

Max pooling: the max of maxes is the max, bit for bit. Average pooling: with ``valid`` or
``same`` padding (padding excluded from the mean, as TensorFlow and TFLite do) every 2D window of
one output has the same number of valid pixels across slices, so the mean of means is the
mean, up to float rounding. Only the traced graph changes: :func:`builtin_pooling` reuses the
model's layers (and so its weights) and replaces how the 3D pooling layers are called.
"""

from __future__ import annotations

from typing import Any


def builtin_pooling(model: Any) -> Any:
    """``model`` with its 3D pooling layers computed by 2D pooling ops (same layers, same
    weights); ``model`` itself when it has none (2D models)."""
    import keras

    if not _has_pool3d(model):
        return model
    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=_call,
                                    recursive=True)


def _pool3d_types() -> tuple[type, ...]:
    import keras

    return keras.layers.MaxPooling3D, keras.layers.AveragePooling3D


def _has_pool3d(model: Any) -> bool:
    import keras

    for layer in model.layers:
        if isinstance(layer, _pool3d_types()):
            return True
        if isinstance(layer, keras.Model) and _has_pool3d(layer):
            return True
    return False


def _call(layer: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(layer, _pool3d_types()) and not kwargs and len(args) == 1:
        x = args[0]
        if layer.data_format == "channels_last" and None not in tuple(x.shape[1:]):
            return pool3d_as_2d(x, layer)
    return layer(*args, **kwargs)


def pool3d_as_2d(x: Any, layer: Any) -> Any:
    """What the 3D pooling ``layer`` computes on ``x`` ``(N, D, H, W, C)``, with 2D pooling ops."""
    from keras import ops

    pool = ops.max_pool if "Max" in type(layer).__name__ else ops.average_pool
    (kd, kh, kw), (sd, sh, sw) = tuple(layer.pool_size), tuple(layer.strides)
    _, d, h, w, c = (int(n) if n is not None else -1 for n in x.shape)
    y = pool(ops.reshape(x, (-1, h, w, c)), (kh, kw), (sh, sw), layer.padding)
    h2, w2 = int(y.shape[1]), int(y.shape[2])
    y = ops.reshape(y, (-1, d, h2 * w2, c))
    if (kd, sd) != (1, 1):
        y = pool(y, (kd, 1), (sd, 1), layer.padding)
    return ops.reshape(y, (-1, int(y.shape[1]), h2, w2, c))
