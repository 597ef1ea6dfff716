"""I3D inflation: kernel maths, by-name copying from a 2D ResNet50, the "boring volume" property.

The 2D source is a randomly initialised ResNet50 (no download) with randomised BatchNorm
parameters and statistics, saved to a weights file the 3D builder inflates from.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.models import build_model, inflate_2d_weights
from pipeline.models.inflate import inflate_kernel

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*")
SIZE = 64
DEPTH = 8


@pytest.fixture(scope="module")
def resnet50_2d(tmp_path_factory) -> tuple[keras.Model, str]:
    """(bare 2D ResNet50 without top, path of its saved weights)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                               rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)])
    path = tmp_path_factory.mktemp("weights") / "resnet50_notop.weights.h5"
    model.save_weights(path)
    return model, str(path)


@pytest.fixture(scope="module")
def gray_3d(resnet50_2d) -> keras.Model:
    """build_model's own path: the 1-channel 3D ResNet50 inflated from the weights file."""
    return _build("3d", 1, resnet50_2d[1])


def _pooled(model: keras.Model, x: np.ndarray) -> np.ndarray:
    features = keras.Model(model.input, model.get_layer("head_pool").output)
    return keras.ops.convert_to_numpy(features(x, training=False))


def _image(channels: int) -> np.ndarray:
    gray = np.random.default_rng(1).random((1, SIZE, SIZE, 1), dtype=np.float32)
    return np.repeat(gray, channels, axis=-1)


def _boring(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[:, None], DEPTH, axis=1)  # every depth slice is the same image


def _build(kind: str, channels: int, weights: str | None) -> keras.Model:
    shape = (SIZE, SIZE, channels) if kind == "2d" else (DEPTH, SIZE, SIZE, channels)
    return build_model(kind=kind, backbone="resnet50" if kind == "2d" else "resnet50_3d",
                       input_shape=shape, n_outputs=2, activation="softmax", weights=weights)


# --- kernel maths ----------------------------------------------------------------------------

def test_inflate_kernel_mean_and_center():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32)
    mean = inflate_kernel(kernel, depth=3, in_channels=4, time_kernel="mean")
    assert mean.shape == (3, 3, 3, 4, 5)
    np.testing.assert_allclose(mean.sum(axis=0), kernel, rtol=1e-6)
    np.testing.assert_allclose(mean[0], kernel / 3, rtol=1e-6)
    center = inflate_kernel(kernel, depth=5, in_channels=4, time_kernel="center")
    np.testing.assert_array_equal(center[2], kernel)
    assert not center[[0, 1, 3, 4]].any()


def test_inflate_kernel_sums_rgb_to_one_channel():
    kernel = np.random.default_rng(0).normal(size=(7, 7, 3, 8)).astype(np.float32)
    out = inflate_kernel(kernel, depth=1, in_channels=1, time_kernel="mean")
    np.testing.assert_allclose(out[0], kernel.sum(axis=2, keepdims=True), rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"in_channels": 2}, "cannot map a kernel with 3 input channels to 2"),
    ({"in_channels": 3, "time_kernel": "edge"}, "time_kernel must be one of"),
])
def test_inflate_kernel_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inflate_kernel(np.zeros((3, 3, 3, 4)), depth=3, **kwargs)


# --- whole models ----------------------------------------------------------------------------

def test_build_inflates_every_matching_layer(resnet50_2d, gray_3d):
    model_2d, _ = resnet50_2d
    model_3d = gray_3d
    convs = [layer.name for layer in model_2d.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer.name for layer in model_2d.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert (len(convs), len(bns)) == (53, 53)
    # Re-inflating reports what build_model inflated: every 2D conv and BN has a 3D twin.
    assert sorted(inflate_2d_weights(model_3d, model_2d)) == sorted(convs + bns)

    stem = model_2d.get_layer("conv1_conv").kernel.numpy()  # (7, 7, 3, 64)
    expected = np.repeat(stem.sum(axis=2, keepdims=True)[None], 3, axis=0) / 3
    np.testing.assert_allclose(model_3d.get_layer("conv1_conv").kernel.numpy(), expected, rtol=1e-6)
    kernel = model_2d.get_layer("conv5_block3_2_conv").kernel.numpy()
    inflated = model_3d.get_layer("conv5_block3_2_conv").kernel.numpy()
    np.testing.assert_allclose(inflated, np.stack([kernel / 3] * 3), rtol=1e-6)
    for got, want in zip(model_3d.get_layer("conv4_block6_3_bn").get_weights(),
                         model_2d.get_layer("conv4_block6_3_bn").get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_boring_volume_center_inflation_is_exact(resnet50_2d):
    # 'center' inflation + RGB input: each slice goes through exactly the 2D network.
    model_2d, path = resnet50_2d
    model_3d = _build("3d", 3, None)
    inflate_2d_weights(model_3d, model_2d, time_kernel="center")
    image = _image(3)
    expected = _pooled(_build("2d", 3, path), image)
    got = _pooled(model_3d, _boring(image))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


def test_boring_volume_mean_inflation_gray_is_close(resnet50_2d, gray_3d):
    # build_model's path: 1-channel input, 'mean' inflation. Interior slices match the 2D net;
    # depth-border slices (zero padding) and the averaged caffe channel mean make it approximate.
    _, path = resnet50_2d
    expected = _pooled(_build("2d", 1, path), _image(1))
    got = _pooled(gray_3d, _boring(_image(1)))
    assert np.corrcoef(got[0], expected[0])[0, 1] > 0.99


def test_width_mismatch_is_reported(resnet50_2d):
    model_2d, _ = resnet50_2d
    thin = build_model(kind="3d", backbone="resnet50_3d", input_shape=(4, 32, 32, 1), n_outputs=2,
                       activation="softmax", base_width=16)
    with pytest.raises(ValueError, match="layer 'conv1_conv': 2D weights do not fit"):
        inflate_2d_weights(thin, model_2d)
