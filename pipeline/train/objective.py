"""What is optimised: targets from the manifest, loss, class weights and metrics per problem type.

Problem types (from the task's ``labels`` and ``multilabel``):

- ``binary``: one sigmoid output, target 0/1 (the second label is the positive class).
- ``multiclass``: softmax over the labels, one-hot targets.
- ``multilabel``: one sigmoid per label, multi-hot targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def targets_from_manifest(rows: Sequence[dict[str, str]], *, problem: str, n_labels: int) -> np.ndarray:
    """Targets ``(N, n_outputs)`` float32 from manifest ``label_index`` cells."""
    n_out = 1 if problem == "binary" else n_labels
    y = np.zeros((len(rows), n_out), np.float32)
    for i, row in enumerate(rows):
        cell = str(row["label_index"])
        if problem == "binary":
            y[i, 0] = float(int(cell))
        elif problem == "multiclass":
            y[i, int(cell)] = 1.0
        else:
            for part in filter(None, cell.split("|")):
                y[i, int(part)] = 1.0
    return y


def activation_for(problem: str) -> str:
    """Output activation: softmax for multi-class, sigmoid otherwise."""
    return "softmax" if problem == "multiclass" else "sigmoid"


def make_loss(problem: str, *, class_balance: str, label_smoothing: float, focal_gamma: float) -> Any:
    """Keras loss for the problem; focal variants when ``class_balance == "focal"``."""
    import keras

    categorical = problem == "multiclass"
    if class_balance == "focal":
        if categorical:
            return keras.losses.CategoricalFocalCrossentropy(gamma=focal_gamma,
                                                             label_smoothing=label_smoothing)
        return keras.losses.BinaryFocalCrossentropy(gamma=focal_gamma, label_smoothing=label_smoothing,
                                                    apply_class_balancing=True)
    if categorical:
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)


def class_weights(y: np.ndarray, *, problem: str) -> dict[int, float]:
    """'Balanced' class weights (scikit-learn) for binary and multi-class targets.

    Raises:
        ValueError: For multi-label problems (Keras class weights need one class per sample;
            use ``class_balance: focal`` instead).
    """
    from sklearn.utils.class_weight import compute_class_weight

    if problem == "multilabel":
        raise ValueError("train.class_balance 'class_weights' is not defined for multi-label tasks; "
                         "use 'focal'. Received: class_balance='class_weights'")
    classes_of = y[:, 0].astype(int) if problem == "binary" else y.argmax(axis=1)
    n_classes = 2 if problem == "binary" else y.shape[1]
    present = np.unique(classes_of)
    weights = compute_class_weight("balanced", classes=present, y=classes_of)
    out = {int(c): 1.0 for c in range(n_classes)}
    out.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return out


#: ``class_balance: auto`` uses class weights when the training split's majority/minority class
#: count ratio exceeds this (60:40 is 1.5; the demo's 50:50 is 1.0).
AUTO_BALANCE_RATIO = 1.5


def class_ratio(y: np.ndarray, *, problem: str) -> float:
    """Majority/minority count ratio of training targets ``(N, n_outputs)`` (1.0 = balanced).

    Binary and multi-class: over the classes present. Multi-label: the largest, over labels that
    have both positives and negatives, of max(positives, negatives) / min(positives, negatives).
    """
    if problem == "multilabel":
        pos = y.sum(axis=0)
        pairs = np.stack([pos, len(y) - pos])
        pairs = pairs[:, pairs.min(axis=0) > 0]
        return float((pairs.max(axis=0) / pairs.min(axis=0)).max()) if pairs.size else 1.0
    classes_of = y[:, 0].astype(int) if problem == "binary" else y.argmax(axis=1)
    counts = np.unique(classes_of, return_counts=True)[1]
    return float(counts.max() / counts.min()) if counts.size else 1.0


def resolve_class_balance(name: str, *, ratio: float, problem: str) -> str:
    """The concrete ``class_balance`` for ``auto`` (others are returned unchanged).

    ``auto`` is ``class_weights`` when ``ratio`` (:func:`class_ratio` of the training split)
    exceeds :data:`AUTO_BALANCE_RATIO`, else ``none``. Multi-label tasks resolve to ``none``:
    Keras class weights need one class per sample, and per-label positive weights are not
    implemented; choose ``focal`` explicitly there.

    Raises:
        ValueError: Unknown name.
    """
    allowed = ("none", "class_weights", "focal", "auto")
    if name not in allowed:
        raise ValueError(f"class_balance must be one of {list(allowed)}. Received: {name!r}")
    if name != "auto":
        return name
    if problem == "multilabel":
        return "none"
    return "class_weights" if ratio > AUTO_BALANCE_RATIO else "none"


def make_metrics(problem: str, n_outputs: int) -> list[Any]:
    """AUROC (the model-selection metric, ``val_auroc``), AUPRC, accuracy, precision, recall.

    For multi-class and multi-label AUROC/AUPRC are macro averages over labels (one-vs-rest).
    """
    import keras

    multi = problem != "binary"
    kw = {"multi_label": True, "num_labels": n_outputs} if multi else {}
    metrics: list[Any] = [
        keras.metrics.AUC(name="auroc", **kw),
        keras.metrics.AUC(name="auprc", curve="PR", **kw),
    ]
    if problem == "multiclass":
        metrics.append(keras.metrics.CategoricalAccuracy(name="accuracy"))
    else:
        metrics += [keras.metrics.BinaryAccuracy(name="accuracy"),
                    keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")]
    return metrics
