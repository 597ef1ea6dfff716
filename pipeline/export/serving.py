"""The serving graph: stored uint8 grid in, probabilities out, as one TensorFlow function.

The pipeline stores every model input as uint8 (``images.npy``: ``(N, H, W, 1)`` or
``(N, D, H, W, 1)``, the ingest window mapped to 0..255) and feeds the model
``float32(grid) / 255`` (:func:`pipeline.dataset.cases.load_inputs`, ``predict``). The exported
signature takes that uint8 grid and applies the same conversion inside the graph, so a serving
system sends exactly the array ingest would have stored and cannot get the scaling wrong.

SavedModels are written with :class:`keras.export.ExportArchive` (Keras 3's export path for the
TensorFlow backend): one endpoint, ``serving_default``, input ``images`` (uint8, any batch
size), output ``probabilities`` (float32 ``(batch, n_outputs)``, the model's sigmoid/softmax).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.export.layout import INPUT_NAME, OUTPUT_NAME, SIGNATURE

#: What the graph does to its input, written into the manifest.
CONVERSION = "float32(images) / 255, inside the graph (as the pipeline feeds images.npy to the Keras model)"


def serving_function(model: Any, grid_shape: Sequence[int]) -> Any:
    """A ``tf.function``: uint8 ``(batch, *grid_shape)`` -> ``{"probabilities": (batch, K)}``.

    Args:
        model: The Keras classifier (input float32 in [0, 1]).
        grid_shape: The stored grid without the batch axis, ``(H, W, C)`` or ``(D, H, W, C)``.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None, *(int(n) for n in grid_shape)), tf.uint8, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(images: Any) -> dict[str, Any]:
        x = tf.cast(images, tf.float32) / tf.constant(255.0, tf.float32)
        return {OUTPUT_NAME: tf.cast(model(x, training=False), tf.float32)}

    return serve


def write_saved_model(model: Any, path: Path, grid_shape: Sequence[int]) -> None:
    """Write ``model`` behind the uint8 serving signature as a SavedModel folder ``path``."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serving_function(model, grid_shape))
    archive.write_out(os.fspath(path), verbose=False)


def load_signature(path: str | os.PathLike[str]) -> Callable[[np.ndarray], np.ndarray]:
    """The SavedModel's serving signature as ``uint8 grids -> (N, K) float32 probabilities``.

    Loads a TensorFlow graph: only load SavedModels you exported (a graph can read and write
    files); :func:`pipeline.export.manifest.check_files` checks them against the manifest first.

    Raises:
        ValueError: Grids of another dtype or shape than the signature's.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(path))
    signature = loaded.signatures[SIGNATURE]
    spec = signature.structured_input_signature[1][INPUT_NAME]
    expected = tuple(spec.shape[1:])

    def run(grids: np.ndarray) -> np.ndarray:
        grids = np.asarray(grids)
        if grids.dtype != np.uint8 or tuple(grids.shape[1:]) != expected:
            shape = ", ".join(map(str, expected))
            raise ValueError(f"the serving signature takes uint8 grids of shape (N, {shape}). "
                             f"Received: {grids.dtype} {grids.shape}")
        return signature(**{INPUT_NAME: tf.constant(grids)})[OUTPUT_NAME].numpy()

    run.saved_model = loaded  # type: ignore[attr-defined]  # the signature's variables live in it
    return run


def load_export(export_dir: str | os.PathLike[str]) -> Callable[[np.ndarray], np.ndarray]:
    """The serving signature of an export folder, after checking its SavedModel files and model
    card against the manifest's sha256 (a partial copy or an edited file is refused).

    Raises:
        ValueError: Not an export, or its files differ from the manifest.
    """
    from pipeline.export.layout import SAVED_MODEL, ExportLayout
    from pipeline.export.manifest import check_files, read_manifest
    from pipeline.train.card import CARD_FILE

    root = Path(export_dir)
    manifest = read_manifest(root)
    check_files(root, manifest, under=f"{SAVED_MODEL}/")
    check_files(root, manifest, under=CARD_FILE)
    return load_signature(ExportLayout(root).saved_model)
