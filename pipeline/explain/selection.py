"""Choose the explanation method and target layer of a task on evidence (``explain.methods: auto``,
``explain.layer: auto``), on the **validation** split, never on test.

Candidates: every method of ``methods`` at every layer of ``layers`` (``layercam-fusion`` once:
it fuses several layers itself, centred on the middle candidate; ``gradcam-layercam`` reuses the
Grad-CAM and LayerCAM maps already computed for the candidates). Each candidate's maps of the
validation cases of the explained class are scored by

1. **faithfulness**: the deletion test (:func:`pipeline.explain.faithfulness.deletion_test`):
   does masking the map's top pixels lower the probability more than random masks of the same
   area? A candidate passes when it is not flagged (mean drop above random and wins on more than
   half of the images);
2. **localization**, where lesion masks exist (at least :data:`MIN_MASKED` cases): the pointing
   game (the map's peak inside the lesion) and the IoU of the map's top region with the lesion.

Rule: among the candidates that pass (1) — all of them if none passes, which the choice then
says — the best by (2); without masks the one whose deletion drop exceeds random the most.
Localization weighs both measures with a one-standard-error rule (:func:`choose`): the
candidates whose pointing game lies within one binomial standard error of the best one
(``sqrt(p (1 - p) / n)`` over the ``n`` masked cases) are indistinguishable on a validation split
of tens of cases, and among them the highest IoU wins (then the pointing game, then the deletion
drop). A map that points at the lesion and also outlines it is preferred to one that only
points, but never at the cost of a clearly worse pointing game.
Faithfulness first, because a map that lands on the lesion but does not explain the model would
tell a clinician something the model did not do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.config import EXPLAIN_AUTO_METHODS as AUTO_METHODS  # Score-CAM left out: too slow

__all__ = ["AUTO_METHODS", "Choice", "candidate_layers", "choose", "select"]

log = logging.getLogger(__name__)
#: Masked validation cases needed before localization takes part in the choice.
MIN_MASKED = 5
#: Candidate layers for ``layer: auto``: the last layer of each of this many coarsest feature
#: resolutions that have at least 2 cells per axis. Four, not three: on the demo CT (32x64x64,
#: 3D ResNet-18) the 16^3 conv2 map localizes nodules that the 8^3 and coarser maps cannot
#: (test pointing game 0.50 vs <= 0.21 with flip_shift averaging), and on real ultrasound lesions
#: the finer grids also pointed better (0.30 at conv2 vs 0.04 at conv5).
AUTO_LAYERS = 4


@dataclass(frozen=True)
class Choice:
    """The chosen method and layer and the evidence for every candidate."""

    method: str
    layer: str
    rule: str
    candidates: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    n_cases: int = 0
    n_masked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "layer": self.layer, "rule": self.rule, "split": "val",
                "n_cases": self.n_cases, "n_masked": self.n_masked, "candidates": list(self.candidates)}


def candidate_layers(model: Any, *, n: int = AUTO_LAYERS) -> tuple[str, ...]:
    """The last layer of each of the ``n`` coarsest feature resolutions with >= 2 cells per axis,
    fine to coarse (e.g. ResNet-18 at 128 px: the 32x32, 16x16, 8x8 and 4x4 block outputs)."""
    from pipeline.explain.cam_rules import resolution_groups
    from pipeline.explain.view import explanation_model
    from pipeline.models.ensemble import ensemble_members

    members = ensemble_members(model)
    view = explanation_model(members[0] if members else model)  # an ensemble: a member's layers
    last_of = resolution_groups(view)  # fine to coarse
    groups = [g for g in last_of if min(g) >= 2] or list(last_of)[:1]  # tiny inputs: the finest
    return tuple(last_of[g] for g in groups[-n:])


def select(model: Any, images: np.ndarray, masks: np.ndarray | None, *, methods: Sequence[str],
           layers: Sequence[str], fraction: float, n_random: int, seed: int, batch_size: int,
           fill: str = "mean", backbone: str | None = None, tta: str = "none") -> Choice:
    """Score every (method, layer) candidate on ``images`` and choose one (module docstring).

    Args:
        model: The trained classifier (or a k-fold ensemble).
        images: float32 validation inputs of the explained class, ``(N, *spatial, C)``.
        masks: Their lesion masks ``(N, *spatial[, 1])`` or None.
        methods: Candidate methods (:data:`pipeline.explain.cam_rules.METHODS`).
        layers: Candidate layer names or rules (``auto:N``).
        fraction, n_random, seed, batch_size, fill: The deletion test's settings.
        backbone: Model-card backbone, for ``auto`` layer rules.
        tta: Views every candidate's maps are averaged over (:mod:`pipeline.explain.averaged`):
            candidates are scored as they would be reported.

    Raises:
        ValueError: No image, or no candidate.
    """
    if not len(images):
        raise ValueError("no validation case of the explained class to choose the explanation on")
    pairs = _candidates(methods, layers)
    masked = 0 if masks is None else int(np.asarray(masks).reshape(len(images), -1).any(axis=1).sum())
    maps = _CandidateMaps(model, images, pairs, backbone=backbone, batch_size=batch_size, tta=tta)
    score = {"fraction": fraction, "n_random": n_random, "seed": seed, "batch_size": batch_size,
             "fill": fill}
    # layer by layer (blends last), so that shared maps wait for at most one layer's candidates;
    # the rows keep the candidates' order
    order = sorted(range(len(pairs)), key=lambda i: (pairs[i][0] == "gradcam-layercam",
                                                     layers.index(pairs[i][1]), i))
    rows: list[dict[str, Any]] = [{} for _ in pairs]
    for i in order:
        method, layer = pairs[i]
        rows[i] = _score(model, images, masks, maps.of(method, layer), method=method,
                         layer=maps.explainer(layer).layer, **score)
    best, rule = choose(rows, n_masked=masked if masked >= MIN_MASKED else 0)
    for r in rows:
        r["chosen"] = r is best
    return Choice(best["method"], best["layer"], rule, tuple(rows), len(images), masked)


def _candidates(methods: Sequence[str], layers: Sequence[str]) -> list[tuple[str, str]]:
    """(method, layer) pairs: every method at every layer, ``layercam-fusion`` once at the
    middle layer, ``gradcam-layercam`` last (it reuses the maps of the candidates before it)."""
    pairs = [(m, layer) for m in methods if m != "layercam-fusion" for layer in layers]
    if "layercam-fusion" in methods:
        pairs.append(("layercam-fusion", layers[len(layers) // 2]))
    if not pairs:
        raise ValueError(f"no candidate explanation: methods={list(methods)}, layers={list(layers)}")
    pairs.sort(key=lambda pair: pair[0] == "gradcam-layercam")
    return pairs


class _CandidateMaps:
    """The candidates' maps, each computed once: one :class:`~pipeline.explain.gradcam.Explainer`
    per layer, the methods of one gradient pass at a layer computed together when the layer is
    first used, and Grad-CAM and LayerCAM maps kept for ``gradcam-layercam``'s blend."""

    def __init__(self, model: Any, images: np.ndarray, pairs: Sequence[tuple[str, str]], *,
                 backbone: str | None, batch_size: int, tta: str) -> None:
        self.model, self.images, self.pairs, self.backbone = model, images, pairs, backbone
        self.batch_size, self.tta = batch_size, tta
        self.explainers: dict[str, Any] = {}
        self.reusable: dict[tuple[str, str], np.ndarray] = {}  # (method, layer) -> maps, for blends
        self.shared: dict[tuple[str, str], np.ndarray] = {}  # from another method's pass, not used yet

    def explainer(self, layer: str) -> Any:
        if layer not in self.explainers:
            from pipeline.explain.gradcam import Explainer

            self.explainers[layer] = explainer = Explainer(self.model, layer=layer, backbone=self.backbone)
            self._share_pass(layer, explainer)
        return self.explainers[layer]

    def of(self, method: str, layer: str) -> np.ndarray:
        """The maps of candidate ``(method, layer)``."""
        explainer = self.explainer(layer)
        if method == "gradcam-layercam":
            from pipeline.explain.cam_rules import blend

            return blend(self._maps("gradcam", explainer), self._maps("layercam", explainer.finer))
        return self._maps(method, explainer)

    def _maps(self, method: str, explainer: Any) -> np.ndarray:
        key = (method, explainer.layer)
        if key not in self.reusable:
            maps = self.shared.pop(key) if key in self.shared else explainer.maps(
                self.images, method=method, batch_size=self.batch_size, tta=self.tta)
            if method not in ("gradcam", "layercam"):
                return maps
            self.reusable[key] = maps
        return self.reusable[key]

    def _share_pass(self, layer: str, explainer: Any) -> None:
        """The candidates at ``layer`` whose maps one gradient pass gives, computed together."""
        group = tuple(m for m, at in self.pairs if at == layer and explainer.shares_pass(m)
                      and (m, explainer.layer) not in self.reusable)
        if len(group) > 1:
            maps = explainer.shared_maps(self.images, group, batch_size=self.batch_size, tta=self.tta)
            self.shared.update({(m, explainer.layer): v for m, v in maps.items()})


