"""Which layer Grad-CAM reads: the last spatial feature map before the classification head.

Resolved from the model's graph alone (layer output ranks), so it works for every
:func:`pipeline.models.build_model` model, for models loaded from ``model.keras`` and for models
built elsewhere, flat or with a nested backbone (a nested sub-model whose output is a spatial
map is itself a candidate). The backbone registry (:func:`pipeline.models.gradcam_layer`) is
consulted only when the caller passes the backbone name, e.g. from the model card.
"""

from __future__ import annotations

from typing import Any

from pipeline.rules import AUTO, parse_min_cells  # noqa: F401  (public names)

_SHOWN = 20  # candidate names quoted in an error message


def spatial_layers(model: Any) -> list[str]:
    """Names of the layers Grad-CAM can target, in ``model.layers`` (topological) order.

    A candidate has one output tensor of the input's rank (``(batch, H, W, C)`` for 2D,
    ``(batch, D, H, W, C)`` for 3D) and comes at or after the first layer with weights, so
    the input and weightless preprocessing (``input_rgb``, ``input_preprocessing``) are
    excluded: a map of them would only reproduce the image.

    Args:
        model: A functional ``keras.Model`` with one input.

    Returns:
        Layer names, possibly empty.
    """
    import keras

    rank = len(model.inputs[0].shape)
    names: list[str] = []
    seen_weights = False
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        seen_weights = seen_weights or bool(layer.weights)
        if seen_weights and _output_rank(layer) == rank:
            names.append(layer.name)
    return names


def _output_rank(layer: Any) -> int | None:
    try:
        output = layer.output
    except (AttributeError, ValueError):  # layer used at several places in the graph
        return None
    return len(output.shape) if hasattr(output, "shape") else None


def resolve_target_layer(model: Any, layer: str = AUTO, *, backbone: str | None = None) -> str:
    """Name of the Grad-CAM target layer.

    Args:
        model: A functional ``keras.Model`` (2D or 3D, channels-last).
        layer: ``"auto"``: the last spatial layer before global pooling (for the registry's
            backbones this is the last conv block's output, e.g. ``conv5_block2_out``);
            ``"auto:N"``: the last spatial layer whose feature map has at least ``N`` cells
            along every spatial axis (e.g. ``auto:8`` on a 128 px ResNet-18 is
            ``conv4_block2_out``, 8x8, instead of the 4x4 last block; on a 32x64x64 3D ResNet
            ``conv3_block2_out``, 8x8x8, instead of 2x2x2), falling back to the finest map
            when none is that large; or an explicit layer name, which is validated.
        backbone: Optional registry name (the model card's ``backbone``); with ``"auto"`` the
            registry's :func:`pipeline.models.gradcam_layer` decides. Not needed.

    Returns:
        The layer name.

    Raises:
        ValueError: No spatial layer exists, or ``layer`` is not one of them; the message lists
            the candidate names (the last 20, nearest the head).
    """
    candidates = spatial_layers(model)
    if not candidates:
        raise ValueError(f"model {model.name!r} has no layer with a spatial output of rank "
                         f"{len(model.inputs[0].shape)}; Grad-CAM needs a convolutional feature map")
    if layer == AUTO:
        if backbone is not None:
            from pipeline.models import gradcam_layer

            return gradcam_layer(model, backbone)
        return candidates[-1]
    min_cells = parse_min_cells(layer)
    if min_cells is not None:
        return _finest_enough(model, candidates, min_cells)
    if layer in candidates:
        return layer
    shown = candidates[-_SHOWN:]
    more = f" (and {len(candidates) - len(shown)} earlier)" if len(candidates) > len(shown) else ""
    known = {item.name for item in model.layers}
    reason = "has no spatial output" if layer in known else "is not a layer of the model"
    raise ValueError(f"layer {layer!r} {reason}; it must be 'auto', 'auto:N' (N >= 1) or one of "
                     f"{shown}{more}. Received: layer={layer!r}")


def _finest_enough(model: Any, candidates: list[str], min_cells: int) -> str:
    """The last candidate whose map has >= ``min_cells`` cells on every spatial axis (else the
    candidate with the most cells)."""
    grids = {name: tuple(int(d) for d in model.get_layer(name).output.shape[1:-1]) for name in candidates}
    for name in reversed(candidates):
        if min(grids[name]) >= min_cells:
            return name
    # most cells; among equals the earliest
    return max(enumerate(candidates), key=lambda item: (min(grids[item[1]]), -item[0]))[1]
