"""Model outputs for the explanations: batched, in inference mode, through the compiled step."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.explain.scores import predict


def _net_with_dropout_and_batchnorm(rank: int) -> keras.Model:
    conv, pool = ((keras.layers.Conv2D, keras.layers.GlobalAveragePooling2D) if rank == 2 else
                  (keras.layers.Conv3D, keras.layers.GlobalAveragePooling3D))
    inputs = keras.Input((8,) * rank + (1,))
    x = conv(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.5)(pool()(x))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_predict_is_the_inference_mode_output_whatever_the_batching(rank, batch_size):
    keras.utils.set_random_seed(0)
    model = _net_with_dropout_and_batchnorm(rank)
    images = np.random.default_rng(0).random((7,) + (8,) * rank + (1,)).astype(np.float32)
    out = predict(model, images, batch_size=batch_size)
    assert out.shape == (7, 3) and out.dtype == np.float32
    # dropout off and BatchNormalization on its moving statistics: the inference-mode output,
    # the same on a second call (no randomness) and for each image alone
    np.testing.assert_allclose(out, np.asarray(model(images, training=False)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out, predict(model, images, batch_size=batch_size))
    alone = np.concatenate([predict(model, images[i:i + 1], batch_size=1) for i in range(7)])
    np.testing.assert_allclose(out, alone, rtol=1e-5, atol=1e-6)


def test_predict_on_no_images_has_the_output_width():
    model = _net_with_dropout_and_batchnorm(2)
    assert predict(model, np.zeros((0, 8, 8, 1), np.float32)).shape == (0, 3)


@pytest.mark.graph
def test_predict_traces_its_step_twice_at_most_and_reuses_it():
    """Traced (as the explain stage runs): one compiled predict step per model, reused by every
    later call; Keras relaxes the batch axis at the second shape, so other batch sizes add no
    trace (the deletion tests call it hundreds of times with varying batch sizes)."""
    model = _net_with_dropout_and_batchnorm(2)
    images = np.random.default_rng(1).random((21, 8, 8, 1)).astype(np.float32)
    predict(model, images, batch_size=8)  # batches of 8, 8 and 5: two shapes
    step = model.predict_function
    predict(model, images[:3], batch_size=2)
    predict(model, images, batch_size=16)
    assert model.predict_function is step and step.experimental_get_tracing_count() == 2