def _score(model: Any, images: np.ndarray, masks: np.ndarray | None, maps: np.ndarray, *, method: str,
           layer: str, fraction: float, n_random: int, seed: int, batch_size: int,
           fill: str) -> dict[str, Any]:
    """One candidate's row: its deletion test and, with masks, its localization."""
    from pipeline.evaluate.localization import localization_scores
    from pipeline.explain.faithfulness import deletion_test

    deletion = deletion_test(model, images, maps, fraction=fraction, n_random=n_random, seed=seed,
                             batch_size=batch_size, fill=fill).summary(scored_on="predicted")
    row: dict[str, Any] = {"method": method, "layer": layer,
                           "deletion_difference": round(float(deletion["difference"]), 6),
                           "deletion_win_rate": round(float(deletion["win_rate"]), 4),
                           "deletion_flag": bool(deletion["flag"]), "fill": deletion["fill"]}
    if masks is not None:
        scores = localization_scores(maps, masks)
        row.update(pointing_game=_mean(scores.hit), iou=_mean(scores.iou),
                   energy=_mean(scores.energy), chance=_mean(scores.chance))
    located = f", pointing {row['pointing_game']}, IoU {row['iou']}" if masks is not None else ""
    log.info("explain candidate %s @ %s: deletion %+.3f (win %.2f%s)%s", method, layer,
             row["deletion_difference"], row["deletion_win_rate"],
             ", FLAG" if row["deletion_flag"] else "", located)
    return row


