"""Exponential moving average (EMA, "Polyak averaging") of the trainable weights.

The averaging itself is Keras': ``AdamW(use_ema=True, ema_momentum=m)`` keeps, after every
step, ``average = m * average + (1 - m) * weight`` (the first step copies the weight; no bias
correction), and ``fit`` ends with ``optimizer.finalize_variable_values``, which copies the
averages into the model. What Keras does *not* do by default is validate on the averages:
``val_*`` metrics during ``fit`` come from the raw weights. :func:`ema_validation` and
:func:`ema_weights_loaded` close that gap, so validation metrics, the checkpoint and early
stopping all see the weights that are shipped.

Why not ``keras.callbacks.SwapEMAWeights`` (Keras 3.15):

- with ``swap_on_epoch=True`` (needed to checkpoint the averages) a run stopped early ends
  with the *raw* weights: the model holds the averages after the last epoch, the optimizer the
  raw weights, and ``finalize_variable_values`` copies those back (its fix-up only runs when the
  last planned epoch is reached). Placed before ``BackupAndRestore``, it also backs up swapped
  roles, and a resumed run would train on the averages.
- on TensorFlow it swaps by addition and subtraction (no temporary variable), which is not
  exact in floating point: every validation perturbs the raw weights by up to an ulp.

Here the raw weights are copied to host memory and copied back: exact, and the model holds the
raw weights outside validation and saving, whatever the callback order.

Not averaged: BatchNormalization moving mean/variance (non-trainable; they follow the raw
weights) and frozen layers. Works through ``LossScaleOptimizer`` (mixed_float16: the averages
live in its ``inner_optimizer``) and under ``tf.distribute`` (assignments in cross-replica
context update every replica). Each ``compile`` gets a fresh optimizer, so each fine-tuning
phase starts a new average from the weights it begins with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def averaging_optimizer(optimizer: Any) -> Any | None:
    """The optimizer holding the EMA (the inner one of a ``LossScaleOptimizer``), or None."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not getattr(inner, "use_ema", False) or not getattr(inner, "built", False):
        return None
    return inner


def ema_pairs(optimizer: Any) -> list[tuple[Any, Any]]:
    """``(model variable, its average)`` pairs of a built EMA optimizer ([] without EMA).

    Uses the optimizer attributes ``SwapEMAWeights`` itself relies on.
    """
    inner = averaging_optimizer(optimizer)
    if inner is None:
        return []
    return [(var, avg) for var, avg in zip(inner._trainable_variables,  # noqa: SLF001
                                           inner._model_variables_moving_average,  # noqa: SLF001
                                           strict=True) if avg is not None]


@contextmanager
def ema_weights_loaded(model: Any) -> Iterator[bool]:
    """Inside the block the model holds the EMA weights; the raw weights come back afterwards.

    Yields:
        Whether EMA weights were loaded (False: no EMA optimizer, nothing changed).
    """
    import keras

    pairs = ema_pairs(model.optimizer)
    raw = [keras.ops.convert_to_numpy(var) for var, _ in pairs]
    for var, avg in pairs:
        var.assign(avg)
    try:
        yield bool(pairs)
    finally:
        for (var, _), value in zip(pairs, raw, strict=True):
            var.assign(value)


def ema_validation() -> Any:
    """Callback evaluating (during ``fit``) with the EMA weights instead of the raw ones."""
    import keras

    class EMAValidation(keras.callbacks.Callback):
        """Loads the EMA weights for each validation pass (``on_test_begin``/``_end``)."""

        def __init__(self) -> None:
            super().__init__()
            self._loaded: Any = None

        def on_test_begin(self, logs: dict | None = None) -> None:
            self._loaded = ema_weights_loaded(self.model)
            self._loaded.__enter__()

        def on_test_end(self, logs: dict | None = None) -> None:
            if self._loaded is not None:
                self._loaded.__exit__(None, None, None)
                self._loaded = None

    return EMAValidation()
