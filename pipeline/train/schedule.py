"""Learning-rate schedule: linear warm-up then cosine decay (Keras' CosineDecay with warm-up)."""

from __future__ import annotations

from typing import Any


def warmup_cosine(peak_lr: float, *, total_steps: int, warmup_steps: int,
                  min_lr_fraction: float) -> Any:
    """Linear warm-up from ``peak_lr * min_lr_fraction`` to ``peak_lr`` over ``warmup_steps``,
    then cosine decay to ``peak_lr * min_lr_fraction`` at ``total_steps``.

    Returns:
        A serialisable ``keras.optimizers.schedules.CosineDecay``.
    """
    import keras

    total_steps = max(1, int(total_steps))
    warmup_steps = min(max(0, int(warmup_steps)), total_steps - 1)
    floor = peak_lr * min_lr_fraction
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(peak_lr, decay_steps=total_steps,
                                                      alpha=min_lr_fraction)
    return keras.optimizers.schedules.CosineDecay(
        floor, decay_steps=total_steps - warmup_steps, alpha=min_lr_fraction,
        warmup_target=peak_lr, warmup_steps=warmup_steps)
