"""Grad-CAM cost, side by side in one run, same model and images.

Model: the default 2D demo shape (``resnet18``, width 32, 128x128x1, ``weights=None``, one
sigmoid output), random images in [0, 1]; flags select others.

(a) batched Grad-CAM: :class:`pipeline.explain.Explainer` (tf-explain's batch functions,
    compiled once), maps at input resolution, ``--batch`` images per gradient pass;
(b) tf-explain's public ``GradCAM().explain(...)`` called one image at a time (raw gradients,
    as (a); it also builds its gradient model and renders an overlay on every call);
(c) one forward + backward pass on the same batch (gradient of the output with respect to all
    weights, inference mode, compiled): Grad-CAM's cost relative to it (goal <= 1.3x).

Prints images/s of (a) and (b) and their ratio, then per-batch times of (a) split into its
gradient pass and post-processing, of a forward pass alone (reference) and of (c). Timings are
medians over ``--repeats`` after a warm-up (tracing excluded). Usage::

    python bench/explain.py [--backbone resnet18] [--width 32] [--size 128] [--images 64] [--batch 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(args: argparse.Namespace):
    import keras

    from pipeline.models import BACKBONES, build_model

    keras.mixed_precision.set_global_policy(args.precision)
    native = BACKBONES[args.backbone].family == "resnet_basic"
    model = build_model(kind="2d", backbone=args.backbone, input_shape=(args.size, args.size, 1),
                        n_outputs=1, activation="sigmoid", base_width=args.width if native else None)
    keras.mixed_precision.set_global_policy("float32")
    return model


def forward_backward(model):
    """Compiled gradient of the summed output with respect to every trainable weight."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(model(x, training=False), tf.float32))
        return tape.gradient(loss, model.trainable_variables)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18", help="2D registry name (default: resnet18)")
    parser.add_argument("--width", type=int, default=32, help="base_width of resnet18/34 (default: 32)")
    parser.add_argument("--size", type=int, default=128, help="image height = width (default: 128)")
    parser.add_argument("--images", type=int, default=64, help="images explained (default: 64)")
    parser.add_argument("--batch", type=int, default=16, help="batch size of (a) and (c) (default: 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (default: 3)")
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_bfloat16", "mixed_float16"],
                        help="dtype policy the model is built under (default: float32)")
    args = parser.parse_args()

    import tensorflow as tf
    from tf_explain.core.grad_cam import GradCAM

    from pipeline.explain import Explainer
    from pipeline.explain.maps import to_input_grid

    model = build(args)
    images = np.random.default_rng(0).random((args.images, args.size, args.size, 1)).astype(np.float32)
    batch = images[:args.batch]

    start = time.perf_counter()
    explainer = Explainer(model)
    setup = time.perf_counter() - start
    layer = explainer.layer

    batched = median_seconds(lambda: explainer.maps(images, batch_size=args.batch), args.repeats)

    def one_at_a_time():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf-explain's nested-inputs structure warning
            for i in range(len(images)):
                GradCAM().explain((images[i:i + 1], None), model, class_index=0, layer_name=layer,
                                  use_guided_grads=False)

    single = median_seconds(one_at_a_time, max(1, args.repeats // 2))

    x = tf.constant(batch)
    step = forward_backward(model)
    fwd_bwd = median_seconds(lambda: [g.numpy() for g in step(x)], args.repeats)
    forward = tf.function(lambda x: model(x, training=False))
    fwd = median_seconds(lambda: forward(x).numpy(), args.repeats)
    gradcam_batch = median_seconds(lambda: explainer.maps(batch, batch_size=args.batch), args.repeats)
    grads_only = median_seconds(lambda: [t.numpy() for t in explainer._tf_explain_gradients(batch, 0)],
                                args.repeats)
    outputs, grads = explainer._tf_explain_gradients(batch, 0)

    def post():
        cams = np.stack([c.numpy() for c in GradCAM.generate_ponderated_output(outputs, grads)])
        return to_input_grid(cams, batch.shape[1:-1])

    post_only = median_seconds(post, args.repeats)

    n = len(images)
    print(f"model {model.name} (width {args.width}) {args.size}x{args.size}x1, {args.precision}, "
          f"target layer {layer}; {n} images, batch {args.batch}; "
          f"{os.cpu_count()} CPUs visible, TF {tf.__version__}; explainer setup {setup:.2f} s")
    rows = [
        ("(a) batched Grad-CAM (maps)", f"{n / batched:8.1f} img/s", f"{batched:7.2f} s / {n} img"),
        ("(b) tf-explain explain(), 1 image/call", f"{n / single:8.1f} img/s", f"{single:7.2f} s / {n} img"),
        ("    speed-up (a) / (b)", f"{single / batched:8.1f} x", ""),
        ("(a) per batch: gradients (tf-explain)", f"{grads_only * 1e3:8.1f} ms", ""),
        ("(a) per batch: weighting+upsample+norm", f"{post_only * 1e3:8.1f} ms", ""),
        ("(a) per batch: total", f"{gradcam_batch * 1e3:8.1f} ms", ""),
        ("    forward only per batch (reference)", f"{fwd * 1e3:8.1f} ms", ""),
        ("(c) forward+backward per batch", f"{fwd_bwd * 1e3:8.1f} ms", ""),
        ("    Grad-CAM / fwd+bwd (goal <= 1.3x)", f"{gradcam_batch / fwd_bwd:8.2f} x",
         "ok" if gradcam_batch / fwd_bwd <= 1.3 else "ABOVE GOAL"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value}  {note}".rstrip())


if __name__ == "__main__":
    main()
