"""Small synthetic predictions shared by the evaluate tests."""

from __future__ import annotations

import numpy as np

from pipeline.evaluate import Predictions

NAMES = {"binary": ("normal", "opacity"), "multiclass": ("a", "b", "c"),
         "multilabel": ("effusion", "nodule", "opacity")}


def patients_for(n: int, per_patient: int = 3) -> tuple[str, ...]:
    return tuple(f"P{i // per_patient:04x}" for i in range(n))


def make_predictions(problem: str, n: int = 60, *, seed: int = 0, per_patient: int = 3,
                     split: str = "test", signal: float = 1.5) -> Predictions:
    """Informative but imperfect probabilities; samples of a patient are consecutive."""
    rng = np.random.default_rng(seed)
    names = NAMES[problem]
    k = len(names)
    if problem == "multilabel":
        y = rng.random((n, k)) < 0.4
        logits = rng.normal(size=(n, k)) + signal * (2 * y - 1)
        probs = 1 / (1 + np.exp(-logits))
        labels = ["|".join(nm for nm, on in zip(names, row, strict=True) if on) for row in y]
    else:
        cls = (rng.random(n) < 0.4).astype(int) if problem == "binary" else rng.integers(0, k, n)
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), cls] += signal
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        labels = [names[c] for c in cls]
    probs = np.round(probs, 6)
    if problem != "multilabel":
        probs[:, 0] = 1.0 - probs[:, 1:].sum(axis=1)
    return Predictions(sample_ids=tuple(f"S{i:08x}" for i in range(n)), splits=(split,) * n,
                       patients=patients_for(n, per_patient), labels=tuple(labels),
                       probs=np.clip(probs, 0, 1), label_names=names)
