"""Localization of explanation maps against lesion masks: IoU, the pointing game and the
energy share, 2D or 3D.

Conventions:

- A map (Grad-CAM heatmap, any non-negative scale) and a mask have the same spatial shape; a
  trailing channel axis of size 1 on either (``(H, W, 1)``, ``(D, H, W, 1)`` as in ``masks.npy``)
  is ignored. Mask voxels > 0 are lesion.
- The map is binarised at a **fraction of its own maximum**: ``map >= threshold * max(map)``
  (default ``threshold = 0.5``), so the rule does not depend on the map's scale. A map whose
  maximum is <= 0 (no positive evidence anywhere) marks nothing. Non-finite map values count as 0.
- IoU = |A and B| / |A or B| of two binary masks; NaN when both are empty.
- Pointing game: a hit when the map's maximum (the first one in C order if tied) lies inside the
  mask; a map with no positive value is a miss. Cases with an empty mask are not scored (NaN).
- Energy share (the "energy-based pointing game" of Score-CAM, Wang et al. 2020): the share of
  the map's total mass inside the mask, ``sum(map * mask) / sum(map)`` with negative values as 0;
  threshold-free, so a map that is brighter on the lesion than elsewhere scores above chance even
  when its single peak falls outside (IoU and the pointing game then read near 0). Its chance
  level is the mask's share of the image (a flat map scores exactly that); both are reported.
  A map with no positive value scores 0.
- Chance levels: a map blind to the lesion (flat, or its peak at a uniformly random place) puts
  the mask's share of the image inside it and hits the lesion with that probability, so the
  mean mask share is the chance level of both the energy share (``energy_chance``) and the
  pointing game (``pointing_game_chance``). IoU has no such reference level.
- Intervals: patient-level bootstrap; the pointing game is a proportion (hits of scored cases), so
  where its bootstrap interval collapses (no hit or all hits) the exact Clopper-Pearson interval
  is used instead (``pointing_game_ci_method``, see :mod:`pipeline.evaluate.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.evaluate.bootstrap import bootstrap, exact_if_degenerate

#: Cases processed together in :func:`localization_scores` (bounds memory for 3D volumes).
CHUNK = 32


def _spatial(arr: np.ndarray, lead: int) -> np.ndarray:
    """Drop a trailing channel axis of size 1 (``(H, W, 1)`` -> ``(H, W)``) after ``lead`` axes."""
    return arr[..., 0] if arr.ndim - lead >= 3 and arr.shape[-1] == 1 else arr


def _pair(heatmap: np.ndarray, mask: np.ndarray, *, batched: bool) -> tuple[np.ndarray, np.ndarray]:
    lead = 1 if batched else 0
    h, m = _spatial(np.asarray(heatmap), lead), _spatial(np.asarray(mask), lead)
    if h.shape != m.shape or h.ndim - lead not in (2, 3):
        raise ValueError(f"heatmap and mask must have the same 2D or 3D shape (a trailing channel "
                         f"of 1 is allowed). Received: {np.shape(heatmap)} and {np.shape(mask)}")
    return h, m


def binarize_map(heatmap: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask ``heatmap >= threshold * max(heatmap)``; all False if the max is <= 0.

    Raises:
        ValueError: ``threshold`` outside (0, 1].
    """
    _check_threshold(threshold)
    h = np.nan_to_num(np.asarray(heatmap, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = h.max() if h.size else 0.0
    if peak <= 0:
        return np.zeros(h.shape, dtype=bool)
    return h >= threshold * peak


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two binary masks of equal shape (NaN if both are empty)."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape. Received: {a.shape} and {b.shape}")
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def iou(heatmap: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    """IoU between the map binarised at ``threshold`` x its maximum and the lesion mask."""
    h, m = _pair(heatmap, mask, batched=False)
    return mask_iou(binarize_map(h, threshold), m)


def pointing_hit(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """1.0 if the map's maximum lies inside the mask, 0.0 if not, NaN for an empty mask."""
    scores = localization_scores(np.asarray(heatmap)[None], np.asarray(mask)[None])
    return float(scores.hit[0])


@dataclass(frozen=True)
class LocalizationScores:
    """Per-case localization results (NaN where the case's mask is empty).

    Attributes:
        iou: ``(N,)`` IoU of the binarised map with the mask.
        hit: ``(N,)`` pointing-game hit (1.0/0.0).
        energy: ``(N,)`` share of the map's mass inside the mask.
        chance: ``(N,)`` the mask's share of the image (the energy share of a flat map).
    """

    iou: np.ndarray
    hit: np.ndarray
    energy: np.ndarray | None = None
    chance: np.ndarray | None = None

    @property
    def scored(self) -> np.ndarray:
        """``(N,)`` bool: cases with a non-empty mask."""
        return np.isfinite(self.hit)


def localization_scores(heatmaps: np.ndarray, masks: np.ndarray, *, threshold: float = 0.5
                        ) -> LocalizationScores:
    """IoU and pointing-game hit of each case, in chunks of :data:`CHUNK` cases.

    Args:
        heatmaps: ``(N, H, W)`` or ``(N, D, H, W)`` maps (optionally with a trailing 1 channel);
            memory-mapped arrays are fine.
        masks: Same shape; > 0 = lesion.
        threshold: Map binarisation, a fraction of each map's maximum.

    Raises:
        ValueError: Shape mismatch or bad threshold.
    """
    _check_threshold(threshold)
    heatmaps, masks = _pair(heatmaps, masks, batched=True)
    n = len(heatmaps)
    ious, hits, energy, chance = (np.full(n, np.nan) for _ in range(4))
    for start in range(0, n, CHUNK):
        h = np.asarray(heatmaps[start:start + CHUNK], dtype=np.float64)
        h = np.nan_to_num(h.reshape(len(h), -1), nan=0.0, posinf=0.0, neginf=0.0)
        mass = np.clip(h, 0.0, None)
        m = np.asarray(masks[start:start + CHUNK]).reshape(len(h), -1) > 0
        peak = h.max(axis=1, initial=0.0)
        on = (h >= threshold * peak[:, None]) & (peak[:, None] > 0)
        inter = (on & m).sum(axis=1)
        union = (on | m).sum(axis=1)
        has_mask = m.any(axis=1)
        at_peak = m[np.arange(len(h)), np.argmax(h, axis=1)] & (peak > 0)
        sl = slice(start, start + len(h))
        ious[sl] = np.where(has_mask, inter / np.maximum(union, 1), np.nan)
        hits[sl] = np.where(has_mask, at_peak.astype(np.float64), np.nan)
        total = mass.sum(axis=1)
        inside = np.where(m, mass, 0.0).sum(axis=1)
        energy[sl] = np.where(has_mask, inside / np.where(total > 0, total, 1.0), np.nan)
        chance[sl] = np.where(has_mask, m.mean(axis=1), np.nan)
    return LocalizationScores(iou=ious, hit=hits, energy=energy, chance=chance)


def localization_metrics(scores: LocalizationScores, patients: Sequence[str], *, n_boot: int = 1000,
                         seed: int = 0, level: float = 0.95, threshold: float | None = None,
                         ) -> dict[str, float | int | str | None]:
    """Mean IoU and pointing-game hit rate over the scored cases, with patient-level bootstrap CIs.

    Args:
        scores: From :func:`localization_scores` (pass only the cases to summarise, e.g. the
            positive test cases with masks; cases with empty masks are ignored).
        patients: ``(N,)`` patient pseudonym of each case.
        n_boot, seed, level: See :func:`pipeline.evaluate.bootstrap.bootstrap`.
        threshold: Recorded as ``iou_threshold`` when given.

    Returns:
        Flat keys for the ``test`` section of the metrics file: ``iou``, ``iou_ci_low``,
        ``iou_ci_high``, ``pointing_game`` (+ CI), ``energy_in_mask`` (+ CI) and its chance
        level ``energy_chance`` (when the scores carry them; then also ``pointing_game_chance``,
        the same mean mask share, without CI), ``<name>_ci_method`` for each interval
        (``"bootstrap"`` or ``"clopper-pearson"``), ``n_localized``, ``n_localized_patients``,
        ``localization_valid_resamples``; values are NaN (None in JSON) when no case is scored.
    """
    keep = scores.scored
    if len(patients) != len(keep):
        raise ValueError(f"patients must have one entry per case ({len(keep)}). "
                         f"Received: {len(patients)}")
    with_energy = scores.energy is not None and scores.chance is not None
    columns = [np.ones(int(keep.sum())), scores.iou[keep], scores.hit[keep]]
    if with_energy:
        columns += [scores.energy[keep], scores.chance[keep]]
    values = np.column_stack(columns)
    kept_patients = [p for p, k in zip(patients, keep, strict=True) if k]

    def stat(weights: np.ndarray) -> dict[str, np.ndarray]:
        sums = weights @ values
        count = sums[:, 0]
        safe = np.where(count > 0, count, 1.0)
        names = ("iou", "pointing_game", "energy_in_mask", "energy_chance")[:values.shape[1] - 1]
        return {name: np.where(count > 0, sums[:, i + 1] / safe, np.nan) for i, name in enumerate(names)}

    est = bootstrap(stat, kept_patients, n_boot=n_boot, seed=seed, level=level)
    n_scored = int(keep.sum())
    hits = float(np.nansum(scores.hit[keep]))
    est["pointing_game"] = exact_if_degenerate(est["pointing_game"], hits, n_scored, level=level)
    out: dict[str, float | int | str | None] = {}
    for name, e in est.items():
        out.update({name: e.value, f"{name}_ci_low": e.low, f"{name}_ci_high": e.high,
                    f"{name}_ci_method": e.method})
    if "energy_chance" in est:
        out["pointing_game_chance"] = est["energy_chance"].value
    out["localization_valid_resamples"] = est["iou"].n_valid
    out["n_localized"] = n_scored
    out["n_localized_patients"] = len(set(kept_patients))
    if threshold is not None:
        out["iou_threshold"] = threshold
    return out


def _check_threshold(threshold: float) -> None:
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"map threshold must be a fraction of the map's maximum in (0, 1]. "
                         f"Received: {threshold!r}")
