"""3D pooling as builtin 2D pooling ops: the same outputs, and TFLite without Flex ops."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.export.pool3d import builtin_pooling


@pytest.fixture(scope="module")
def model_3d():
    """Max pooling 3x3x3 stride 2 'same' (the ResNet stem), average pooling 2 'same' (DenseNet
    transitions) on odd sides, and a nested model, as the k-fold ensembles nest their members."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 9, 7, 1))
    x = keras.layers.Conv3D(3, 3, padding="same")(inputs)
    x = keras.layers.MaxPooling3D(3, strides=2, padding="same")(x)
    inner_in = keras.Input(x.shape[1:])
    y = keras.layers.AveragePooling3D(2, strides=2, padding="same")(inner_in)
    y = keras.layers.MaxPooling3D((1, 2, 2), padding="valid")(y)
    inner = keras.Model(inner_in, keras.layers.GlobalAveragePooling3D()(y), name="member_0")
    out = keras.layers.Dense(1, activation="sigmoid")(inner(x))
    return keras.Model(inputs, out)


def test_rewritten_pooling_computes_the_same(model_3d):
    x = np.random.default_rng(0).random((3, 5, 9, 7, 1), dtype=np.float32)
    rewritten = builtin_pooling(model_3d)
    assert rewritten is not model_3d
    assert {id(w) for w in rewritten.weights} == {id(w) for w in model_3d.weights}  # same variables
    np.testing.assert_allclose(rewritten.predict_on_batch(x), model_3d.predict_on_batch(x), atol=1e-6, rtol=0)


def test_2d_models_are_left_alone():
    import keras

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.MaxPooling2D()(inputs))
    assert builtin_pooling(model) is model


def test_tflite_needs_flex_ops_without_the_rewrite_and_none_with_it(model_3d, tmp_path, monkeypatch):
    from pipeline.export import tflite
    from pipeline.export.serving import write_saved_model
    from pipeline.export.verification import keras_runner

    write_saved_model(model_3d, tmp_path / "plain", (5, 9, 7, 1))
    plain = tflite.convert_tflite(tmp_path / "plain", "float32")
    assert set(plain.select_tf_ops) == {"MaxPool3D", "AvgPool3D"} and "SELECT_TF_OPS" in plain.op_sets
    (tmp_path / "plain.tflite").write_bytes(plain.content)
    with pytest.raises(RuntimeError):  # the tensorflow wheel's interpreter has no Flex delegate
        tflite.TFLiteRunner(tmp_path / "plain.tflite")

    source = tflite.tflite_source(model_3d, (5, 9, 7, 1), tmp_path / "plain", tmp_path)
    builtin = tflite.convert_tflite(source, "float32")
    assert builtin.select_tf_ops == () and builtin.op_sets == "TFLITE_BUILTINS"
    (tmp_path / "builtin.tflite").write_bytes(builtin.content)
    grids = np.random.default_rng(1).integers(0, 256, size=(2, 5, 9, 7, 1), dtype=np.uint8)
    got = tflite.TFLiteRunner(tmp_path / "builtin.tflite")(grids)
    np.testing.assert_allclose(got, keras_runner(model_3d)(grids), atol=1e-5, rtol=0)
