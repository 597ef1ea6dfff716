"""Training input pipeline cost, side by side in one run.

For the default 2D task model (params.yaml ``tasks.cxr.train``) on synthetic 2D data of the task's
``image_size``:

(a) the model trained for a fixed number of steps on in-memory tensors (no input cost);
(b) the same model trained the same number of steps fed by the real pipeline: memory-mapped
    ``.npy`` -> ``make_dataset`` (shuffle, parallel map with the albumentations augmentation of
    ``--preset``, ``mild`` (the default list) or ``strong``, batch, prefetch);
(c) the pipeline alone, no model.

Prints images/s for each, the pipeline's share of step time (goal <= 10%) and the ratio pipeline
alone / model (goal >= 5x). Then bfloat16 versus float32 step time on this CPU. Usage::

    python bench/train_input.py [--steps 60] [--batch 16] [--preset strong] [--size 128]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(task, policy: str):
    import keras

    from pipeline.train import objective
    from pipeline.train.optimizer import FusedAdamW
    from pipeline.train.trainer import build_task_model

    keras.mixed_precision.set_global_policy(policy)
    model = build_task_model(task, (*task.ingest.image_size, 1))
    model.compile(optimizer=FusedAdamW(1e-3), jit_compile=False,  # the trainer's AdamW
                  loss=objective.make_loss("binary", class_balance="none", label_smoothing=0.0,
                                           focal_gamma=0.0))
    return model


def time_steps(model, batches, steps: int) -> float:
    """Seconds for ``steps`` train steps after 3 warm-up steps (graph tracing excluded)."""
    it = iter(batches)
    for _ in range(3):
        model.train_on_batch(*next(it))
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*next(it))
    return time.perf_counter() - start


def main() -> None:
    from pipeline.augment import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=None, help="default: the task's batch_size")
    parser.add_argument("--preset", choices=list(PRESETS), default="mild",
                        help="augmentation preset (tasks.<t>.train.augment_preset)")
    parser.add_argument("--size", type=int, default=None, help="image side (default: the task's)")
    args = parser.parse_args()

    import tensorflow as tf

    from pipeline.augment import Augmenter, preset_spec
    from pipeline.config import load_params
    from pipeline.dataset.store import open_array
    from pipeline.dataset.tfdata import benchmark_throughput, make_dataset

    task = load_params(ROOT / "params.yaml").task("cxr")
    batch = args.batch or task.train.batch_size
    if args.size:
        task = task.model_copy(update={"ingest": task.ingest.model_copy(
            update={"image_size": (args.size, args.size)})})
    h, w = task.ingest.image_size
    n = batch * (args.steps + 4)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, h, w, 1))
        arr[:] = rng.integers(0, 256, size=arr.shape, dtype=np.uint8)
        arr.flush()
        images = open_array(path)
        y = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
        idx = np.arange(n)

        def pipeline_ds():
            aug = Augmenter(preset_spec(args.preset, kind="2d"), kind="2d")
            return make_dataset(images, y, idx, batch_size=batch, training=True, seed=0,
                                augmenter=aug, deterministic=False).repeat()

        x_mem = tf.constant(np.asarray(images[:batch], np.float32) / 255.0)
        y_mem = tf.constant(y[:batch])
        memory = [(x_mem, y_mem)] * (args.steps + 3)

        model = build(task, "float32")
        t_mem = time_steps(model, memory, args.steps)
        t_pipe = time_steps(model, pipeline_ds(), args.steps)
        alone = benchmark_throughput(pipeline_ds(), args.steps)
        ips_mem = batch * args.steps / t_mem
        ips_pipe = batch * args.steps / t_pipe
        print(f"model {task.train.backbone} width={task.train.width} input {h}x{w}, batch {batch}, "
              f"{args.steps} steps, augment_preset {args.preset}")
        print(f"(a) in-memory tensors:        {ips_mem:8.1f} images/s")
        print(f"(b) real augmented pipeline:  {ips_pipe:8.1f} images/s")
        print(f"    pipeline share of step time: {max(0.0, 1 - t_mem / t_pipe):.1%} (goal <= 10%)")
        print(f"(c) pipeline alone (no model): {alone:8.1f} images/s = {alone / ips_mem:.1f}x the "
              "model (goal >= 5x)")

        bf16 = build(task, "mixed_bfloat16")
        t_bf16 = time_steps(bf16, memory, args.steps)
        print(f"step time float32 {1000 * t_mem / args.steps:.1f} ms, mixed_bfloat16 "
              f"{1000 * t_bf16 / args.steps:.1f} ms: bfloat16/float32 = {t_bf16 / t_mem:.2f}")


if __name__ == "__main__":
    main()
