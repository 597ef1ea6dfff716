"""Is a heatmap faithful to the model? Deletion test: mask what the map ranks highest, watch p drop.

For each image, the pixels (voxels) are ranked by the map; the top ``fraction`` are replaced
(``fill``) and the model's probability for the explained class is recomputed. The same number
of pixels chosen uniformly at random is the baseline (``n_random`` draws). A faithful map picks
pixels the prediction depends on, so masking them lowers the probability more than random
masking does. Ties in the map (e.g. an all-zero map) are broken at random, so a map without
information scores like the random baseline instead of masking the image's first rows.

The probability is the model's output for the class (a probability for
:func:`pipeline.models.build_model` models: sigmoid or softmax). The test is most informative on
images where the model predicts the class: there is little to lose where p is already near 0.
Randomness comes only from ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.explain.scores import ClassIndex, predict, resolve_class_index

FILLS = ("mean", "zero", "blur")
DEFAULT_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
_EPS = 1e-6


@dataclass(frozen=True)
class DeletionResult:
    """Per-image deletion test outcome.

    Attributes:
        fraction: Share of pixels/voxels masked.
        fill: How masked pixels were filled.
        p_original: ``(N,)`` probability of the explained class on the unmasked image.
        drop_map: ``(N,)`` ``p_original`` minus the probability with the map's top pixels masked.
        drop_random: ``(N, n_random)`` the same for random masks of the same size.
    """

    fraction: float
    fill: str
    p_original: np.ndarray
    drop_map: np.ndarray
    drop_random: np.ndarray

    @property
    def beats_random(self) -> np.ndarray:
        """``(N,)`` bool: the map's drop exceeds the image's mean random drop."""
        return self.drop_map > self.drop_random.mean(axis=1)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (plain floats, ``ratio`` None when random masking drops nothing).

        ``flag`` is True when the map does no better than random: its mean drop is not larger
        than random masking's (``difference <= 0``) or it beats random on at most half of the
        images (``win_rate <= 0.5``).
        """
        drop_map = float(self.drop_map.mean())
        drop_random = float(self.drop_random.mean())
        difference = drop_map - drop_random
        win_rate = float(self.beats_random.mean())
        return {
            "fraction": self.fraction,
            "fill": self.fill,
            "n_images": len(self.drop_map),
            "n_random": int(self.drop_random.shape[1]),
            "mean_p_original": float(self.p_original.mean()),
            "mean_drop_map": drop_map,
            "mean_drop_random": drop_random,
            "difference": difference,
            "ratio": drop_map / drop_random if drop_random > _EPS else None,
            "win_rate": win_rate,
            "flag": bool(difference <= 0.0 or win_rate <= 0.5),
        }


@dataclass(frozen=True)
class DeletionCurve:
    """Probability of the explained class versus the fraction of pixels deleted.

    Attributes:
        fractions: ``(F,)`` fractions deleted, ascending.
        fill: How masked pixels were filled.
        p_map: ``(N, F)`` probability with the map's top pixels deleted.
        p_random: ``(N, F)`` mean over the random draws of the same.
    """

    fractions: np.ndarray
    fill: str
    p_map: np.ndarray
    p_random: np.ndarray

    def mean(self) -> dict[str, list[float]]:
        """Mean curves for a plot: ``{"fraction": [...], "map": [...], "random": [...]}``."""
        return {"fraction": self.fractions.tolist(), "map": self.p_map.mean(axis=0).tolist(),
                "random": self.p_random.mean(axis=0).tolist()}

    def auc(self) -> dict[str, float]:
        """Area under the mean curves over the fraction range, divided by that range.

        Lower is better for the map (the probability falls sooner); compare with ``random``.
        """
        span = float(self.fractions[-1] - self.fractions[0]) or 1.0
        return {name: float(np.trapezoid(curve.mean(axis=0), self.fractions) / span)
                for name, curve in (("map", self.p_map), ("random", self.p_random))}


