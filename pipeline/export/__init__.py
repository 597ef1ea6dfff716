"""Exports for serving: a trained ``models/<task>`` as a SavedModel, TFLite (float32, float16,
dynamic-range int8) and optionally ONNX, each verified against the Keras model.

- :mod:`~pipeline.export.layout`: the files of an export folder (``exports/serving/<task>/``)
  and :func:`is_export_dir`.
- :mod:`~pipeline.export.serving`: the serving graph (stored uint8 grid in, ``/ 255`` in the
  graph, probabilities out), the SavedModel, :func:`load_export`.
- :mod:`~pipeline.export.tflite`: TFLite variants and :class:`TFLiteRunner`;
  :mod:`~pipeline.export.pool3d`: 3D pooling as builtin 2D pooling ops, for 3D models.
- :mod:`~pipeline.export.onnx_model`: ONNX through tf2onnx (the ``[onnx]`` extra).
- :mod:`~pipeline.export.verification`: :func:`verify`, the measured agreement with the Keras model.
- :mod:`~pipeline.export.manifest`: ``export.json``.
- :mod:`~pipeline.export.run`: :func:`export_model`, the export stage's work.

Importing this package imports neither TensorFlow nor Keras; the functions that need them do.
"""

from __future__ import annotations

from pipeline.export.layout import ExportLayout, is_export_dir
from pipeline.export.manifest import read_manifest, recorded_decision
from pipeline.export.run import DEFAULT_SAMPLES, export_model, verification_grids
from pipeline.export.serving import load_export
from pipeline.export.verification import TOLERANCES, Agreement, ExportMismatchError, verify

__all__ = [
    "DEFAULT_SAMPLES",
    "TOLERANCES",
    "Agreement",
    "ExportLayout",
    "ExportMismatchError",
    "export_model",
    "is_export_dir",
    "load_export",
    "read_manifest",
    "recorded_decision",
    "verification_grids",
    "verify",
]
