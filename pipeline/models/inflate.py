"""I3D weight inflation: initialise a 3D network from a same-named 2D network.

Carreira & Zisserman (2017, "Quo Vadis, Action Recognition?") bootstrap a 3D network from a
2D ImageNet one by *inflating* every 2D kernel ``(kh, kw, cin, cout)`` into a 3D kernel
``(kt, kh, kw, cin, cout)``:

- ``time_kernel="mean"`` (the paper's choice): repeat the kernel ``kt`` times along depth and
  divide by ``kt``. On a "boring" volume, one whose depth slices are all the same image, every
  3D conv then returns the 2D conv's response on that image, so activations (and pooled
  features) equal the 2D network's, except on slices within the receptive field of the depth
  borders, where 'same' zero padding replaces real neighbours. Exactness is impossible there
  without replicate padding, which Keras has no built-in layer for; ResNet-50's depth
  receptive field spans dozens of slices, so on a thin volume every slice is touched a
  little: pooled features still correlate > 0.99 with the 2D net's (tested at 8x64x64).
- ``time_kernel="center"``: put the kernel in the central depth tap only (zeros elsewhere).
  Each slice is then processed exactly as the 2D network would, independently of its
  neighbours (the 3D net starts as a slice-wise 2D net and learns depth context in training).

Biases, BatchNormalization parameters and statistics and Dense weights are copied by name.

First layer, grayscale: a 1-channel 3D input receives the 2D kernel summed over its input
channels. That is exactly what the 2D kernel computes on a gray image repeated to every
channel, ``sum_c W_c * g = (sum_c W_c) * g``, so it equals the channel repetition the 2D
models do, at a third of the first layer's cost. (Per-channel input offsets, such as
caffe-style BGR means, cannot be folded this way; see ``pipeline.models.preprocessing``.)
"""

from __future__ import annotations

import keras
import numpy as np

TIME_KERNELS = ("center", "mean")


def inflate_kernel(
    kernel_2d: np.ndarray, *, depth: int, in_channels: int, time_kernel: str = "mean"
) -> np.ndarray:
    """Inflate one 2D conv kernel to 3D.

    Args:
        kernel_2d: ``(kh, kw, cin, cout)`` kernel.
        depth: Temporal (depth) extent ``kt`` of the 3D kernel, >= 1.
        in_channels: Input channels of the 3D kernel: ``cin``, or 1 to sum over ``cin``.
        time_kernel: ``"mean"`` (repeat / kt) or ``"center"`` (central tap only; for even
            ``kt`` the tap at index ``kt // 2``).

    Returns:
        float32 ``(kt, kh, kw, in_channels, cout)`` kernel.

    Raises:
        ValueError: Unknown ``time_kernel`` or channels that neither match nor sum to 1.
    """
    if time_kernel not in TIME_KERNELS:
        raise ValueError(f"time_kernel must be one of {list(TIME_KERNELS)}. Received: {time_kernel!r}")
    kernel = np.asarray(kernel_2d, dtype=np.float32)
    if in_channels == 1 and kernel.shape[2] != 1:
        kernel = kernel.sum(axis=2, keepdims=True)
    elif in_channels != kernel.shape[2]:
        raise ValueError(
            f"cannot map a kernel with {kernel.shape[2]} input channels to {in_channels}. "
            f"Received: kernel shape={kernel.shape}"
        )
    if time_kernel == "mean":
        return np.repeat(kernel[None], depth, axis=0) / np.float32(depth)
    out = np.zeros((depth,) + kernel.shape, dtype=np.float32)
    out[depth // 2] = kernel
    return out


def inflate_2d_weights(
    model_3d: keras.Model, model_2d: keras.Model, *, time_kernel: str = "mean"
) -> list[str]:
    """Copy a 2D model's weights into a 3D model, layer by layer, matching layer names.

    Conv3D layers with a same-named Conv2D get the inflated kernel (see :func:`inflate_kernel`)
    and the bias; BatchNormalization and Dense layers with a same-named counterpart get its
    weights unchanged. Layers without a counterpart keep their initialisation.

    Args:
        model_3d: Target model (modified in place).
        model_2d: Source model, e.g. ``keras.applications.ResNet50(include_top=False)``.
        time_kernel: ``"mean"`` (I3D) or ``"center"``.

    Returns:
        Names of the 3D layers that received weights, in ``model_3d.layers`` order.

    Raises:
        ValueError: A matched pair whose shapes cannot be mapped (e.g. a different width).
    """
    if time_kernel not in TIME_KERNELS:
        raise ValueError(f"time_kernel must be one of {list(TIME_KERNELS)}. Received: {time_kernel!r}")
    sources = {layer.name: layer for layer in model_2d.layers}
    done = []
    for layer in model_3d.layers:
        source = sources.get(layer.name)
        if source is None or not layer.weights:
            continue
        if isinstance(layer, keras.layers.Conv3D) and isinstance(source, keras.layers.Conv2D):
            weights = _inflated_conv_weights(layer, source, time_kernel)
        elif _same_kind(layer, source, (keras.layers.BatchNormalization, keras.layers.Dense)):
            weights = source.get_weights()
        else:
            continue
        _set_weights(layer, weights)
        done.append(layer.name)
    return done


def _same_kind(layer, source, kinds) -> bool:
    return any(isinstance(layer, kind) and isinstance(source, kind) for kind in kinds)


def _inflated_conv_weights(layer, source, time_kernel: str) -> list[np.ndarray]:
    kernel_3d = layer.kernel
    depth, in_channels = kernel_3d.shape[0], kernel_3d.shape[3]
    kernel, *rest = source.get_weights()
    return [inflate_kernel(kernel, depth=depth, in_channels=in_channels, time_kernel=time_kernel), *rest]


def _set_weights(layer, weights: list[np.ndarray]) -> None:
    expected = [tuple(w.shape) for w in layer.weights]
    received = [tuple(np.shape(w)) for w in weights]
    if expected != received:
        raise ValueError(
            f"layer {layer.name!r}: 2D weights do not fit the 3D layer; expected shapes {expected}. "
            f"Received: {received}"
        )
    layer.set_weights(weights)
