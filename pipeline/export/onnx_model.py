"""ONNX export of the SavedModel's serving signature (opt-in: the ``[onnx]`` extra).

tf2onnx converts the signature as written (uint8 ``images`` in, the /255 conversion in the
graph, ``probabilities`` out); onnxruntime runs it for the verification. Neither is a core
dependency: ``pip install "medvision[onnx]"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.errors import UserInputError
from pipeline.export.layout import INPUT_NAME, OUTPUT_NAME, SIGNATURE

#: ONNX opset written (onnxruntime 1.17+ runs it; tf2onnx 1.17 supports it).
OPSET = 17


def onnx_versions() -> dict[str, str]:
    """Versions of the ONNX tools, or a :class:`UserInputError` saying how to install them."""
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as exc:
        raise UserInputError(f"--onnx needs tf2onnx and onnxruntime: pip install 'medvision[onnx]' "
                             f"({exc})") from exc
    return {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def convert_onnx(saved_model: Path, out: Path) -> None:
    """Convert the SavedModel's serving signature to ONNX at ``out``."""
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(os.fspath(saved_model))  # referenced below: keeps its variables alive
    spec = loaded.signatures[SIGNATURE].structured_input_signature[1][INPUT_NAME]

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=INPUT_NAME)])
    def serve(images):
        return {OUTPUT_NAME: loaded.signatures[SIGNATURE](**{INPUT_NAME: images})[OUTPUT_NAME]}

    tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=OPSET,
                                  output_path=os.fspath(out))


def onnx_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """An ONNX model as ``uint8 grids -> (N, K) float32 probabilities`` (onnxruntime, CPU)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(grids: np.ndarray) -> np.ndarray:
        grids = np.asarray(grids)
        if grids.dtype != np.uint8:
            raise ValueError(f"the ONNX model takes uint8 grids. Received: {grids.dtype}")
        return np.asarray(session.run(None, {input_name: np.ascontiguousarray(grids)})[0])

    return run
