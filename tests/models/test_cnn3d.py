"""3D builders: shapes, names, flatness, freezing, a training sanity check, serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.models import (
    ARCHITECTURES_3D,
    backbone_blocks,
    backbone_layers,
    build_model,
    gradcam_layer,
    unfreeze_top,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*")
SHAPE = (16, 32, 32, 1)  # (D, H, W, C)
WIDTH = 8  # thin nets keep the tests fast; the architecture is the same
#: name → (Grad-CAM layer, number of blocks incl. the stem, feature map (D, H, W) at SHAPE)
EXPECTED = {
    "resnet18_3d": ("conv5_block2_out", 1 + 8, (1, 1, 1)),
    "resnet34_3d": ("conv5_block3_out", 1 + 16, (1, 1, 1)),
    "resnet50_3d": ("conv5_block3_out", 1 + 16, (16, 1, 1)),  # depth stride 1 (inflation)
    "densenet121_3d": ("relu", 1 + 58, (1, 1, 1)),
}
BN = keras.layers.BatchNormalization


def _build(backbone: str, **kwargs) -> keras.Model:
    args = {"kind": "3d", "backbone": backbone, "input_shape": SHAPE, "n_outputs": 3,
            "activation": "softmax", "weights": None, "base_width": WIDTH} | kwargs
    return build_model(**args)


def _volumes(n: int = 2, shape=SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def test_registry():
    assert set(ARCHITECTURES_3D) == set(EXPECTED)


@pytest.mark.parametrize("backbone", EXPECTED)
def test_builds_flat_named_model(backbone):
    target, n_blocks, feature_shape = EXPECTED[backbone]
    model = _build(backbone)
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert gradcam_layer(model, backbone) == target
    assert model.get_layer(target).output.shape[1:4] == feature_shape
    stem_kernel = (3, 7, 7) if backbone == "resnet50_3d" else (7, 7, 7)
    assert model.get_layer("conv1_conv").kernel.shape[:3] == stem_kernel
    blocks = backbone_blocks(model, backbone)
    assert len(blocks) == n_blocks
    assert [name for name, _ in blocks[:2]] == ["stem", "conv2_block1"]
    assert blocks[-1][0] == ("conv5_block16" if backbone.startswith("densenet") else target[:-4])
    out = keras.ops.convert_to_numpy(model(_volumes(), training=False))
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    momenta = {layer.momentum for layer in model.layers if isinstance(layer, BN)}
    assert momenta == {0.9}, "3D BatchNormalization must track batch statistics in short runs"


def test_default_widths_and_parameter_counts():
    # Paper widths (64; DenseNet growth 32) for a 1-channel input; heads excluded.
    counts = {"resnet18_3d": 33_169_600, "resnet34_3d": 63_486_656, "densenet121_3d": 11_326_272,
              "resnet50_3d": 46_222_208}
    for name, count in counts.items():
        assert ARCHITECTURES_3D[name](input_shape=(32, 64, 64, 1)).count_params() == count, name


def test_resnet18_3d_geometry_for_ct_volumes():
    model = ARCHITECTURES_3D["resnet18_3d"](input_shape=(32, 64, 64, 1), base_width=16)
    assert model.get_layer("conv1_relu").output.shape[1:4] == (32, 32, 32)  # stem stride (1, 2, 2)
    assert model.get_layer("pool1_pool").output.shape[1:4] == (16, 16, 16)
    assert model.output.shape == (None, 2, 2, 2, 128)


def test_densenet_base_width_sets_growth_rate():
    model = _build("densenet121_3d", base_width=16)
    assert model.get_layer("conv1_conv").filters == 16
    assert model.get_layer("conv2_block1_2_conv").filters == 8
    assert model.get_layer("pool2_conv").filters == (16 + 6 * 8) // 2  # compression 0.5


@pytest.mark.parametrize("backbone", ["resnet18_3d", "densenet121_3d"])
def test_freezing_counts(backbone):
    model = _build(backbone)
    for layer in backbone_layers(model, backbone):
        layer.trainable = False
    assert len(model.trainable_weights) == 2
    unfreeze_top(model, backbone, 1)  # two bias-free convs in the top block
    assert len(model.trainable_weights) == 2 + 2
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, BN))
    unfreeze_top(model, backbone, "all")
    n_bn = sum(isinstance(layer, BN) for layer in model.layers)
    n_conv = sum(isinstance(layer, keras.layers.Conv3D) for layer in model.layers)
    assert len(model.trainable_weights) == n_conv + 2  # no conv biases (BN follows each conv)
    assert len(model.non_trainable_weights) == 4 * n_bn


def test_training_steps_reduce_loss():
    keras.utils.set_random_seed(0)
    model = _build("resnet18_3d", n_outputs=2, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                  run_eagerly=True)  # tracing the step would cost more than 8 eager steps
    x = _volumes(4)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    losses = [float(model.train_on_batch(x, y)) for _ in range(8)]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("backbone, channels", [("resnet18_3d", 1), ("resnet50_3d", 3)])
def test_save_load_round_trip_safe_mode(tmp_path, backbone, channels):
    shape = (8, 32, 32, channels)
    model = _build(backbone, input_shape=shape)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = _volumes(2, shape)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)),
                                  keras.ops.convert_to_numpy(model(x, training=False)))


def test_mixed_precision_keeps_output_float32():
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = _build("resnet18_3d")
        assert model.get_layer("conv2_block1_1_conv").compute_dtype == "bfloat16"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": "imagenet"}, "weights for resnet18_3d must be None"),
    ({"input_shape": (32, 32, 1)}, r"must be \(D, H, W, C\)"),
    ({"base_width": 1}, "base_width must be an integer >= 2"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _build("resnet18_3d", **kwargs)


def test_resnet50_3d_rejects_even_temporal_kernel():
    with pytest.raises(ValueError, match="temporal_kernel must be odd"):
        ARCHITECTURES_3D["resnet50_3d"](input_shape=SHAPE, temporal_kernel=2)
