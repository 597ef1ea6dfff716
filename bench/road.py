"""ROAD's cost in the deletion test, side by side with the mean fill: same model, volumes and maps.

Model: the demo ct shape (``resnet18_3d``, width 16, 32x64x64x1, ``weights=None``, one sigmoid
output). Volumes: smoothed noise (Gaussian, sigma 2), as anatomy is smooth; maps: one compact
blob per volume, as a Grad-CAM of a nodule. The deletion test masks the map's top ``--fraction``
and ``--random`` random sets of the same size per volume (the demo ct's explain settings).

Prints, per call of :func:`pipeline.explain.faithfulness.deletion_test` (medians over
``--repeats`` after a warm-up that traces the model):

(a) ``fill="mean"``; (b) ``fill="road"``; and their ratio (b) / (a), the price of a fill that
    stays in the image's distribution;
(c) :func:`pipeline.explain.imputation.noisy_linear_imputation` alone per volume and mask, for
    the map's compact mask and for a random one (CG needs several times the iterations there).

Usage::

    python bench/road.py [--volumes 4] [--shape 32 64 64] [--fraction 0.1] [--random 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.explain import median_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=4, help="volumes per call (default: 4)")
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 64, 64], help="D H W (default: 32 64 64)")
    parser.add_argument("--width", type=int, default=16, help="first-stage filters (default: 16)")
    parser.add_argument("--fraction", type=float, default=0.1, help="share masked (default: 0.1)")
    parser.add_argument("--random", type=int, default=5, help="random masks per volume (default: 5)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (default: 3)")
    args = parser.parse_args()

    import keras
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from pipeline.explain.faithfulness import deletion_test
    from pipeline.explain.imputation import noisy_linear_imputation
    from pipeline.models import build_model

    keras.utils.set_random_seed(0)
    shape = tuple(args.shape)
    model = build_model(kind="3d", backbone="resnet18_3d", input_shape=(*shape, 1), n_outputs=1,
                        activation="sigmoid", base_width=args.width)
    rng = np.random.default_rng(0)
    volumes = np.stack([gaussian_filter(rng.normal(size=shape), 2) for _ in range(args.volumes)])
    volumes = volumes[..., None].astype(np.float32)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    spread = np.array(shape) / 6
    maps = np.stack([np.exp(-(((grid - rng.uniform(0.3, 0.7, 3) * shape) / spread) ** 2).sum(-1))
                     for _ in range(args.volumes)]).astype(np.float32)
    print(f"resnet18_3d width {args.width}, {args.volumes} volumes of {list(shape)}, "
          f"{args.fraction:.0%} masked, 1 map + {args.random} random masks per volume")

    seconds = {}
    for fill in ("mean", "road"):
        def call(fill=fill):
            return deletion_test(model, volumes, maps, fraction=args.fraction, n_random=args.random,
                                 fill=fill, seed=0)
        seconds[fill] = median_seconds(call, args.repeats)
        letter = "a" if fill == "mean" else "b"
        print(f"({letter}) deletion_test fill={fill:4s} {seconds[fill]:7.3f} s per call "
              f"({seconds[fill] / args.volumes * 1000:.0f} ms per volume)")
    print(f"ratio road / mean = {seconds['road'] / seconds['mean']:.2f}x")

    n = int(np.prod(shape))
    k = max(1, round(args.fraction * n))
    compact = np.zeros((1, n), bool)
    compact[0, np.argsort(-maps[0].ravel(), kind="stable")[:k]] = True
    scattered = np.zeros((1, n), bool)
    scattered[0, rng.permutation(n)[:k]] = True
    for name, removed in (("map's compact mask", compact), ("random mask", scattered)):
        removed = removed.reshape(1, *shape)
        took = median_seconds(lambda removed=removed: noisy_linear_imputation(
            volumes[:1], removed, rng=np.random.default_rng(0)), args.repeats)
        print(f"(c) noisy_linear_imputation, {name:18s} {took * 1000:7.1f} ms per volume")


if __name__ == "__main__":
    main()
