"""The heatmap (localization) measures on the report's index: pointing game, heat share in
lesions, IoU and the deletion check, kept apart from the accuracy measures of
:mod:`pipeline.report.tables`.

:func:`localization_rows` gives each measure present with its CI and its chance level
(:func:`chance_level`, from :data:`CHANCE`), and :func:`localization_warnings` says in plain words
when the heatmaps are poor (:data:`POOR_BELOW`, or a CI that reaches down to chance).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pipeline.report.tables import (
    LOCALIZATION_KEYS,
    MetricRow,
    ci_text,
    format_number,
    is_number,
    metric_rows,
)

#: Chance level of each heatmap measure: a metrics key holding it, a fixed number, or None when
#: no chance level is defined (IoU).
CHANCE: dict[str, str | float | None] = {
    "pointing_game": "pointing_game_chance", "pointing_game_hit_rate": "pointing_game_chance",
    "energy_in_mask": "energy_chance", "iou": None, "deletion_win_rate": 0.5,
}
#: Below these values a heatmap measure reads as poor (the peak misses the lesion in most
#: cases; most of the heat lies outside it; IoU under the usual 0.5 bar for a correct box).
POOR_BELOW = {"pointing_game": 0.5, "energy_in_mask": 0.5, "iou": 0.5}


def localization_rows(metrics: Mapping[str, Any]) -> list[MetricRow]:
    """The heatmap measures present in ``metrics``, in :data:`LOCALIZATION_KEYS` order, each
    with its CI and its chance level ("not defined" for IoU, "" when the level is not known)."""
    keys = [k for k in LOCALIZATION_KEYS if is_number(metrics.get(k))]
    return [dataclasses.replace(row, chance=_chance_text(metrics, row.key))
            for row in metric_rows(metrics, keys)]


def chance_level(metrics: Mapping[str, Any], key: str) -> float | None:
    """The chance level of heatmap measure ``key`` (see :data:`CHANCE`), or None if unknown."""
    spec = CHANCE.get(key)
    if isinstance(spec, str):
        value = metrics.get(spec)
        if spec == "pointing_game_chance" and not is_number(value):
            value = metrics.get("energy_chance")  # the same mean lesion share
        return float(value) if is_number(value) and math.isfinite(value) else None
    return None if spec is None else float(spec)


def _chance_text(metrics: Mapping[str, Any], key: str) -> str:
    if key in CHANCE and CHANCE[key] is None:
        return "not defined"
    level = chance_level(metrics, key)
    return "" if level is None else format_number(level)


def localization_warnings(metrics: Mapping[str, Any]) -> list[str]:
    """Plain-language warnings for poor heatmap measures (empty when none is poor).

    Poor: a pointing game or heat share below 0.5 (:data:`POOR_BELOW`) or whose CI reaches down
    to chance, an IoU below 0.5, or a failed deletion check (``deletion_flag``).
    """
    out = []
    pg = _finite(metrics, "pointing_game")
    if pg is not None and _poor(metrics, "pointing_game", pg):
        chance = chance_level(metrics, "pointing_game")
        vs = f" vs {_level(chance)} by chance" if chance is not None else ""
        if _at_chance(metrics, "pointing_game", chance):
            ci = ci_text(metrics, "pointing_game")
            vs = (f", 95% CI {ci}," if ci else "") + vs
            lead = ("The heatmaps point at the lesion no more often than chance"
                    if chance is not None and pg <= chance
                    else "The heatmaps do not point at the lesion reliably more often than chance")
        else:
            lead = f"The heatmaps' peak falls inside the lesion in only {_percent(pg)} of cases"
        out.append(f"{lead} (pointing game {_level(pg)}{vs}): do not use them to locate findings.")
    share = _finite(metrics, "energy_in_mask")
    if share is not None and _poor(metrics, "energy_in_mask", share):
        chance = chance_level(metrics, "energy_in_mask")
        vs = f" vs {_percent(chance)} for a map blind to the lesions" if chance is not None else ""
        if _at_chance(metrics, "energy_in_mask", chance):
            lead = "The heatmaps do not put reliably more of their weight on the lesions than chance"
        else:
            lead = "Most of each heatmap lies outside the annotated lesions"
        out.append(f"{lead} ({_percent(share)} inside{vs}).")
    overlap = _finite(metrics, "iou")
    if overlap is not None and overlap < POOR_BELOW["iou"]:
        out.append(f"The highlighted regions overlap the annotated lesions poorly (IoU {overlap:.2f}; "
                   "0.5 is the usual bar for a correct localization, 1 is identical).")
    if metrics.get("deletion_flag") is True:
        win = _finite(metrics, "deletion_win_rate")
        won = f" (it did better on {win:.0%} of images; 50% is chance)" if win is not None else ""
        out.append("Warning: the heatmaps did not pass the deletion check: masking the regions they "
                   f"highlight lowered the score no more than masking random regions{won}. Treat the "
                   "heatmaps as unreliable for this model.")
    return out


def _level(value: float) -> str:
    """A share as a number: 2 decimals, 2 significant digits below 0.01 (0.42, 0.0021)."""
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"


def _percent(value: float) -> str:
    """A share in percent: whole numbers from 10%, one decimal below (42%, 9.2%, 0.2%)."""
    pct = 100.0 * value
    return f"{pct:.0f}%" if pct == 0 or abs(pct) >= 10 else f"{pct:.1f}%" if abs(pct) >= 0.1 \
        else f"{pct:.2f}%"


def _finite(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if is_number(value) and math.isfinite(value) else None


def _poor(metrics: Mapping[str, Any], key: str, value: float) -> bool:
    return value < POOR_BELOW[key] or _at_chance(metrics, key, chance_level(metrics, key))


def _at_chance(metrics: Mapping[str, Any], key: str, chance: float | None) -> bool:
    """The measure's CI reaches down to its chance level (or its value is at or below it)."""
    if chance is None:
        return False
    low, value = _finite(metrics, f"{key}_ci_low"), _finite(metrics, key)
    return (low is not None and low <= chance) or (value is not None and value <= chance)
