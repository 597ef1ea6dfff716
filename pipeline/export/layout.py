"""Where an export's files live (``exports/serving/<task>/``): one object instead of names typed again
in the export stage, the verification and ``predict``.

    exports/serving/<task>/
      export.json                manifest: labels, threshold, input/output, files + sha256, checks
      model_card.json            the model card, copied byte for byte (its sha256 is in the manifest)
      saved_model/               TensorFlow SavedModel, signature ``serving_default``
      model_float32.tflite       TFLite, float32
      model_float16.tflite       TFLite, float16 weights (computed in float32)
      model_int8_dynamic.tflite  TFLite, dynamic-range int8 weights
      model.onnx                 only with ``--onnx`` (optional extra ``[onnx]``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "export.json"
SAVED_MODEL = "saved_model"
ONNX_FILE = "model.onnx"
#: TFLite variants in the order they are written: name -> file.
TFLITE_FILES = {"float32": "model_float32.tflite", "float16": "model_float16.tflite",
                "int8_dynamic": "model_int8_dynamic.tflite"}
#: The serving signature: its name, input and output keys.
SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class ExportLayout:
    """The files of one export folder."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def saved_model(self) -> Path:
        return self.root / SAVED_MODEL

    @property
    def onnx(self) -> Path:
        return self.root / ONNX_FILE

    def tflite(self, variant: str) -> Path:
        """The file of a TFLite variant (:data:`TFLITE_FILES`)."""
        if variant not in TFLITE_FILES:
            raise ValueError(f"variant must be one of {list(TFLITE_FILES)}. Received: {variant!r}")
        return self.root / TFLITE_FILES[variant]


def is_export_dir(path: str | os.PathLike[str]) -> bool:
    """True for a folder this package wrote (its manifest and SavedModel are there), as opposed
    to a ``models/<task>`` folder (``model.keras``)."""
    layout = ExportLayout(Path(path))
    return layout.manifest.is_file() and (layout.saved_model / "saved_model.pb").is_file()
