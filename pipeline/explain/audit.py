"""Shortcut audit: how much of a class activation map lies where no anatomy is.

A classifier can be right for the wrong reason: a burned-in "L", the hospital's text overlay, the
collimation edge or the air beside the patient can predict the label in one archive and nothing
in the next. The audit measures, per case and for the set, the **share of heat** (the sum of the
map inside a region over the map's total sum; the maps of :mod:`pipeline.explain.maps`, in
[0, 1], on the input grid) in three regions found from the pixels (:mod:`pipeline.explain.fov`):

- ``border``: the outer band of the field of view, ``border_fraction`` (8 %) of its height and
  width from each side (2D: inside the non-padding rectangle; 3D: in-plane, every slice);
- ``marker``: burned-in text and markers (:func:`pipeline.explain.fov.marker_mask`), grown by
  ``marker_margin`` px (default 3 % of the short side) because an upsampled map is no sharper
  than its feature grid; 2D only (``None`` for CT);
- ``outside_body``: everything but :func:`pipeline.explain.fov.body_mask`, padding included.

Regions may overlap (a letter on the black border is all three). Each share comes with its
**chance level**, the region's share of the grid: what a flat map would score. The regions and
the share and chance measures are :mod:`pipeline.explain.shortcut_regions`; this module applies
the rules below (:func:`shortcut_audit`, :func:`audit_shares`).

Case flag (per region): ``share > share_threshold`` (0.3) **and** the heat is at least
``ratio_threshold`` (2) times as dense inside the region as outside it:
``share / chance >= ratio * (1 - share) / (1 - chance)`` (an odds ratio). For small regions
(markers, chance ~0.02) this is ``share > ~2 x chance``; unlike a plain multiple of the chance
level it can still flag a large region (the air around a small patient, chance 0.6) whose heat
is mostly there. A map that is all zero (no positive evidence) scores 0 everywhere and is never
flagged; a region that is empty, or the whole grid, cannot be flagged.

Set level (per region), over the cases whose map has heat and whose region is not empty: the
mean share and the mean chance level. The **model is flagged** for a region when, among at
least ``min_cases`` (3) such cases, either the mean share passes the case rule, or at least
``case_fraction`` (25 %) of them, and at least ``min_cases``, are flagged. The summary then carries
a warning ("The model may be reading markers, not anatomy").

:func:`~pipeline.explain.shortcut_regions.restrict_to_fov` removes the heat outside a mask (e.g.
the body) and renormalises, so localization (:mod:`pipeline.evaluate.localization`) can be
reported with and without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.explain.fov import DEFAULT_HU_WINDOW, Kind, spatial_view
from pipeline.explain.shortcut_regions import (
    REGIONS,
    AuditRegions,
    audit_regions,
    chance_levels,
    heat_shares,
    positive_heat,
)

#: What the warning says the model may be reading, per flagged region.
_READING = {"marker": "markers", "border": "the image border", "outside_body": "what lies outside the body"}


def shortcut_audit(maps: np.ndarray, images: np.ndarray, kind: Kind, *,
                   indices: Sequence[int] | None = None, border_fraction: float = 0.08,
                   marker_margin: int | None = None, hu_window: Sequence[float] = DEFAULT_HU_WINDOW,
                   share_threshold: float = 0.3, ratio_threshold: float = 2.0, case_fraction: float = 0.25,
                   min_cases: int = 3) -> dict[str, Any]:
    """The audit of ``maps`` over ``images``: :func:`audit_regions`, then :func:`audit_shares`.

    Args:
        maps: float ``(N, *spatial)`` class activation maps on the images' grid.
        images: The explained inputs (see :func:`audit_regions`).
        kind: ``"2d"`` or ``"3d"``.
        indices: Case identifiers written as ``index`` (e.g. dataset rows); default ``0..N-1``.
        border_fraction, marker_margin, hu_window: See :func:`audit_regions`.
        share_threshold, ratio_threshold, case_fraction, min_cases: See :func:`audit_shares`.

    Returns:
        The JSON-able report of :func:`audit_shares`.

    Raises:
        ValueError: Shapes that differ, bad kind or parameter.
    """
    x = spatial_view(images, kind)
    if np.shape(maps) != x.shape:
        raise ValueError(f"maps must be (N, *spatial) on the images' grid {x.shape}. "
                         f"Received: maps.shape={np.shape(maps)}")
    regions = audit_regions(x, kind, border_fraction=border_fraction, marker_margin=marker_margin,
                            hu_window=hu_window)
    return audit_shares(maps, regions, indices=indices, share_threshold=share_threshold,
                        ratio_threshold=ratio_threshold, case_fraction=case_fraction, min_cases=min_cases)


def audit_shares(maps: np.ndarray, regions: AuditRegions, *, indices: Sequence[int] | None = None,
                 share_threshold: float = 0.3, ratio_threshold: float = 2.0, case_fraction: float = 0.25,
                 min_cases: int = 3) -> dict[str, Any]:
    """Heat shares, chance levels and flags per case and for the set (rules: module docstring).

    Args:
        maps: float ``(N, *spatial)`` maps on the regions' grid.
        regions: :func:`audit_regions` of the explained images.
        indices: Case identifiers written as ``index``; default ``0..N-1``.
        share_threshold: A case is flagged for a region above this share, in [0, 1) ...
        ratio_threshold: ... and heat this many times denser inside the region than outside (>= 1).
        case_fraction: The model is flagged when this share of the cases is flagged, in (0, 1].
        min_cases: ... counting at least this many cases (>= 1).

    Returns:
        ``{"cases": [...], "summary": {...}}`` of built-in types. Each case: ``index``, one share
        per region (``marker`` None in 3D), ``chance`` (region -> chance level or None), ``flags``
        (flagged region names). Summary: ``n_cases``, ``n_with_heat``, per region a dict with
        ``share``, ``chance`` (means, None without cases), ``n_cases`` (with heat and a non-empty
        region), ``n_flagged``, ``flagged_fraction``, ``flagged`` (or None for ``marker`` in 3D);
        ``n_flagged`` (cases with any flag), ``flagged_regions``, ``warning`` (str or None) and
        ``settings`` (the thresholds, band and margin used).

    Raises:
        ValueError: Shapes that differ, bad parameters or indices.
    """
    _check_rules(share_threshold, ratio_threshold, case_fraction, min_cases)
    n = len(regions.body)
    if np.shape(maps)[:1] != (n,):
        raise ValueError(f"maps and regions must hold the same cases. Received: {np.shape(maps)} and "
                         f"{regions.body.shape}")
    ids = list(range(n)) if indices is None else [int(i) for i in indices]
    if len(ids) != n:
        raise ValueError(f"indices must have one entry per map. Received: {len(ids)} for {n} maps")
    heat = positive_heat(maps)
    has_heat = heat.reshape(n, -1).sum(axis=1) > 0
    shares, chances, flags = {}, {}, {}
    for name, region in regions.masks().items():
        if region is None:
            continue
        shares[name] = heat_shares(heat, region)
        chances[name] = chance_levels(region)
        flags[name] = _high(shares[name], chances[name], share_threshold, ratio_threshold) & has_heat
    cases = [_case(i, ids[i], shares, chances, flags) for i in range(n)]
    summary: dict[str, Any] = {"n_cases": n, "n_with_heat": int(has_heat.sum())}
    flagged_regions = []
    for name in REGIONS:
        if name not in shares:
            summary[name] = None
            continue
        counted = has_heat & (chances[name] > 0)
        summary[name] = _region_summary(shares[name], chances[name], flags[name], counted,
                                        share_threshold, ratio_threshold, case_fraction, min_cases)
        if summary[name]["flagged"]:
            flagged_regions.append(name)
    summary["n_flagged"] = sum(bool(c["flags"]) for c in cases)
    summary["flagged_regions"] = flagged_regions
    summary["warning"] = _warning(flagged_regions)
    summary["settings"] = {"share_threshold": float(share_threshold),
                           "ratio_threshold": float(ratio_threshold),
                           "case_fraction": float(case_fraction), "min_cases": int(min_cases),
                           "border_fraction": regions.border_fraction,
                           "marker_margin": regions.marker_margin}
    return {"cases": cases, "summary": summary}


# --- helpers -------------------------------------------------------------------------------------

def _case(i: int, index: int, shares: dict[str, np.ndarray], chances: dict[str, np.ndarray],
          flags: dict[str, np.ndarray]) -> dict[str, Any]:
    case: dict[str, Any] = {"index": index}
    for name in REGIONS:
        case[name] = float(shares[name][i]) if name in shares else None
    case["chance"] = {name: float(chances[name][i]) if name in chances else None for name in REGIONS}
    case["flags"] = [name for name in REGIONS if name in flags and bool(flags[name][i])]
    return case


def _region_summary(shares: np.ndarray, chances: np.ndarray, flags: np.ndarray, counted: np.ndarray,
                    share_threshold: float, ratio_threshold: float, case_fraction: float,
                    min_cases: int) -> dict[str, Any]:
    n = int(counted.sum())
    n_flagged = int((flags & counted).sum())
    share = float(shares[counted].mean()) if n else None
    chance = float(chances[counted].mean()) if n else None
    fraction = n_flagged / n if n else 0.0
    high_share = n >= min_cases and bool(_high(np.array(share), np.array(chance), share_threshold,
                                               ratio_threshold))
    many_cases = n_flagged >= min_cases and fraction >= case_fraction
    return {"share": share, "chance": chance, "n_cases": n, "n_flagged": n_flagged,
            "flagged_fraction": fraction, "flagged": bool(high_share or many_cases)}


def _high(share: np.ndarray, chance: np.ndarray, share_threshold: float, ratio: float) -> np.ndarray:
    """``share > share_threshold`` and heat ``ratio`` times denser inside than outside the region."""
    return (share > share_threshold) & (share * (1.0 - chance) > ratio * chance * (1.0 - share))


def _warning(regions: Sequence[str]) -> str | None:
    if not regions:
        return None
    ordered = [_READING[name] for name in ("marker", "border", "outside_body") if name in regions]
    things = ordered[0] if len(ordered) == 1 else ", ".join(ordered[:-1]) + " and " + ordered[-1]
    return f"The model may be reading {things}, not anatomy"


def _check_rules(share_threshold: float, ratio_threshold: float, case_fraction: float,
                 min_cases: int) -> None:
    if not 0.0 <= share_threshold < 1.0:
        raise ValueError(f"share_threshold must be in [0, 1). Received: share_threshold={share_threshold!r}")
    if not ratio_threshold >= 1.0:
        raise ValueError(f"ratio_threshold must be >= 1. Received: ratio_threshold={ratio_threshold!r}")
    if not 0.0 < case_fraction <= 1.0:
        raise ValueError(f"case_fraction must be in (0, 1]. Received: case_fraction={case_fraction!r}")
    if isinstance(min_cases, bool) or not isinstance(min_cases, int | np.integer) or min_cases < 1:
        raise ValueError(f"min_cases must be an integer >= 1. Received: min_cases={min_cases!r}")
