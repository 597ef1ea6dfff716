"""From probabilities to predicted labels: the operating point of a task.

- binary: positive (labels[1]) when ``P(labels[1]) >= threshold``, the threshold chosen on val.
- multiclass: the most probable label (argmax); the threshold rule does not apply.
- multilabel: each label present when its probability >= its own threshold, each chosen on val
  with the same rule.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluate.predictions import MULTILABEL_SEP, Problem, check_problem
from pipeline.evaluate.threshold import (
    ThresholdRule,
    UndefinedThresholdError,
    choose_threshold,
    parse_threshold_rule,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatingPoint:
    """How predictions are made for one task.

    Attributes:
        problem: ``binary``, ``multiclass`` or ``multilabel``.
        rule: Canonical rule string (``argmax`` for multiclass).
        thresholds: ``(t,)`` for binary (on P(labels[1])), one per label for multilabel,
            ``()`` for multiclass.
        fallback: Indices of outputs whose rule was undefined on val and got the fallback value.
    """

    problem: Problem
    rule: str
    thresholds: tuple[float, ...] = ()
    fallback: tuple[int, ...] = ()

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """``(N, K)`` probabilities -> ``(N, K)`` boolean predictions (one-hot unless multilabel)."""
        probs = np.asarray(probs, dtype=np.float64)
        if self.problem == "multilabel":
            return probs >= np.asarray(self.thresholds)[None, :]
        if self.problem == "binary":
            positive = probs[:, 1] >= self.thresholds[0]
            return np.stack([~positive, positive], axis=1)
        out = np.zeros(probs.shape, dtype=bool)
        out[np.arange(len(probs)), np.argmax(probs, axis=1)] = True
        return out

    def predicted_labels(self, probs: np.ndarray, label_names: Sequence[str]) -> list[str]:
        """Predicted label strings (multi-label: present names joined by ``|``)."""
        pred = self.predict(probs)
        return [MULTILABEL_SEP.join(n for n, on in zip(label_names, row, strict=True) if on)
                for row in pred]

    def decide(self, probs: np.ndarray, label_names: Sequence[str]) -> tuple[str, float]:
        """One case: ``(predicted label, probability shown)``. The probability shown is
        ``P(labels[1])`` for binary tasks and the largest output otherwise."""
        probs = np.asarray(probs, dtype=np.float64)
        predicted = self.predicted_labels(probs[None, :], label_names)[0]
        shown = probs[1] if self.problem == "binary" else probs.max()
        return predicted, float(shown)

    @property
    def binary_threshold(self) -> float | None:
        """The threshold on ``P(labels[1])`` of a binary task, else None."""
        return self.thresholds[0] if self.problem == "binary" else None

    @classmethod
    def from_json(cls, problem: Problem, label_names: Sequence[str],
                  section: Any) -> OperatingPoint:
        """The operating point recorded by :meth:`to_json` (the ``threshold`` section of
        ``metrics/<task>.json``). Labels without a recorded threshold, or a missing section,
        get 0.5 with a warning: the caller should say so to its reader."""
        check_problem(problem)
        section = section if isinstance(section, dict) else {}
        if problem == "multiclass":
            return cls(problem, "argmax")
        rule = str(section.get("rule", "0.5"))
        value = section.get("value")
        if problem == "binary":
            values = [value] if value is not None and not isinstance(value, dict) else [None]
        else:
            recorded = value if isinstance(value, dict) else {}
            values = [recorded.get(n) for n in label_names]
        missing = tuple(i for i, v in enumerate(values) if v is None)
        if missing:
            names = [label_names[1] if problem == "binary" else label_names[i] for i in missing]
            log.warning("no recorded threshold for %s; using 0.5", ", ".join(names))
        thresholds = tuple(0.5 if v is None else float(v) for v in values)
        for t in thresholds:
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold must be in [0, 1]. Received: {t}")
        return cls(problem, rule, thresholds, missing)

    def to_json(self, label_names: Sequence[str]) -> dict[str, Any]:
        """The ``threshold`` section of the metrics file."""
        out: dict[str, Any] = {"rule": self.rule}
        if self.problem == "binary":
            out["value"] = round(self.thresholds[0], 6)
            out["positive_label"] = label_names[1]
        elif self.problem == "multilabel":
            out["value"] = {n: round(t, 6) for n, t in zip(label_names, self.thresholds, strict=True)}
        if self.fallback:
            out["fallback"] = [label_names[1] if self.problem == "binary" else label_names[i]
                               for i in self.fallback]
        return out


def choose_operating_point(problem: Problem, targets: np.ndarray, probs: np.ndarray,
                           rule: str | float | ThresholdRule, *, fallback: float | None = 0.5,
                           ) -> OperatingPoint:
    """Choose the operating point on **validation** data.

    Args:
        problem: Task problem type.
        targets: ``(N, K)`` boolean true labels of the validation samples.
        probs: ``(N, K)`` validation probabilities.
        rule: The ``threshold`` param (see :mod:`pipeline.evaluate.threshold`).
        fallback: Threshold used (with a warning, and listed in ``fallback``) where the rule is
            undefined on val, e.g. a label without validation positives. None = raise instead.

    Raises:
        ValueError: Bad rule or problem.
        UndefinedThresholdError: The rule is undefined on val and ``fallback`` is None.
    """
    check_problem(problem)
    parsed = parse_threshold_rule(rule)
    if problem == "multiclass":
        return OperatingPoint(problem, "argmax")
    columns = [1] if problem == "binary" else list(range(targets.shape[1]))
    thresholds, fell_back = [], []
    for k in columns:
        try:
            thresholds.append(choose_threshold(targets[:, k], probs[:, k], parsed))
        except UndefinedThresholdError as exc:
            if fallback is None:
                raise
            log.warning("%s; using threshold %s for output %d", exc, fallback, k)
            thresholds.append(float(fallback))
            fell_back.append(k)
    return OperatingPoint(problem, str(parsed), tuple(thresholds), tuple(fell_back))
