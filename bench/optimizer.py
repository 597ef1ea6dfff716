"""The optimizer's share of a training process: Keras' AdamW against FusedAdamW, side by side.

Every training process traces its train step once per fine-tuning phase (and per k-fold
member), and on the TensorFlow backend Keras' AdamW builds about 100 graph ops per variable.
For each task model of params.yaml (as the trainer builds and compiles it: warm-up + cosine
schedule, the task's weight decay and EMA, slot variables built before ``fit``), this times the
first ``train_on_batch`` (the trace plus one step) and the median of the next steps with:

(a) ``keras.optimizers.AdamW``;
(b) ``pipeline.train.optimizer.FusedAdamW`` (what the trainer uses);
(c) SGD, the floor: a trace with almost no optimizer in it.

Rounds interleave the three, best of rounds. Prints seconds, the ratio (a) / (b) of the first
step (goal >= 2x) and of a later step (goal ~1: the fused kernel is not slower). Usage::

    python bench/optimizer.py [--tasks cxr,ct] [--rounds 2] [--size 64] [--batch 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("keras AdamW", "FusedAdamW", "SGD (floor)")


def make_optimizer(variant: str, tp, steps: int):
    import keras

    from pipeline.train.optimizer import FusedAdamW
    from pipeline.train.schedule import warmup_cosine

    schedule = warmup_cosine(tp.lr_head, total_steps=steps, warmup_steps=steps // 10,
                             min_lr_fraction=tp.min_lr_fraction)
    if variant == "SGD (floor)":
        return keras.optimizers.SGD(schedule)
    cls = FusedAdamW if variant == "FusedAdamW" else keras.optimizers.AdamW
    return cls(learning_rate=schedule, weight_decay=tp.weight_decay, use_ema=tp.ema,
               ema_momentum=tp.ema_momentum)


def time_variant(task, shape: tuple[int, ...], variant: str, batch: int,
                 steps: int) -> tuple[float, float, int]:
    """(first step s, median later step s, trainable variables) of a fresh model."""
    import keras

    from pipeline.train import objective
    from pipeline.train.trainer import build_task_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_task_model(task, shape)
    model.compile(optimizer=make_optimizer(variant, task.train, 100), jit_compile=False,
                  loss=objective.make_loss(task.problem, class_balance="none", label_smoothing=0.0,
                                           focal_gamma=0.0))
    model.optimizer.build(model.trainable_variables)  # as the trainer does
    rng = np.random.default_rng(0)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = np.eye(task.n_outputs, dtype=np.float32)[rng.integers(0, task.n_outputs, batch)]
    if task.problem == "binary":
        y = y[:, -1:]
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    later = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        later.append(time.perf_counter() - start)
    return first, statistics.median(later), len(model.trainable_variables)


def task_shape(task, size: int | None) -> tuple[int, ...]:
    if task.kind == "3d":
        d, h, w = task.ingest.volume_shape
        if size:
            d, h, w = max(4, size // 2), size, size
        return (d, h, w, 1)
    h, w = (size, size) if size else task.ingest.image_size
    return (h, w, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="cxr,ct", help="comma-separated tasks of params.yaml")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="later steps timed (median)")
    parser.add_argument("--size", type=int, default=None, help="image side (default: the task's)")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()

    from pipeline.config import load_params

    params = load_params(ROOT / "params.yaml")
    for name in args.tasks.split(","):
        task = params.task(name)
        shape = task_shape(task, args.size)
        best: dict[str, tuple[float, float]] = {}
        n_vars = 0
        for _ in range(args.rounds):
            for variant in VARIANTS:
                first, later, n_vars = time_variant(task, shape, variant, args.batch, args.steps)
                old = best.get(variant, (float("inf"), float("inf")))
                best[variant] = (min(old[0], first), min(old[1], later))
        print(f"{name}: {task.train.backbone} width={task.train.width} input {'x'.join(map(str, shape))}, "
              f"batch {args.batch}, {n_vars} trainable variables, ema={task.train.ema}; "
              f"best of {args.rounds} interleaved rounds")
        for variant in VARIANTS:
            first, later = best[variant]
            print(f"  {variant:12s} first step (trace) {first:6.2f} s | later step {1000 * later:7.1f} ms")
        (k_first, k_later), (f_first, f_later) = best["keras AdamW"], best["FusedAdamW"]
        print(f"  first step keras / fused = {k_first / f_first:.2f}x (goal >= 2x); saved "
              f"{k_first - f_first:.1f} s per trace; fused - SGD = {f_first - best['SGD (floor)'][0]:.1f} s")
        print(f"  later step keras / fused = {k_later / f_later:.2f}x (goal ~1)")


if __name__ == "__main__":
    main()
