"""Batched inference shared by the stages: plain predictions unchanged, every forward batch of one
size (a case's probability does not depend on its batch mates), TTA averaged per batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.dataset.cases import load_inputs
from pipeline.evaluate.inference import fixed_batch, predict_probs
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
    padded = fixed_batch(tiny_model.predict_on_batch, 3)  # the last batch of 1 goes in as 3 rows
    plain = np.concatenate([np.asarray(padded(load_inputs(images, indices[s:s + 3])), dtype=np.float64)
                            for s in range(0, len(indices), 3)])
    got = predict_probs(tiny_model, images, indices, batch_size=3)
    assert got.dtype == np.float64 and got.shape == (7, 1)
    np.testing.assert_array_equal(got, plain)
    np.testing.assert_array_equal(predict_probs(tiny_model, images, indices, batch_size=3, tta="none"), plain)
    whole = np.asarray(tiny_model.predict_on_batch(load_inputs(images, indices)), dtype=np.float64)
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)  # the model's outputs, to rounding


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(9)), size=st.integers(1, 9), batch_size=st.integers(1, 5))
def test_a_case_gets_the_same_probability_whatever_its_batch_mates(tiny_model, images, order, size,
                                                                     batch_size):
    """evaluate's test split and the same images as validate's external cohort, or a study
    predicted alone: with one batch size, each case's probability is the same bit for bit."""
    everyone = predict_probs(tiny_model, images, np.arange(9), batch_size=batch_size)
    subset = np.array(order[:size], dtype=np.int64)
    np.testing.assert_array_equal(predict_probs(tiny_model, images, subset, batch_size=batch_size),
                                  everyone[subset])


def test_fixed_batch_pads_short_batches_and_refuses_long_ones():
    seen = []

    def predict(x):
        seen.append(x.copy())
        return x.reshape(len(x), -1).sum(axis=1, keepdims=True)

    x = np.arange(1, 7, dtype=np.float32).reshape(3, 2)
    out = fixed_batch(predict, 5)(x)
    np.testing.assert_array_equal(out, [[3.0], [7.0], [11.0]])
    assert seen[0].shape == (5, 2) and not seen[0][3:].any()  # blank rows, dropped from the output
    np.testing.assert_array_equal(fixed_batch(predict, 3)(x), out)  # a full batch goes in as is
    assert np.array_equal(seen[1], x)
    with pytest.raises(ValueError, match="a batch of 3 rows is longer than batch_size=2"):
        fixed_batch(predict, 2)(x)


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
