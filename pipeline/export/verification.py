"""Does an export compute what the Keras model computes? Measured on the same uint8 grids.

:func:`verify` feeds the Keras model ``float32(grid) / 255`` (the pipeline's own conversion) and
each export the uint8 grid itself (its graph converts), then compares the probabilities (largest
absolute difference over every input and output) and the decisions at the operating point
(the share of inputs given the same predicted label(s)). :data:`TOLERANCES` bounds the float32
exports; the float16 and int8 variants are measured and recorded, not bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

#: Largest accepted |p_export - p_keras| for the float32 exports (probabilities in [0, 1]).
TOLERANCES: Mapping[str, float] = MappingProxyType({
    "saved_model": 1e-4,      # the same TensorFlow kernels; differences are op-fusion rounding
    "tflite_float32": 1e-3,   # other kernels (XNNPACK), other summation orders
    "onnx": 1e-3,             # onnxruntime's kernels
})

Runner = Callable[[np.ndarray], np.ndarray]


class ExportMismatchError(ValueError):
    """A float32 export's probabilities differ from the Keras model's beyond its tolerance."""


@dataclass(frozen=True)
class Agreement:
    """How closely one export follows the Keras model on the verification inputs.

    Attributes:
        max_abs_diff: Largest ``|p_export - p_keras|`` over inputs and outputs (inf when the
            export gave NaN or inf; None in JSON).
        decision_agreement: Share of inputs with the same predicted label(s) at the operating
            point (1.0: every decision the same).
        n_inputs: Inputs compared.
    """

    max_abs_diff: float
    decision_agreement: float
    n_inputs: int

    def to_json(self, tolerance: float | None = None) -> dict[str, Any]:
        finite = np.isfinite(self.max_abs_diff)
        out: dict[str, Any] = {"max_abs_diff": float(f"{self.max_abs_diff:.3g}") if finite else None,
                               "decision_agreement": round(self.decision_agreement, 6),
                               "n_inputs": self.n_inputs}
        if tolerance is not None:
            out.update(tolerance=tolerance, within_tolerance=bool(self.max_abs_diff <= tolerance))
        return out


def keras_runner(model: Any) -> Runner:
    """The Keras model as ``uint8 grids -> probabilities``: ``float32(grid) / 255``, as the
    pipeline feeds it (:func:`pipeline.dataset.cases.load_inputs`)."""

    def run(grids: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(np.asarray(grids).astype(np.float32) / np.float32(255.0)))

    return run


def verify(model: Any, exports: Mapping[str, Runner], grids: np.ndarray, *, point: Any,
           labels: Sequence[str], batch_size: int = 8) -> dict[str, Agreement]:
    """Run the Keras model and every export on ``grids``; compare their outputs.

    Args:
        model: The Keras classifier (input float32 in [0, 1]).
        exports: Name -> runner (uint8 grids -> ``(N, K)`` probabilities).
        grids: uint8 ``(N, *grid)`` inputs, as ``images.npy`` stores them.
        point: The :class:`pipeline.evaluate.OperatingPoint` deciding labels.
        labels: The model's label names.
        batch_size: Inputs per call.

    Returns:
        Name -> :class:`Agreement`, in ``exports`` order.

    Raises:
        ValueError: Grids that are not uint8 or empty, or outputs of another shape.
    """
    grids = np.asarray(grids)
    if grids.dtype != np.uint8 or len(grids) == 0:
        raise ValueError(f"verification grids must be a non-empty uint8 array. Received: "
                         f"{grids.dtype} {grids.shape}")
    reference = run_batches(keras_runner(model), grids, batch_size)
    expected = decisions(reference, point, labels)
    results = {}
    for name, run in exports.items():
        out = run_batches(run, grids, batch_size)
        if out.shape != reference.shape:
            raise ValueError(f"{name}: outputs of shape {out.shape}, the Keras model's are {reference.shape}")
        if not np.isfinite(out).all():  # NaN/inf: no agreement at all, and beyond any tolerance
            results[name] = Agreement(float("inf"), 0.0, len(grids))
            continue
        same = np.mean([a == b for a, b in zip(decisions(out, point, labels), expected, strict=True)])
        results[name] = Agreement(float(np.max(np.abs(out - reference))), float(same), len(grids))
    return results


def check_tolerances(results: Mapping[str, Agreement], tolerances: Mapping[str, float] = TOLERANCES) -> None:
    """Raise when a bounded export is beyond its tolerance.

    Raises:
        ExportMismatchError: Names each export and its difference.
    """
    bad = [f"{name}: max |diff| {a.max_abs_diff:.3g} > {tolerances[name]:g}"
           for name, a in results.items() if name in tolerances and not a.max_abs_diff <= tolerances[name]]
    if bad:
        raise ExportMismatchError("exports differ from the Keras model: " + "; ".join(bad))


def run_batches(run: Runner, grids: np.ndarray, batch_size: int) -> np.ndarray:
    """``run`` over ``grids`` in batches of ``batch_size``: float64 ``(N, K)`` outputs."""
    parts = [np.asarray(run(grids[i:i + batch_size]), dtype=np.float64)
             for i in range(0, len(grids), batch_size)]
    return np.concatenate(parts)


def decisions(outputs: np.ndarray, point: Any, labels: Sequence[str]) -> list[Any]:
    """The predicted label(s) of each row of model ``outputs`` at the operating ``point``."""
    from pipeline.evaluate.predictions import as_probability_matrix

    return point.predicted_labels(as_probability_matrix(np.clip(outputs, 0.0, 1.0), len(labels)), labels)
