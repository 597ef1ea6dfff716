"""TFLite conversions of the serving graph (uint8 grid in, probabilities out) and a runner.

Variants (:data:`TFLITE_VARIANTS`), all converted with ``tf.lite.TFLiteConverter`` from the
SavedModel's serving signature (:func:`tflite_source`):

- ``float32``: weights and compute in float32, the reference conversion.
- ``float16``: float16 weights (half the size), dequantized to float32 at load on CPUs.
- ``int8_dynamic``: dynamic-range quantization: int8 weights, activations quantized on the
  fly where a kernel supports it; no calibration data needed. Its error is measured, not bounded.

3D pooling is rewritten with 2D pooling ops first (:mod:`pipeline.export.pool3d`), so the 3D
models convert with TFLite builtins only. Should a graph still need TensorFlow ops, the
conversion falls back to ``SELECT_TF_OPS`` and records which ops (the model then needs the Flex
delegate, which the ``tensorflow`` wheel's interpreter does not have: it is not verified).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Variant -> what it is (written into the manifest).
TFLITE_VARIANTS = {
    "float32": "float32 weights and compute",
    "float16": "float16 weights, float32 compute (weights dequantized at load)",
    "int8_dynamic": "dynamic-range quantization: int8 weights, float32 input/output, no calibration",
}


@dataclass(frozen=True)
class TFLiteModel:
    """One converted variant.

    Attributes:
        content: The ``.tflite`` flatbuffer.
        select_tf_ops: TensorFlow ops kept as Flex ops (empty: builtins only).
    """

    content: bytes
    select_tf_ops: tuple[str, ...] = ()

    @property
    def op_sets(self) -> str:
        return "TFLITE_BUILTINS" + (" + SELECT_TF_OPS" if self.select_tf_ops else "")


def tflite_source(model: Any, grid_shape: Sequence[int], saved_model: Path, scratch: Path) -> Path:
    """The SavedModel to convert: the exported one (``saved_model``), or, for a model with 3D
    pooling, the same serving graph with that pooling as builtin ops, written under ``scratch``.

    Converting from a SavedModel (rather than from a concrete function of the Keras 3 model,
    which left the variables unread and gave NaN in TF 2.21) keeps the weights as exported.
    """
    from pipeline.export.pool3d import builtin_pooling
    from pipeline.export.serving import write_saved_model

    graph_model = builtin_pooling(model)
    if graph_model is model:
        return saved_model
    path = scratch / "saved_model_builtin_pooling"
    write_saved_model(graph_model, path, grid_shape)
    return path


def convert_tflite(saved_model: Path, variant: str) -> TFLiteModel:
    """Convert the serving signature of ``saved_model`` (uint8 grid in) to TFLite ``variant``.

    Raises:
        ValueError: Unknown variant.
        tf.lite ConverterError: The graph cannot be converted even with SELECT_TF_OPS.
    """
    import tensorflow as tf

    from pipeline.export.layout import SIGNATURE

    if variant not in TFLITE_VARIANTS:
        raise ValueError(f"variant must be one of {list(TFLITE_VARIANTS)}. Received: {variant!r}")

    def convert(op_sets: list[Any]) -> bytes:
        converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model),
                                                             signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = op_sets
        if variant != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()

    try:
        return TFLiteModel(convert([tf.lite.OpsSet.TFLITE_BUILTINS]))
    except Exception as exc:  # ConverterError; its class moved between TF releases
        if "ERROR_NEEDS_FLEX_OPS" not in str(exc):
            raise
    content = convert([tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS])
    return TFLiteModel(content, flex_ops(content) or ("unknown",))


def flex_ops(content: bytes) -> tuple[str, ...]:
    """Names of the TensorFlow (Flex) ops in a ``.tflite`` flatbuffer, e.g. ``("MaxPool3D",)``."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    names = {code.customCode.decode() for code in model.operatorCodes if code.customCode}
    return tuple(sorted(n.removeprefix("Flex") for n in names if n.startswith("Flex")))


class TFLiteRunner:
    """A ``.tflite`` model as ``uint8 grids -> (N, K) float32 probabilities`` (any batch size).

    Raises:
        RuntimeError: The interpreter cannot run the model (e.g. Flex ops without the delegate).
    """

    def __init__(self, path: str | os.PathLike[str], *, num_threads: int | None = None) -> None:
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter's notice about LiteRT
            warnings.simplefilter("ignore")
            self._interpreter = tf.lite.Interpreter(model_path=os.fspath(Path(path)),
                                                    num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._shape: tuple[int, ...] | None = None
        self._resize(tuple(int(n) for n in self._input["shape"]))

    def _resize(self, shape: tuple[int, ...]) -> None:
        if shape != self._shape:
            self._interpreter.resize_tensor_input(self._input["index"], shape)
            self._interpreter.allocate_tensors()
            self._shape = shape

    def __call__(self, grids: np.ndarray) -> np.ndarray:
        grids = np.asarray(grids)
        if grids.dtype != self._input["dtype"]:
            raise ValueError(f"the TFLite model takes {np.dtype(self._input['dtype'])} grids. "
                             f"Received: {grids.dtype}")
        grids = np.ascontiguousarray(grids)
        self._resize(tuple(grids.shape))
        self._interpreter.set_tensor(self._input["index"], grids)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output["index"]))
