"""What an export costs in accuracy: AUROC of the Keras model and of every export on a labelled
split of the ingest outputs (by default the test split), and the change each export makes.

:mod:`pipeline.export.verification` measures how far an export's probabilities are from the
Keras model's on a handful of inputs; that bounds the float32 exports, but a quantized model
(float16 weights, dynamic-range int8) can move probabilities by 1e-4..1e-3 and still rank cases
differently. What a user needs to know before deploying the int8 model is whether it separates
the classes as well, so every export is run on the whole labelled split and its AUROC is set
beside the Keras model's (``auroc_change`` = export - Keras), with the number of cases whose
decision at the operating point differs from the Keras model's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.export.verification import Runner, keras_runner, run_batches

#: ``--accuracy-split`` value that turns the measurement off.
NO_SPLIT = "none"


@dataclass(frozen=True)
class LabelledSplit:
    """The stored grids and true labels of one split.

    Attributes:
        name: The split (``test``, ``val``...).
        grids: uint8 ``(N, *grid)``, as ``images.npy`` stores them.
        targets: bool ``(N, K)`` label indicators (one-hot unless multi-label).
        problem: ``binary`` | ``multiclass`` | ``multilabel``.
        labels: The model's label names.
    """

    name: str
    grids: np.ndarray
    targets: np.ndarray
    problem: str
    labels: tuple[str, ...]


def labelled_split(data_dir: Path, split: str, *, labels: Sequence[str], problem: str) -> LabelledSplit:
    """Read the ``split`` rows of the ingest outputs in ``data_dir`` (manifest order).

    Raises:
        ValueError: No row of that split, or a label that is not one of ``labels``.
    """
    from pipeline.dataset.cases import select_cases
    from pipeline.dataset.layout import InterimLayout
    from pipeline.dataset.store import open_array
    from pipeline.evaluate.predictions import label_indicators

    cases = select_cases(data_dir, (split,))
    if len(cases) == 0:
        raise ValueError(f"{InterimLayout(data_dir).manifest}: no row of split {split!r}; choose a split "
                         f"that exists (train, val, test) or {NO_SPLIT!r}")
    images = open_array(InterimLayout(data_dir).images)
    grids = np.stack([np.asarray(images[int(i)]) for i in cases.indices])
    targets = label_indicators(cases.column("label"), labels, problem)
    return LabelledSplit(split, grids, targets, problem, tuple(labels))


def auroc(problem: str, targets: np.ndarray, outputs: np.ndarray) -> float | None:
    """AUROC of model ``outputs`` against ``targets``: the positive label's for a binary model,
    else the macro mean over the labels that have both classes in the split (one-vs-rest for
    multi-class). None when no label has both classes."""
    from sklearn.metrics import roc_auc_score

    from pipeline.evaluate.predictions import as_probability_matrix

    probs = as_probability_matrix(np.clip(outputs, 0.0, 1.0), targets.shape[1])
    columns = [1] if problem == "binary" else range(targets.shape[1])
    scores = [roc_auc_score(targets[:, k], probs[:, k]) for k in columns
              if 0 < targets[:, k].sum() < len(targets)]
    return float(np.mean(scores)) if scores else None


def accuracy_by_export(model: Any, runners: Mapping[str, Runner], split: LabelledSplit, *, point: Any,
                       batch_size: int = 8) -> dict[str, Any]:
    """Run the Keras model and every export on ``split``; the manifest's ``accuracy`` section.

    Args:
        model: The Keras classifier (fed ``float32(grid) / 255``).
        runners: Export name -> runner (uint8 grids -> probabilities).
        split: The labelled grids.
        point: The :class:`pipeline.evaluate.OperatingPoint` deciding labels.
        batch_size: Inputs per call.
    """
    from pipeline.export.verification import decisions

    reference = run_batches(keras_runner(model), split.grids, batch_size)
    keras_auroc = auroc(split.problem, split.targets, reference)
    expected = decisions(reference, point, split.labels)
    exports: dict[str, Any] = {}
    for name, run in runners.items():
        out = run_batches(run, split.grids, batch_size)
        if not np.isfinite(out).all():  # NaN/inf: no ranking, and no decision can be trusted
            exports[name] = {"auroc": None, "auroc_change": None, "decisions_changed": int(len(out))}
            continue
        value = auroc(split.problem, split.targets, out)
        changed = sum(a != b for a, b in zip(decisions(out, point, split.labels), expected, strict=True))
        exports[name] = {"auroc": _round(value),
                         "auroc_change": _round(None if value is None or keras_auroc is None
                                                else value - keras_auroc),
                         "decisions_changed": int(changed)}
    return {"split": split.name, "n_cases": int(len(split.grids)),
            "n_positive": [int(n) for n in split.targets.sum(axis=0)],
            "measure": "AUROC" if split.problem == "binary" else "macro AUROC over labels with both classes",
            "keras": {"auroc": _round(keras_auroc)}, "exports": exports}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)
