"""Recalibration for one site, measured for comparison only (``tasks.<t>.evaluate.recalibration``).

At a new site (another scanner, another prevalence) a locked model often keeps its ranking while
its probabilities drift: calibration-in-the-large and the reliability diagram move, AUROC does
not. A site may then refit the probability scale on a labelled slice of its own cases before it
uses the model (logistic recalibration; Steyerberg, *Clinical Prediction Models*, ch. 20). This
module measures what that would give, without touching the locked result:

- the cohort's patients are split, seeded and stratified by whether a patient has a positive
  finding, into a **fitting** slice (``recalibration_share`` of them) and a **held-out** rest;
- ``temperature`` (Guo et al., ICML 2017): one scale ``T`` on the logits, ``sigmoid(z / T)``
  per label, or ``softmax(log p / T)`` for multi-class; ``platt`` (Platt 1999): per label
  ``sigmoid(a z + b)`` with ``a > 0``, which also moves calibration-in-the-large;
- fitted by maximum likelihood on the fitting slice and measured on the held-out rest: ECE,
  Brier and calibration-in-the-large of the locked and the recalibrated probabilities, with
  paired patient-level bootstrap intervals of the change.

Both maps are increasing, so ranking (AUROC) and decisions do not change when the locked
threshold is carried through the same map (``threshold_on_recalibrated_scale``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Method = Literal["temperature", "platt"]
#: Probabilities are clipped to [EPS, 1 - EPS] before taking logits (a saturated 0 or 1).
EPS = 1e-7
#: Bounds of the fitted parameters: log T, Platt's slope a (> 0: never reverses the ranking)
#: and intercept b.
LOG_T_BOUNDS = (-5.0, 5.0)
SLOPE_BOUNDS = (1e-3, 1e3)
INTERCEPT_BOUNDS = (-50.0, 50.0)


@dataclass(frozen=True)
class Recalibration:
    """A fitted probability map of one task's outputs.

    Attributes:
        method: ``temperature`` or ``platt``.
        problem: ``binary``, ``multiclass`` or ``multilabel``.
        temperature: ``T`` (temperature scaling), else None.
        slopes, intercepts: Platt's ``a`` and ``b`` per recalibrated column (binary: the
            positive class only), else empty.
    """

    method: Method
    problem: str
    temperature: float | None = None
    slopes: tuple[float, ...] = ()
    intercepts: tuple[float, ...] = ()

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """``(N, K)`` locked probabilities -> the recalibrated ones (rows of a binary or
        multi-class task still sum to 1)."""
        probs = np.asarray(probs, np.float64)
        if self.problem == "multiclass":
            logits = np.log(np.clip(probs, EPS, 1.0)) / float(self.temperature)
            logits -= logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            return e / e.sum(axis=1, keepdims=True)
        columns = [1] if self.problem == "binary" else list(range(probs.shape[1]))
        z = _logit(probs[:, columns])
        if self.method == "temperature":
            z = z / float(self.temperature)
        else:
            z = z * np.asarray(self.slopes)[None, :] + np.asarray(self.intercepts)[None, :]
        out = probs.copy()
        out[:, columns] = _sigmoid(z)
        if self.problem == "binary":
            out[:, 0] = 1.0 - out[:, 1]
        return out

    def threshold(self, value: float, column: int = 0) -> float:
        """A locked threshold carried to the recalibrated scale (the same decisions)."""
        z = float(_logit(np.asarray([value]))[0])
        if self.method == "temperature":
            z /= float(self.temperature)
        else:
            z = z * self.slopes[column] + self.intercepts[column]
        return float(_sigmoid(np.asarray([z]))[0])

    def parameters(self, label_names: Sequence[str]) -> dict[str, Any]:
        """The fitted values, JSON-ready (Platt's per label)."""
        if self.method == "temperature":
            return {"temperature": round(float(self.temperature), 6)}
        names = [label_names[1]] if self.problem == "binary" else list(label_names)
        return {"slope": {n: round(a, 6) for n, a in zip(names, self.slopes, strict=True)},
                "intercept": {n: round(b, 6) for n, b in zip(names, self.intercepts, strict=True)}}


def fit_recalibration(method: Method, problem: str, targets: np.ndarray, probs: np.ndarray) -> Recalibration:
    """Fit ``method`` by maximum likelihood (bounded L-BFGS) on ``(N, K)`` targets and probabilities.

    Raises:
        ValueError: An unknown method, ``platt`` for a multi-class task, or no sample.
    """
    from scipy.optimize import minimize, minimize_scalar

    if method not in ("temperature", "platt"):
        raise ValueError(f"method must be 'temperature' or 'platt'. Received: {method!r}")
    if problem == "multiclass" and method == "platt":
        raise ValueError("platt recalibration is per label (binary, multi-label); use temperature "
                         "for a multi-class task")
    probs, targets = np.asarray(probs, np.float64), np.asarray(targets, np.float64)
    if not len(probs):
        raise ValueError("no sample to fit the recalibration on")
    if problem == "multiclass":
        log_p = np.log(np.clip(probs, EPS, 1.0))
        fit = minimize_scalar(lambda s: _softmax_nll(log_p / np.exp(s), targets), bounds=LOG_T_BOUNDS,
                              method="bounded")
        return Recalibration(method, problem, temperature=float(np.exp(fit.x)))
    columns = [1] if problem == "binary" else list(range(probs.shape[1]))
    z, y = _logit(probs[:, columns]), targets[:, columns]
    if method == "temperature":
        fit = minimize_scalar(lambda s: _sigmoid_nll(z / np.exp(s), y), bounds=LOG_T_BOUNDS,
                              method="bounded")
        return Recalibration(method, problem, temperature=float(np.exp(fit.x)))
    slopes, intercepts = [], []
    for k in range(z.shape[1]):
        fit = minimize(lambda ab, k=k: _sigmoid_nll(ab[0] * z[:, k] + ab[1], y[:, k]), x0=[1.0, 0.0],
                       method="L-BFGS-B", bounds=[SLOPE_BOUNDS, INTERCEPT_BOUNDS])
        slopes.append(float(fit.x[0]))
        intercepts.append(float(fit.x[1]))
    return Recalibration(method, problem, slopes=tuple(slopes), intercepts=tuple(intercepts))


def split_patients(patients: Sequence[str], positive: np.ndarray, *, share: float,
                   seed: int) -> np.ndarray:
    """``(N,)`` bool: the samples of the fitting slice (True) and of the held-out rest (False).

    Patient-level and stratified: patients with a positive sample and patients without are
    each shuffled (seeded) and ``share`` of them, rounded, go to the fitting slice, at least one
    and at most all but one of each group that has two or more.
    """
    patients = np.asarray(patients, dtype=str)
    positive = np.asarray(positive, bool)
    unique, codes = np.unique(patients, return_inverse=True)
    has_positive = np.zeros(len(unique), bool)
    np.logical_or.at(has_positive, codes, positive)
    rng = np.random.default_rng(seed)
    fitting = np.zeros(len(unique), bool)
    for group in (np.flatnonzero(has_positive), np.flatnonzero(~has_positive)):
        n = len(group)
        k = min(max(round(share * n), 1), n - 1) if n >= 2 else 0
        fitting[rng.permutation(group)[:k]] = True
    return fitting[codes]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))


def _sigmoid_nll(z: np.ndarray, y: np.ndarray) -> float:
    # -[y log s(z) + (1 - y) log(1 - s(z))] = softplus(z) - y z, computed stably
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def _softmax_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean((targets * log_softmax).sum(axis=1)))
