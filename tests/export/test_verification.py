"""verify(): the Keras model and each export on the same uint8 grids; tolerances enforced."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.decision import OperatingPoint
from pipeline.export.verification import (
    TOLERANCES,
    Agreement,
    ExportMismatchError,
    check_tolerances,
    keras_runner,
    verify,
)

LABELS = ("normal", "opacity")


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


@pytest.fixture(scope="module")
def grids():
    return np.random.default_rng(0).integers(0, 256, size=(10, 8, 8, 1), dtype=np.uint8)


def test_keras_runner_feeds_the_pipelines_float_input(model, grids):
    expected = model.predict_on_batch(grids.astype(np.float32) / np.float32(255.0))
    np.testing.assert_array_equal(keras_runner(model)(grids), expected)


def test_verify_measures_difference_and_decision_agreement(model, grids):
    reference = keras_runner(model)(grids).astype(np.float64)
    threshold = float(np.median(reference))
    point = OperatingPoint("binary", repr(threshold), (threshold,))
    nudged = {"same": lambda g: keras_runner(model)(g),
              "shifted": lambda g: keras_runner(model)(g) + 1e-3,
              "flipped": lambda g: (keras_runner(model)(g) < threshold).astype(np.float32)}
    results = verify(model, nudged, grids, point=point, labels=LABELS, batch_size=3)
    assert results["same"] == Agreement(0.0, 1.0, 10)
    assert results["shifted"].max_abs_diff == pytest.approx(1e-3, rel=1e-3)
    assert results["flipped"].decision_agreement == 0.0
    assert results["shifted"].to_json(1e-4)["within_tolerance"] is False


def test_nan_outputs_are_beyond_any_tolerance(model, grids):
    point = OperatingPoint("binary", "0.5", (0.5,))
    results = verify(model, {"saved_model": lambda g: np.full((len(g), 1), np.nan, np.float32)}, grids,
                     point=point, labels=LABELS)
    assert results["saved_model"].to_json()["max_abs_diff"] is None
    with pytest.raises(ExportMismatchError, match="saved_model"):
        check_tolerances(results)


def test_only_float32_exports_are_bounded():
    check_tolerances({"tflite_int8_dynamic": Agreement(0.05, 0.9, 4), "saved_model": Agreement(1e-6, 1.0, 4)})
    with pytest.raises(ExportMismatchError, match=r"tflite_float32: max \|diff\| 0.002 > 0.001"):
        check_tolerances({"tflite_float32": Agreement(2e-3, 1.0, 4)})
    assert TOLERANCES["saved_model"] < TOLERANCES["tflite_float32"]


def test_grids_must_be_uint8(model, grids):
    point = OperatingPoint("binary", "0.5", (0.5,))
    with pytest.raises(ValueError, match="uint8"):
        verify(model, {}, grids.astype(np.float32), point=point, labels=LABELS)
