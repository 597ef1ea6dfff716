"""Batched inference shared by the stages: plain predictions unchanged, TTA averaged per batch."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.dataset.cases import load_inputs
from pipeline.evaluate.inference import predict_probs
from pipeline.evaluate.tta import tta_predict


@pytest.fixture(scope="module")
def tiny_model():
    """A deterministic 'model' with a small convolution, so views give different outputs."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(9, 16, 16, 1), dtype=np.uint8)


def test_tta_none_is_bit_identical_to_plain_inference(tiny_model, images):
    indices = np.array([4, 0, 8, 2, 6, 1, 7], dtype=np.int64)
    plain = np.concatenate([np.asarray(tiny_model.predict_on_batch(load_inputs(images, indices[s:s + 3])),
                                       dtype=np.float64) for s in range(0, len(indices), 3)])
    got = predict_probs(tiny_model, images, indices, batch_size=3)
    assert got.dtype == np.float64 and got.shape == (7, 1)
    np.testing.assert_array_equal(got, plain)
    np.testing.assert_array_equal(predict_probs(tiny_model, images, indices, batch_size=3, tta="none"), plain)


@pytest.mark.parametrize("mode", ["flip", "shift", "flip_shift"])
def test_tta_is_applied_per_inference_batch(tiny_model, images, mode):
    indices = np.arange(len(images), dtype=np.int64)
    got = predict_probs(tiny_model, images, indices, batch_size=4, tta=mode)
    whole = tta_predict(tiny_model.predict_on_batch, load_inputs(images, indices), mode=mode)
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)  # batching does not change a sample's views
    assert not np.allclose(got, predict_probs(tiny_model, images, indices, batch_size=4), atol=1e-7)


def test_bad_tta_mode_is_refused(tiny_model, images):
    with pytest.raises(ValueError, match=r"tta must be one of \[.*\]. Received: 'mirror'"):
        predict_probs(tiny_model, images, np.arange(2), batch_size=2, tta="mirror")
