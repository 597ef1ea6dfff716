"""Parsers of params values that have their own small syntax, shared by :mod:`pipeline.config`
and the libraries: threshold rules (``youden``, ``sensitivity@0.95``...), test-time
augmentation modes and ``auto:N`` target layers.

This module imports only the standard library: :mod:`pipeline.config` sits at the bottom of
the package and validates params with these functions without importing evaluate or explain
(and their NumPy/TensorFlow imports). The libraries re-export the names where they are used
(:mod:`pipeline.evaluate.threshold`, :mod:`pipeline.evaluate.tta`,
:mod:`pipeline.models.target_layer`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

# -- threshold rules (tasks.<t>.evaluate.threshold) ------------------------------------------

RuleKind = Literal["youden", "f1", "sensitivity", "specificity", "fixed"]
RULE_FORMS = ("youden", "f1", "sensitivity@<x>", "specificity@<x>", "<number in (0, 1)>")
_TARGET_RE = re.compile(r"(sensitivity|specificity)@([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")


@dataclass(frozen=True)
class ThresholdRule:
    """A parsed threshold rule. ``target`` is x for ``sensitivity@x``/``specificity@x``, the
    threshold itself for ``fixed``, else None."""

    kind: RuleKind
    target: float | None = None

    def __str__(self) -> str:
        if self.kind in ("youden", "f1"):
            return self.kind
        if self.kind == "fixed":
            return repr(self.target)
        return f"{self.kind}@{self.target!r}"

    @property
    def needs(self) -> tuple[str, ...]:
        """Which classes the validation data must contain for the rule to be defined."""
        return {"youden": ("positive", "negative"), "f1": ("positive",),
                "sensitivity": ("positive",), "specificity": ("negative",), "fixed": ()}[self.kind]


def parse_threshold_rule(value: object) -> ThresholdRule:
    """Validate and parse the ``threshold`` param (the config validator calls this).

    Args:
        value: ``"youden"``, ``"f1"``, ``"sensitivity@0.95"``, ``"specificity@0.9"``, a number in
            (0, 1) (or such a number as a string), or an already parsed :class:`ThresholdRule`.

    Raises:
        ValueError: Anything else; the message lists the allowed forms.
    """
    if isinstance(value, ThresholdRule):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0.0 < float(value) < 1.0:
            return ThresholdRule("fixed", float(value))
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("youden", "f1"):
            return ThresholdRule(text)  # type: ignore[arg-type]
        match = _TARGET_RE.fullmatch(text)
        if match and 0.0 < float(match.group(2)) <= 1.0:
            return ThresholdRule(match.group(1), float(match.group(2)))  # type: ignore[arg-type]
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and 0.0 < number < 1.0:
            return ThresholdRule("fixed", number)
    raise ValueError(f"threshold must be one of {list(RULE_FORMS)} (x in (0, 1]). Received: {value!r}")


def validate_threshold_rule(value: object) -> str | float:
    """Check a ``threshold`` param and return it normalised (a float for numbers, else the
    canonical lower-case string). For a pydantic ``field_validator``.

    Raises:
        ValueError: Not a valid rule (see :func:`parse_threshold_rule`).
    """
    rule = parse_threshold_rule(value)
    return float(rule.target) if rule.kind == "fixed" else str(rule)  # type: ignore[arg-type]


# -- test-time augmentation modes (tasks.<t>.evaluate.tta) -----------------------------------

TTAMode = Literal["none", "flip", "shift", "flip_shift"]
TTA_MODES: tuple[str, ...] = get_args(TTAMode)


def check_tta_mode(mode: object) -> str:
    """Return ``mode`` if it is one of :data:`TTA_MODES`.

    Raises:
        ValueError: Unknown mode (the message lists the valid ones).
    """
    if not isinstance(mode, str) or mode not in TTA_MODES:
        raise ValueError(f"tta must be one of {list(TTA_MODES)}. Received: {mode!r}")
    return mode


# -- target layers (tasks.<t>.explain.layer) -------------------------------------------------

AUTO = "auto"


def parse_min_cells(layer: str) -> int | None:
    """``N`` of an ``"auto:N"`` layer setting, None for anything else.

    Raises:
        ValueError: ``"auto:"`` followed by something other than a positive integer.
    """
    if not layer.startswith(AUTO + ":"):
        return None
    text = layer[len(AUTO) + 1:]
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"layer 'auto:N' needs a positive integer N (cells per spatial axis of the "
                         f"feature map); otherwise use 'auto' or a layer name. Received: layer={layer!r}")
    return int(text)