def choose(rows: Sequence[dict[str, Any]], *, n_masked: int) -> tuple[dict[str, Any], str]:
    """The chosen candidate row and the rule's wording (module docstring).

    Args:
        rows: Candidate records with ``deletion_flag`` and ``deletion_difference``, and, when
            ``n_masked`` > 0, ``pointing_game`` and ``iou`` (None where not scored).
        n_masked: Masked validation cases the localization was scored on; 0 = no localization.

    Raises:
        ValueError: No candidate.
    """
    if not rows:
        raise ValueError("no candidate explanation to choose from")
    passing = [r for r in rows if not r["deletion_flag"]]
    pool = passing or list(rows)
    if n_masked > 0:
        top = max(_key(r["pointing_game"]) for r in pool)
        margin = float(np.sqrt(max(top, 0.0) * (1.0 - max(top, 0.0)) / n_masked))
        near = [r for r in pool if _key(r["pointing_game"]) >= top - margin - 1e-9]
        best = max(near, key=lambda r: (_key(r["iou"]), _key(r["pointing_game"]), r["deletion_difference"]))
        rule = (f"highest IoU among the candidates within one standard error ({margin:.2f}) of the "
                f"best pointing game ({top:.2f}) on validation")
    else:
        best = max(pool, key=lambda r: r["deletion_difference"])
        rule = "largest deletion drop over random on validation (no lesion masks)"
    rule = (f"{rule}, among the candidates that pass the deletion check" if passing
            else f"{rule}; no candidate passed the deletion check")
    return best, rule


def _mean(values: np.ndarray) -> float | None:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    return round(float(finite.mean()), 4) if finite.size else None


def _key(value: float | None) -> float:
    return -1.0 if value is None else value