def deletion_test(model: Any, images: np.ndarray, maps: np.ndarray, *, class_index: ClassIndex = None,
                  fraction: float = 0.1, n_random: int = 5, seed: int = 0, fill: str = "mean",
                  batch_size: int = 16) -> DeletionResult:
    """Probability drop when the map's top ``fraction`` is masked versus random masks.

    Args:
        model: The classifier (the trained model itself, any precision).
        images: float32 ``(N, *spatial, C)``.
        maps: ``(N, *spatial)`` heatmaps for ``images`` (higher = more important).
        class_index: The explained output (as for :func:`pipeline.explain.compute_maps`; None =
            positive class for binary, predicted class otherwise). Use the maps' class.
        fraction: Share of pixels masked, in (0, 1]; at least one pixel is masked.
        n_random: Random masks per image (>= 1).
        seed: Seed of the random masks and tie-breaking.
        fill: ``"mean"`` (the image's mean per channel), ``"zero"`` or ``"blur"`` (a Gaussian
            blur of the image, sigma = smallest spatial size / 16, at least 1 pixel).
        batch_size: Images per forward pass.

    Returns:
        A :class:`DeletionResult`; ``.summary()`` for the metrics.

    Raises:
        ValueError: Bad shapes, fraction, n_random or fill.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    p0, p_map, p_random = _masked_probabilities(model, images, maps, class_index, (fraction,),
                                                n_random=n_random, seed=seed, fill=fill,
                                                batch_size=batch_size, at_least_one=True)
    return DeletionResult(float(fraction), fill, p0, p0 - p_map[:, 0], p0[:, None] - p_random[:, 0, :])


def deletion_curve(model: Any, images: np.ndarray, maps: np.ndarray, *, class_index: ClassIndex = None,
                   fractions: Sequence[float] = DEFAULT_FRACTIONS, n_random: int = 3, seed: int = 0,
                   fill: str = "mean", batch_size: int = 16) -> DeletionCurve:
    """Probability versus fraction deleted, for the map's ranking and for random rankings.

    Arguments as :func:`deletion_test`; ``fractions`` in [0, 1], ascending (0 = unmasked).
    Deletions are nested: each fraction masks the previous fraction's pixels and more.

    Returns:
        A :class:`DeletionCurve`; ``.mean()`` for a plot.
    """
    fractions = np.asarray(fractions, np.float64)
    if fractions.ndim != 1 or not len(fractions) or (np.diff(fractions) <= 0).any() \
            or fractions[0] < 0 or fractions[-1] > 1:
        raise ValueError(f"fractions must be ascending values in [0, 1]. Received: {list(fractions)}")
    _, p_map, p_random = _masked_probabilities(model, images, maps, class_index, tuple(fractions),
                                               n_random=n_random, seed=seed, fill=fill,
                                               batch_size=batch_size, at_least_one=False)
    return DeletionCurve(fractions, fill, p_map, p_random.mean(axis=2))


def rank_by_map(heatmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat indices of ``heatmap`` from highest to lowest value, ties in random order (NaN last).

    Returns:
        int64 ``(heatmap.size,)``; its first ``k`` entries are the pixels a deletion masks.
    """
    values = np.asarray(heatmap, np.float64).ravel()
    return np.lexsort((rng.random(values.size), -np.nan_to_num(values, nan=-np.inf)))


def _n_deleted(fraction: float, n: int, at_least_one: bool) -> int:
    k = min(n, int(math.floor(fraction * n + 0.5)))
    return max(k, 1) if at_least_one else k


def _masked_probabilities(model, images, maps, class_index, fractions, *, n_random, seed, fill,
                          batch_size, at_least_one):
    """``p0 (N,)``, ``p_map (N, F)``, ``p_random (N, F, R)``."""
    images, maps = _check(images, maps, n_random, fill, batch_size)
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
    flat = image.reshape(-1, image.shape[-1])
    filler = _filler(image, fill).reshape(flat.shape)
    orders = [rank_by_map(heatmap, rng)]
    orders += [rng.permutation(flat.shape[0]) for _ in range(n_random)]
    out = np.empty((len(fractions), len(orders), *flat.shape), np.float32)
    for f, fraction in enumerate(fractions):
        k = _n_deleted(fraction, flat.shape[0], at_least_one)
        for o, order in enumerate(orders):
            out[f, o] = flat
            out[f, o, order[:k]] = filler[order[:k]]
    return out.reshape(-1, *spatial, image.shape[-1])


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
