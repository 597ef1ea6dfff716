"""Masked copies of an image for the deletion test, and the model's probabilities on them.

Which pixels (voxels) are removed: the top ``k`` of a map's ranking (:func:`rank_by_map`, ties
in random order) or ``k`` chosen uniformly at random; how they are filled (:data:`FILLS`):
the image's mean, zero, a Gaussian blur, or ROAD's imputation from the neighbours
(:func:`pipeline.explain.imputation.noisy_linear_imputation`). The test itself and its
results are in :mod:`pipeline.explain.faithfulness`.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.explain.imputation import noisy_linear_imputation
from pipeline.explain.scores import predict, resolve_class_index

FILLS = ("mean", "zero", "blur", "road")
#: Deletion orders: most relevant first (the map's top pixels) or least relevant first.
ORDERS = ("morf", "lerf")


def rank_by_map(heatmap: np.ndarray, rng: np.random.Generator, top: int | None = None) -> np.ndarray:
    """Flat indices of ``heatmap`` from highest to lowest value, ties in random order (NaN last).

    Each pixel draws a uniform random key (one draw per pixel, whatever ``top``), and ties are
    ordered by it. With ``top``, only the first ``top`` of that ranking are sorted: the pixels
    above the ``top``-th value and, among those at it, the ones with the smallest keys (a
    partition, then a sort of ``top`` entries; a deletion of 10% of a 32x64x64 volume: 5x less
    work than sorting all of it, the same indices).

    Returns:
        int64 ``(heatmap.size,)``, or its first ``top`` entries; the first ``k`` entries are the
        pixels a deletion of ``k`` masks.
    """
    values = np.asarray(heatmap, np.float64).ravel()
    ties = rng.random(values.size)
    keys = -np.nan_to_num(values, nan=-np.inf)  # ascending keys: highest value first, NaN last
    if top is None or top >= values.size:
        return np.lexsort((ties, keys))
    if top <= 0:
        return np.empty(0, np.int64)
    kth = np.partition(keys, top - 1)[top - 1]
    above = np.flatnonzero(keys < kth)
    at = np.flatnonzero(keys == kth)
    need = top - above.size
    if need < at.size:
        at = at[np.argpartition(ties[at], need - 1)[:need]]
    chosen = np.concatenate([above, at])
    return chosen[np.lexsort((ties[chosen], keys[chosen]))]


def _n_deleted(fraction: float, n: int, at_least_one: bool) -> int:
    k = min(n, int(math.floor(fraction * n + 0.5)))
    return max(k, 1) if at_least_one else k


def masked_probabilities(model, images, maps, class_index, fractions, *, n_random, seed, fill,
                         batch_size, at_least_one, order="morf"):
    """``p0 (N,)``, ``p_map (N, F)``, ``p_random (N, F, R)``: the explained class's probability on
    the images, with the map's top pixels per fraction removed, and with random ones.

    Arguments as :func:`pipeline.explain.faithfulness.deletion_test`; ``at_least_one`` removes
    at least one pixel at every fraction.
    """
    images, maps = _check(images, maps, n_random, fill, batch_size)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)}. Received: order={order!r}")
    if order == "lerf":
        maps = -maps  # the lowest values first (NaN still last)
    classes = resolve_class_index(model, images, class_index, batch_size=batch_size)
    rng = np.random.default_rng(seed)
    p0 = _pick(predict(model, images, batch_size=batch_size), classes)
    n, n_f = len(images), len(fractions)
    per_image = n_f * (1 + n_random)
    probs = np.empty((n, n_f, 1 + n_random), np.float32)
    chunk = max(1, batch_size // per_image)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        variants = np.concatenate([_variants(images[i], maps[i], fractions, n_random, rng, fill,
                                             at_least_one) for i in range(start, stop)])
        out = predict(model, variants, batch_size=batch_size)
        probs[start:stop] = _pick(out, np.repeat(classes[start:stop], per_image)).reshape(
            stop - start, n_f, 1 + n_random)
    return p0, probs[:, :, 0], probs[:, :, 1:]


def _variants(image, heatmap, fractions, n_random, rng, fill, at_least_one) -> np.ndarray:
    """``(F * (1 + R), *image.shape)``: per fraction, the map-masked then the random-masked copies."""
    spatial = image.shape[:-1]
    n_pixels = int(np.prod(spatial))
    most = max((_n_deleted(fraction, n_pixels, at_least_one) for fraction in fractions), default=0)
    orders = [rank_by_map(heatmap, rng, top=most)]
    orders += [rng.permutation(n_pixels) for _ in range(n_random)]
    removed = np.zeros((len(fractions), len(orders), n_pixels), bool)
    for f, fraction in enumerate(fractions):
        k = _n_deleted(fraction, n_pixels, at_least_one)
        for o, order in enumerate(orders):
            removed[f, o, order[:k]] = True
    removed = removed.reshape(-1, *spatial)
    if fill == "road":
        return noisy_linear_imputation(np.broadcast_to(image, (len(removed), *image.shape)), removed,
                                       rng=rng)
    return np.where(removed[..., None], _filler(image, fill), image).astype(np.float32)


def _filler(image: np.ndarray, fill: str) -> np.ndarray:
    if fill == "zero":
        return np.zeros_like(image)
    if fill == "mean":
        return np.broadcast_to(image.mean(axis=tuple(range(image.ndim - 1))), image.shape)
    from scipy.ndimage import gaussian_filter

    sigma = max(1.0, min(image.shape[:-1]) / 16)
    return gaussian_filter(image, sigma=(sigma,) * (image.ndim - 1) + (0,), mode="nearest")


def _pick(outputs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return outputs[np.arange(len(classes)), classes].astype(np.float32)


def _check(images, maps, n_random, fill, batch_size):
    images = np.asarray(images, np.float32)
    maps = np.asarray(maps, np.float32)
    if images.ndim not in (4, 5) or maps.shape != images.shape[:-1] or not len(images):
        raise ValueError(f"images must be (N, *spatial, C) with N >= 1 and 2D/3D spatial axes, maps "
                         f"(N, *spatial). Received: images.shape={images.shape}, maps.shape={maps.shape}")
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {list(FILLS)}. Received: fill={fill!r}")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise ValueError(f"n_random must be an integer >= 1. Received: n_random={n_random!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1. Received: batch_size={batch_size!r}")
    return images, maps
