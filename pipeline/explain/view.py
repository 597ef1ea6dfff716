"""The copy of a classifier that explanations differentiate: float32 compute, scores as logits.

Why a copy instead of the trained model itself:

- **Mixed precision.** A model trained under ``mixed_bfloat16``/``mixed_float16`` computes its
  inner layers in 16 bits. Gradients of a 16-bit feature map carry 8 (bfloat16) or 11 (float16)
  significant bits, and tf-explain multiplies them with float32 masks (a dtype error). The copy
  has the same weights (Keras keeps mixed-precision variables in float32) with every layer's
  dtype policy set to float32, so Grad-CAM runs in full precision on the same function. Its
  outputs match the low-precision model's up to that model's rounding.
- **Saturation.** Grad-CAM differentiates the class *score*, i.e. the logit before the
  sigmoid/softmax (Selvaraju et al.). Through a saturated sigmoid (p = 1.0 in float32) the
  gradient is exactly zero and the map would be blank. For a single sigmoid unit the logit's
  gradient is the probability's gradient times ``1 / (p (1 - p)) > 0``, so after per-image
  normalisation Grad-CAM maps are unchanged wherever the probability's gradient is non-zero.
"""

from __future__ import annotations

from typing import Any

_SQUASHING = ("sigmoid", "softmax")


def explanation_model(model: Any) -> Any:
    """A flat float32 copy of ``model`` whose output layer emits logits (sigmoid/softmax removed).

    Layer names are kept. A nested functional sub-model (e.g. a ``keras.applications``
    backbone called as one layer) is inlined: its layers become layers of the copy, so its inner
    feature maps can be targeted like those of a flat :func:`pipeline.models.build_model` model.

    Args:
        model: A functional ``keras.Model`` with one output whose last layer applies
            ``sigmoid``/``softmax`` via its ``activation`` (e.g. the ``predictions`` Dense of
            :func:`pipeline.models.build_model`), or already emits scores.

    Returns:
        A new ``keras.Model`` with copies of ``model``'s weights (``model`` is not modified).
    """
    import keras

    output_layers = {_producer(t).name for t in model.outputs}
    copies: list[tuple[Any, Any]] = []

    def clone(layer):
        if _is_functional(layer):
            return layer  # inlined by `call`
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        if layer.name in output_layers and config.get("activation") in _SQUASHING:
            config["activation"] = "linear"
        new = layer.__class__.from_config(config)
        copies.append((layer, new))
        return new

    def call(layer, *args, **kwargs):
        if _is_functional(layer):
            inputs = keras.tree.pack_sequence_as(layer.input, keras.tree.flatten(args))
            inner = keras.models.clone_model(layer, input_tensors=inputs, clone_function=clone,
                                             call_function=call)
            return inner.outputs[0] if len(inner.outputs) == 1 else inner.outputs
        return layer(*args, **kwargs)

    view = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for old, new in copies:  # by layer, not by position: inlining changes the weight order
        if isinstance(old, keras.layers.Layer):  # not bare ops (MobileNetV3's `x + 3.0` is an Operation)
            new.set_weights(old.get_weights())
    return view


def _is_functional(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.Model) and not isinstance(layer, keras.Sequential) \
        and hasattr(layer, "_nodes_by_depth")


def output_activation(model: Any) -> str:
    """``"sigmoid"``, ``"softmax"`` or ``"linear"``: the squashing of the model's output layer."""
    layer = _producer(model.outputs[0])
    name = layer.get_config().get("activation", "linear")
    return name if name in _SQUASHING else "linear"


def _producer(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    if history is None:  # pragma: no cover (functional outputs always have one)
        raise ValueError("model outputs must come from a functional graph")
    return history[0]
