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
Methods", ICML 2022; :mod:`pipeline.explain.imputation`): removed pixels are interpolated from
their neighbours, so scattered random pixels are restored almost perfectly and only compact removed
regions lose their content; random masking then drops close to nothing, which is the point.
Orders: ``"morf"`` (most relevant first, the default: a faithful map drops p more than random)
and ``"lerf"`` (least relevant first: a faithful map drops p *less* than random); ROAD
recommends reading both.

The probability is the model's output for the class (a probability for
:func:`pipeline.models.build_model` models: sigmoid or softmax). The test is most informative on
images where the model predicts the class: there is little to lose where p is already near 0.
Randomness comes only from ``seed``.

This module holds the test (:func:`deletion_test`, :func:`deletion_curve`) and its results
(:class:`DeletionResult`, :class:`DeletionCurve`); the masked copies and the model's
probabilities on them are made by :mod:`pipeline.explain.masking` (the map's ranking, the
fills).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.explain.masking import masked_probabilities
from pipeline.explain.scores import ClassIndex

DEFAULT_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
_EPS = 1e-6
#: Fewest images predicted as the class for ``summary(scored_on="predicted")`` to score them alone.
MIN_SCORED = 3


@dataclass(frozen=True)
class DeletionResult:
    """Per-image deletion test outcome.

    Attributes:
        fraction: Share of pixels/voxels masked.
        fill: How masked pixels were filled (one of :data:`~pipeline.explain.masking.FILLS`).
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
            ``"road"`` (:func:`~pipeline.explain.imputation.noisy_linear_imputation`, noise
            :data:`~pipeline.explain.imputation.ROAD_NOISE`; ~0.02 s per 128x128 image and
            ~0.2-0.3 s per 32x64x64 volume at ``n_random=5`` on a CPU).
        batch_size: Images per forward pass.
        order: ``"morf"`` deletes the map's highest pixels first, ``"lerf"`` its lowest.

    Returns:
        A :class:`DeletionResult`; ``.summary()`` for the metrics.

    Raises:
        ValueError: Bad shapes, fraction, n_random, fill or order.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    p0, p_map, p_random = masked_probabilities(model, images, maps, class_index, (fraction,),
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
    _, p_map, p_random = masked_probabilities(model, images, maps, class_index, tuple(fractions),
                                              n_random=n_random, seed=seed, fill=fill,
                                              batch_size=batch_size, at_least_one=False, order=order)
    return DeletionCurve(fractions, fill, p_map, p_random.mean(axis=2), order=order)
