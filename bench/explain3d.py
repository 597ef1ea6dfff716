"""3D class activation maps: our compiled gradient pass against tf-keras-vis, same model and volumes.

Model: the demo ct shape (``resnet18_3d``, width 16, 32x64x64x1, ``weights=None``, one sigmoid
output), random volumes in [0, 1], maps at ``conv2_block2_out`` (the layer the demo ct reports).
For Grad-CAM and LayerCAM, times :meth:`pipeline.explain.Explainer.maps` with the default backend
(compiled gradients + the published formula) and with ``backend="tf-keras-vis"`` (eager
gradients), checks that both give the same maps, and prints the per-call medians and their ratio
(tf-keras-vis / ours). Timings are medians over ``--repeats`` after a warm-up (tracing excluded).
Usage::

    python bench/explain3d.py [--volumes 11] [--shape 32 64 64] [--width 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=11, help="volumes per call (default: 11)")
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 64, 64], help="D H W (default: 32 64 64)")
    parser.add_argument("--width", type=int, default=16, help="first-stage filters (default: 16)")
    parser.add_argument("--layer", default="conv2_block2_out", help="target layer")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (default: 3)")
    args = parser.parse_args()

    import keras
    import numpy as np

    from pipeline.explain import Explainer
    from pipeline.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(kind="3d", backbone="resnet18_3d", input_shape=(*args.shape, 1), n_outputs=1,
                        activation="sigmoid", base_width=args.width)
    x = np.random.default_rng(0).uniform(0, 1, (args.volumes, *args.shape, 1)).astype(np.float32)
    explainer = Explainer(model, layer=args.layer)
    print(f"resnet18_3d width {args.width}, {args.volumes} volumes of {args.shape}, layer {explainer.layer}")
    for method in ("gradcam", "layercam"):
        seconds, maps = {}, {}
        for backend in ("auto", "tf-keras-vis"):
            def call(backend=backend, method=method):
                return explainer.maps(x, method=method, backend=backend, batch_size=16)
            maps[backend] = call()  # warm-up (tracing)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            seconds[backend] = statistics.median(times)
        diff = float(np.abs(maps["auto"] - maps["tf-keras-vis"]).max())
        with_heat = int((maps["auto"].reshape(len(x), -1).max(axis=1) > 0).sum())
        ours, vis = seconds["auto"], seconds["tf-keras-vis"]
        print(f"{method:9s} compiled {ours:.3f} s   tf-keras-vis {vis:.3f} s   ratio tf-keras-vis / compiled "
              f"{vis / ours:.1f} x   max |difference| {diff:.1e} ({with_heat} maps with heat)")


if __name__ == "__main__":
    main()
