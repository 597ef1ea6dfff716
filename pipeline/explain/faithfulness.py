"""Is a heatmap faithful to the model? Deletion test: mask what the map ranks highest, watch p drop.

For each image, the pixels (voxels) are ranked by the map; the top ``fraction`` are replaced
(``fill``) and the model's probability for the explained class is recomputed. The same number
of pixels chosen uniformly at random is the baseline (``n_random`` draws). A faithful map picks
pixels the prediction depends on, so masking them lowers the probability more than random
masking does. Ties in the map (e.g. an all-zero map) are broken at random, so a map without
information scores like the random baseline instead of masking the image's first rows.

Fills: ``"mean"`` (the default, and what the explain stage's flag uses), ``"zero"``, ``"blur"``
and ``"road"``. A constant fill can itself push an image out of distribution (a flat patch in
ultrasound speckle, or the hard edges of many scattered masked pixels), so part of a drop may be
the model reacting to the artefact rather than to lost evidence. ``"road"`` is ROAD's noisy
linear imputation (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution
Methods", ICML 2022; :func:`noisy_linear_imputation`): removed pixels are interpolated from their
neighbours, so scattered random pixels are restored almost perfectly and only compact removed
regions lose their content; random masking then drops close to nothing, which is the point.
Orders: ``"morf"`` (most relevant first, the default: a faithful map drops p more than random)
and ``"lerf"`` (least relevant first: a faithful map drops p *less* than random); ROAD
recommends reading both.

The probability is the model's output for the class (a probability for
:func:`pipeline.models.build_model` models: sigmoid or softmax). The test is most informative on
images where the model predicts the class: there is little to lose where p is already near 0.
Randomness comes only from ``seed``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.explain.scores import ClassIndex, predict, resolve_class_index

FILLS = ("mean", "zero", "blur", "road")
#: Deletion orders: most relevant first (the map's top pixels) or least relevant first.
ORDERS = ("morf", "lerf")
#: ROAD's noise: standard deviation of the noise added to imputed pixels, as a share of the
#: image's per-channel standard deviation (the paper's 0.01 on standardised inputs).
ROAD_NOISE = 0.01
DEFAULT_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
_EPS = 1e-6
#: Fewest images predicted as the class for ``summary(scored_on="predicted")`` to score them alone.
MIN_SCORED = 3


@dataclass(frozen=True)
class DeletionResult:
    """Per-image deletion test outcome.

    Attributes:
        fraction: Share of pixels/voxels masked.
        fill: How masked pixels were filled (one of :data:`FILLS`).
        p_original: ``(N,)`` probability of the explained class on the unmasked image.
        drop_map: ``(N,)`` ``p_original`` minus the probability with the map's top pixels masked
            (its bottom pixels for ``order="lerf"``).
        drop_random: ``(N, n_random)`` the same for random masks of the same size.
        order: ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
    """

    fraction: float
    fill: str
    p_original: np.ndarray
    drop_map: np.ndarray
    drop_random: np.ndarray
    order: str = "morf"

    @property
    def beats_random(self) -> np.ndarray:
        """``(N,)`` bool: the map's drop exceeds the image's mean random drop (MoRF), or falls
        below it (LeRF: deleting what the map calls irrelevant should cost less than random)."""
        mean_random = self.drop_random.mean(axis=1)
        return self.drop_map < mean_random if self.order == "lerf" else self.drop_map > mean_random

    def summary(self, *, scored_on: str = "all", min_images: int = MIN_SCORED) -> dict[str, Any]:
        """JSON-ready summary (plain floats, ``ratio`` None when random masking drops nothing).

        ``flag`` is True when the map does no better than random: its mean drop is not larger
        than random masking's (``difference <= 0``; ``>= 0`` for LeRF) or it beats random on at
        most half of the images (``win_rate <= 0.5``).

        Args:
            scored_on: ``all`` images, or ``predicted``: only those the model assigns the
                explained class (``p_original >= 0.5``). A map of a class the model does not see
                in an image (a normal film's "opacity" map) has nothing to delete, and masking
                can even *create* the finding there (a mean-grey patch on dark lung looks like an
                opacity), so the flag is about the images the map is meant for; with fewer than
                ``min_images`` such images all images are scored, and the summary says so.
            min_images: See ``scored_on``.
        """
        if scored_on not in ("all", "predicted"):
            raise ValueError(f"scored_on must be 'all' or 'predicted'. Received: {scored_on!r}")
        keep = np.ones(len(self.drop_map), bool)
        used = "all"
        if scored_on == "predicted":
            predicted = self.p_original >= 0.5
            if int(predicted.sum()) >= min_images:
                keep, used = predicted, "predicted"
            else:
                used = f"all (fewer than {min_images} images predicted as the class)"
        drop_map = float(self.drop_map[keep].mean())
        drop_random = float(self.drop_random[keep].mean())
        difference = drop_map - drop_random
        win_rate = float(self.beats_random[keep].mean())
        worse = difference >= 0.0 if self.order == "lerf" else difference <= 0.0
        return {
            "fraction": self.fraction,
            "fill": self.fill,
            "order": self.order,
            "scored_on": used,
            "n_images": int(keep.sum()),
            "n_all_images": len(self.drop_map),
            "n_random": int(self.drop_random.shape[1]),
            "mean_p_original": float(self.p_original[keep].mean()),
            "mean_drop_map": drop_map,
            "mean_drop_random": drop_random,
            "difference": difference,
            "ratio": drop_map / drop_random if drop_random > _EPS else None,
            "win_rate": win_rate,
            "flag": bool(worse or win_rate <= 0.5),
        }


@dataclass(frozen=True)
class DeletionCurve:
    """Probability of the explained class versus the fraction of pixels deleted.

    Attributes:
        fractions: ``(F,)`` fractions deleted, ascending.
        fill: How masked pixels were filled.
        p_map: ``(N, F)`` probability with the map's top pixels deleted (bottom ones for LeRF).
        p_random: ``(N, F)`` mean over the random draws of the same.
        order: ``"morf"`` or ``"lerf"``.
    """

    fractions: np.ndarray
    fill: str
    p_map: np.ndarray
    p_random: np.ndarray
    order: str = "morf"

    def mean(self) -> dict[str, list[float]]:
        """Mean curves for a plot: ``{"fraction": [...], "map": [...], "random": [...]}``."""
        return {"fraction": self.fractions.tolist(), "map": self.p_map.mean(axis=0).tolist(),
                "random": self.p_random.mean(axis=0).tolist()}

    def auc(self) -> dict[str, float]:
        """Area under the mean curves over the fraction range, divided by that range.

        MoRF: lower is better for the map (the probability falls sooner); LeRF: higher is
        better. Compare with ``random``.
        """
        span = float(self.fractions[-1] - self.fractions[0]) or 1.0
        return {name: float(np.trapezoid(curve.mean(axis=0), self.fractions) / span)
                for name, curve in (("map", self.p_map), ("random", self.p_random))}


def deletion_test(model: Any, images: np.ndarray, maps: np.ndarray, *, class_index: ClassIndex = None,
                  fraction: float = 0.1, n_random: int = 5, seed: int = 0, fill: str = "mean",
                  batch_size: int = 16, order: str = "morf") -> DeletionResult:
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
        fill: ``"mean"`` (the image's mean per channel), ``"zero"``, ``"blur"`` (a Gaussian
            blur of the image, sigma = smallest spatial size / 16, at least 1 pixel) or
            ``"road"`` (:func:`noisy_linear_imputation`, noise :data:`ROAD_NOISE`; ~0.02 s per
            128x128 image and ~0.2-0.3 s per 32x64x64 volume at ``n_random=5`` on a CPU).
        batch_size: Images per forward pass.
        order: ``"morf"`` deletes the map's highest pixels first, ``"lerf"`` its lowest.

    Returns:
        A :class:`DeletionResult`; ``.summary()`` for the metrics.

    Raises:
        ValueError: Bad shapes, fraction, n_random, fill or order.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    p0, p_map, p_random = _masked_probabilities(model, images, maps, class_index, (fraction,),
                                                n_random=n_random, seed=seed, fill=fill,
                                                batch_size=batch_size, at_least_one=True, order=order)
    return DeletionResult(float(fraction), fill, p0, p0 - p_map[:, 0], p0[:, None] - p_random[:, 0, :],
                          order=order)


def deletion_curve(model: Any, images: np.ndarray, maps: np.ndarray, *, class_index: ClassIndex = None,
                   fractions: Sequence[float] = DEFAULT_FRACTIONS, n_random: int = 3, seed: int = 0,
                   fill: str = "mean", batch_size: int = 16, order: str = "morf") -> DeletionCurve:
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
                                               batch_size=batch_size, at_least_one=False, order=order)
    return DeletionCurve(fractions, fill, p_map, p_random.mean(axis=2), order=order)


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
                          batch_size, at_least_one, order="morf"):
    """``p0 (N,)``, ``p_map (N, F)``, ``p_random (N, F, R)``."""
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
    orders = [rank_by_map(heatmap, rng)]
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


def noisy_linear_imputation(images: np.ndarray, removed: np.ndarray, *, noise: float = ROAD_NOISE,
                            rng: np.random.Generator | None = None) -> np.ndarray:
    """ROAD's noisy linear imputation (Rong et al., ICML 2022): fill removed pixels from their neighbours.

    Every removed pixel (voxel) takes the weighted mean of its 8 (2D) or 26 (3D) in-bounds
    neighbours, weight 1 / (number of axes the neighbour is offset along): 1 across a face,
    1/2 along an edge, 1/3 at a corner (ROAD's 1/6 and 1/12 in 2D, up to normalisation).
    Removed neighbours are unknowns too, so all removed pixels of a batch are solved at once as
    one sparse symmetric positive definite system (``diag(W) x_u - W_uu x_u = W_uk x_k``,
    block-diagonal over images; conjugate gradients, Jacobi-preconditioned). A linear ramp with
    a hole is restored exactly, and, unlike a constant fill, neither the removed pixels' values
    nor the removal pattern's edges stand out. Then Gaussian noise of ``noise`` times the
    image's per-channel standard deviation is added (ROAD: 0.01 on standardised inputs) and
    the result clipped to the image's per-channel range, so imputed values stay in
    distribution. An image with every pixel removed gets its per-channel mean.

    Args:
        images: ``(M, *spatial, C)``, 2D or 3D spatial axes.
        removed: ``(M, *spatial)`` bool, True = replace.
        noise: Noise standard deviation as a share of each image's channel std (0 = none).
        rng: Noise source (required when ``noise > 0`` and something is removed).

    Returns:
        float32 copy of ``images`` with the removed pixels imputed.

    Raises:
        ValueError: Mismatched shapes or negative ``noise``.
    """
    images = np.array(images, dtype=np.float32, order="C")  # C order: ``flat`` below is a view
    removed = np.asarray(removed, dtype=bool)
    if images.ndim not in (4, 5) or removed.shape != images.shape[:-1]:
        raise ValueError(f"images must be (M, *spatial, C) with 2D/3D spatial axes, removed (M, *spatial). "
                         f"Received: images.shape={images.shape}, removed.shape={removed.shape}")
    if not noise >= 0.0:
        raise ValueError(f"noise must be >= 0. Received: noise={noise!r}")
    original = images.copy()
    spatial_axes = tuple(range(1, images.ndim - 1))
    everything = removed.all(axis=spatial_axes)
    if everything.any():
        images[everything] = original[everything].mean(axis=spatial_axes, keepdims=True)
    solve = removed & ~everything.reshape((-1,) + (1,) * len(spatial_axes))
    flat = images.reshape(-1, images.shape[-1])
    unknown = np.flatnonzero(solve)
    if unknown.size:
        flat[unknown] = _solve_imputation(solve, flat, unknown)
        images = flat.reshape(images.shape)
    if noise > 0.0 and removed.any():
        if rng is None:
            raise ValueError("rng is required when noise > 0")
        std = original.std(axis=spatial_axes, keepdims=True)
        images += np.where(removed[..., None], noise * std * rng.standard_normal(images.shape,
                                                                                  dtype=np.float32), 0.0)
    low = original.min(axis=spatial_axes, keepdims=True)
    high = original.max(axis=spatial_axes, keepdims=True)
    return np.where(removed[..., None], np.clip(images, low, high), original).astype(np.float32)


def _solve_imputation(removed: np.ndarray, flat: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Values ``(len(unknown), C)`` of the removed pixels: the neighbour-mean system's solution."""
    from scipy import sparse
    from scipy.sparse.linalg import LinearOperator, cg
    from threadpoolctl import threadpool_limits

    n = unknown.size
    row_of = np.full(removed.size, -1, np.int64)
    row_of[unknown] = np.arange(n)
    coords = np.unravel_index(unknown, removed.shape)[1:]
    spatial = removed.shape[1:]
    strides = np.cumprod((1, *spatial[::-1]))[:-1][::-1]  # flat-index step per spatial axis
    inside = {(axis, step): coords[axis] > 0 if step < 0 else coords[axis] < spatial[axis] - 1
              for axis in range(len(spatial)) for step in (-1, 1)}
    diag = np.zeros(n, np.float64)
    rhs = np.zeros((n, flat.shape[1]), np.float64)
    rows, cols, vals = [], [], []
    for offset in _offsets(len(spatial)):
        weight = 1.0 / sum(map(abs, offset))
        valid = np.logical_and.reduce([inside[axis, step] for axis, step in enumerate(offset) if step]
                                      + [np.ones(n, bool)])
        src = np.flatnonzero(valid)
        neighbour = unknown[src] + int(np.dot(offset, strides))  # in-bounds: same image
        diag[src] += weight
        is_unknown = row_of[neighbour] >= 0
        rows.append(src[is_unknown])
        cols.append(row_of[neighbour[is_unknown]])
        vals.append(np.full(int(is_unknown.sum()), -weight))
        rhs[src[~is_unknown]] += weight * flat[neighbour[~is_unknown]]  # each src once per offset
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    system = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(n, n))
    jacobi = LinearOperator((n, n), matvec=lambda v: v / diag, dtype=np.float64)
    out = np.empty_like(rhs)
    # CG's vector dot products are far too small for BLAS threads; on a busy machine the threads
    # made them ~1000x slower (20 ms per 13k-element dot on 2 loaded cores).
    with threadpool_limits(limits=1, user_api="blas"):
        for c in range(rhs.shape[1]):
            b = np.ascontiguousarray(rhs[:, c])
            out[:, c], info = cg(system, b, x0=b / diag, rtol=1e-6, atol=0.0, maxiter=10 * n, M=jacobi)
            if info:  # pragma: no cover - the system is SPD; a direct solve if CG ever stalls
                out[:, c] = sparse.linalg.spsolve(system.tocsc(), b)
    return out


def _offsets(ndim: int) -> list[tuple[int, ...]]:
    """The 8 (2D) or 26 (3D) neighbour offsets, in :func:`itertools.product` order."""
    return [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]


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
