"""An ensemble of classifiers as one functional model: the mean of the members' probabilities.

Structure (what :func:`build_ensemble` writes and :func:`ensemble_members` recognises)::

    image (Input, float32) ─┬─ member_0 (nested functional model) ─┐
                            ├─ member_1                           ─┼─ ensemble_mean (Average, float32)
                            └─ ...                                ─┘

Each member is a whole :func:`pipeline.models.build_model` model (a flat functional model with
its own preprocessing and sigmoid/softmax head), nested as one layer named ``member_<i>``, so
its inner layers keep their names (``conv4_block2_out``) inside it. The output is the
arithmetic mean of the members' *probabilities* (not of their logits), in float32 whatever the
members' compute precision. Only built-in Keras layers are used (no ``Lambda``, nothing to
register), so the file loads with :func:`pipeline.train.card.load_model` (``safe_mode=True``) and
evaluation, test-time augmentation and ``predict`` treat it like any single model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

MEMBER_PREFIX = "member_"
OUTPUT_NAME = "ensemble_mean"
ENSEMBLE_NAME = "ensemble"
_MEMBER_RE = re.compile(rf"{MEMBER_PREFIX}(\d+)")


def member_name(index: int) -> str:
    """Layer name of member ``index`` (``member_0``, ...)."""
    return f"{MEMBER_PREFIX}{index}"


def build_ensemble(members: Sequence[Any], *, name: str = ENSEMBLE_NAME) -> Any:
    """One functional model whose output is the mean of ``members``' outputs.

    Args:
        members: At least two functional ``keras.Model`` classifiers with the same single input
            shape and the same output shape ``(batch, K)``. They are renamed ``member_<i>`` in
            place (their weights are shared with the ensemble, not copied).
        name: The ensemble model's name.

    Returns:
        A ``keras.Model``: input ``image`` float32, output ``ensemble_mean`` float32 ``(batch, K)``.

    Raises:
        ValueError: Fewer than two members, or members with different input/output shapes.
    """
    import keras

    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members. Received: {len(members)}")
    shapes = {(tuple(m.inputs[0].shape[1:]), tuple(m.outputs[0].shape[1:])) for m in members}
    if len(shapes) != 1 or any(len(m.inputs) != 1 or len(m.outputs) != 1 for m in members):
        raise ValueError(f"ensemble members must share one input and one output shape. Received: "
                         f"{sorted(shapes)}")
    (input_shape, _), = shapes
    image = keras.Input(input_shape, name="image", dtype="float32")
    outputs = []
    for i, member in enumerate(members):
        member.name = member_name(i)
        outputs.append(member(image))
    mean = keras.layers.Average(name=OUTPUT_NAME, dtype="float32")(outputs)
    return keras.Model(image, mean, name=name)


def ensemble_members(model: Any) -> list[Any] | None:
    """The members of a :func:`build_ensemble` model in index order, or None for other models.

    A model is an ensemble when its output layer is the ``ensemble_mean`` ``Average`` layer and
    every input of that layer comes from a nested functional model named ``member_<i>``.
    """
    import keras

    layers = {layer.name: layer for layer in getattr(model, "layers", ())}
    output = layers.get(OUTPUT_NAME)
    if not isinstance(output, keras.layers.Average) or len(getattr(model, "outputs", ())) != 1:
        return None
    members = [(int(m.group(1)), layer) for name, layer in layers.items()
               if (m := _MEMBER_RE.fullmatch(name)) and isinstance(layer, keras.Model)]
    if len(members) < 2:
        return None
    return [layer for _, layer in sorted(members, key=lambda item: item[0])]
