"""2D registry, builder, preprocessing, freezing and Grad-CAM layer lookup.

Heavy checks run once per family (one representative backbone each) at 64x64; nothing here
downloads weights (``weights=None`` or a weights file written to ``tmp_path``).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.models import (
    BACKBONES,
    backbone_blocks,
    backbone_layers,
    build_model,
    get_backbone,
    gradcam_layer,
    resnet2d,
    unfreeze_top,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*")
SIZE = 64
REQUIRED = [
    "resnet50", "resnet101", "resnet152", "resnet50v2", "resnet101v2", "resnet152v2",
    "densenet121", "densenet169", "densenet201",
    *(f"efficientnetb{i}" for i in range(8)), *(f"efficientnetv2b{i}" for i in range(4)),
    "efficientnetv2s", "mobilenetv3small", "mobilenetv3large", "resnet18", "resnet34",
]
#: One representative per family, with its keras.applications preprocessing module.
FAMILIES = {
    "resnet": ("resnet50", keras.applications.resnet),
    "resnet_v2": ("resnet50v2", keras.applications.resnet_v2),
    "densenet": ("densenet121", keras.applications.densenet),
    "efficientnet": ("efficientnetb0", keras.applications.efficientnet),
    "efficientnet_v2": ("efficientnetv2b0", keras.applications.efficientnet_v2),
    "mobilenet_v3": ("mobilenetv3small", keras.applications.mobilenet_v3),
}
_CACHE: dict[str, keras.Model] = {}


def _build(backbone: str, **kwargs) -> keras.Model:
    args = {"kind": "2d", "backbone": backbone, "input_shape": (SIZE, SIZE, 1), "n_outputs": 3,
            "activation": "softmax", "weights": None} | kwargs
    return build_model(**args)


def _shared(backbone: str) -> keras.Model:
    """A model built once per session, for read-only checks (never change its trainable flags)."""
    if backbone not in _CACHE:
        _CACHE[backbone] = _build(backbone)
    return _CACHE[backbone]


def _images(n: int = 2, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, SIZE, SIZE, channels), dtype=np.float32)


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))  # eager: no tracing of big graphs


def _n_trainable(model: keras.Model) -> int:
    return len(model.trainable_weights)


# --- registry --------------------------------------------------------------------------------

def test_registry_has_required_names_and_constructors():
    assert set(REQUIRED) <= set(BACKBONES)
    for name, spec in BACKBONES.items():
        assert name == spec.name == name.lower()
        source = resnet2d if spec.family == "resnet_basic" else keras.applications
        assert spec.constructor is getattr(source, spec.constructor.__name__)
        assert spec.family in FAMILIES or spec.family == "resnet_basic"
        assert spec.preprocessing and spec.min_input_size == 32
        assert (spec.gradcam_layer is None) == (spec.family in ("mobilenet_v3", "resnet_basic"))


def test_unknown_backbone_lists_valid_names():
    message = r"^backbone must be one of \[.*'resnet50'.*\]\. Received: 'resnet5'$"
    with pytest.raises(ValueError, match=message):
        build_model(kind="2d", backbone="resnet5", input_shape=(SIZE, SIZE, 1), n_outputs=2,
                    activation="softmax", weights=None)
    with pytest.raises(ValueError, match="Received: 'resnet5'"):
        get_backbone("resnet5")
    with pytest.raises(ValueError, match=r"\[.*'resnet18_3d'.*\]\. Received: 'resnet5'"):
        build_model(kind="3d", backbone="resnet5", input_shape=(8, 32, 32, 1), n_outputs=2,
                    activation="softmax", weights=None)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "4d"}, "kind must be one of"),
    ({"activation": "relu"}, "activation must be one of"),
    ({"pooling": "sum"}, "pooling must be one of"),
    ({"n_outputs": 0}, "n_outputs must be"),
    ({"dropout": 1.0}, "dropout must be"),
    ({"input_shape": (SIZE, SIZE, 2)}, "input_shape for resnet50"),
    ({"input_shape": (16, 16, 1)}, "H, W >= 32"),
    ({"weights": "/nonexistent/w.h5"}, "existing weights file"),
    ({"base_width": 16}, "base_width applies to"),
])
def test_bad_arguments_fail_before_building(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _build("resnet50", **kwargs)


# --- build: flat model, head, Grad-CAM layer -------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_family_builds_flat_model_with_head(family):
    backbone = FAMILIES[family][0]
    model = _shared(backbone)
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert [layer.name for layer in model.layers[-3:]] == ["head_pool", "head_dropout", "predictions"]
    target = gradcam_layer(model, backbone)
    spatial = [layer for layer in backbone_layers(model, backbone) if len(layer.output.shape) == 4]
    assert target == spatial[-1].name
    assert model.get_layer(target).output.shape[1:3] == (2, 2)
    out = _predict(model, _images())
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_resnet50_layers_reachable_for_gradcam():
    model = _shared("resnet50")
    assert gradcam_layer(model, "resnet50") == "conv5_block3_out"
    assert model.get_layer("conv5_block3_out").output.shape == (None, 2, 2, 2048)
    assert model.get_layer("conv1_conv").kernel.shape == (7, 7, 3, 64)  # pretrained layer as published


def test_sigmoid_and_max_pooling():
    model = _build("mobilenetv3small", activation="sigmoid", pooling="max", n_outputs=4, dropout=0.0)
    assert isinstance(model.get_layer("head_pool"), keras.layers.GlobalMaxPooling2D)
    assert model.get_layer("predictions").activation.__name__ == "sigmoid"
    out = _predict(model, _images())
    assert out.shape == (2, 4) and np.all((out > 0) & (out < 1))


# --- preprocessing ---------------------------------------------------------------------------

def _preprocessed(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.Model(model.input, model.get_layer("input_preprocessing").output)(x).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_in_model_preprocessing_matches_keras_preprocess_input(family):
    backbone, module = FAMILIES[family]
    x = _images()
    expected = module.preprocess_input(np.repeat(x * 255.0, 3, axis=-1))
    np.testing.assert_allclose(_preprocessed(_shared(backbone), x), expected, rtol=1e-5, atol=1e-4)


def test_caffe_preprocessing_reorders_rgb_input_to_bgr():
    model = _build("resnet50", input_shape=(SIZE, SIZE, 3))
    x = _images(channels=3)
    expected = keras.applications.resnet.preprocess_input(x * 255.0)
    np.testing.assert_allclose(_preprocessed(model, x), expected, rtol=1e-6, atol=1e-4)


def test_weights_file_path_is_loaded(tmp_path):
    bare = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    for layer in bare.layers:  # non-default statistics, so a BN copy is visible too
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(1).normal(size=layer.moving_mean.shape))
    path = tmp_path / "resnet50_notop.weights.h5"
    bare.save_weights(path)
    model = _build("resnet50", weights=str(path))
    for name in ("conv1_conv", "conv5_block3_3_conv", "conv4_block2_2_bn"):
        for got, want in zip(model.get_layer(name).get_weights(), bare.get_layer(name).get_weights(),
                             strict=True):
            np.testing.assert_array_equal(got, want)


def test_mixed_precision_keeps_output_float32():
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = _build("resnet50")
        assert model.get_layer("conv1_conv").compute_dtype == "bfloat16"
        assert model.get_layer("input_preprocessing").compute_dtype == "float32"
        assert model.get_layer("predictions").compute_dtype == "float32"
        out = _predict(model, _images())
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")


# --- freezing --------------------------------------------------------------------------------

#: backbone → name prefixes of its top block (incl. the final layers that follow the block).
TOP_BLOCK = {
    "resnet50": ("conv5_block3_",),
    "densenet121": ("conv5_block16_", "bn", "relu"),
    "efficientnetb0": ("block7a_", "top_"),
}
BN = keras.layers.BatchNormalization


@pytest.mark.parametrize("backbone", TOP_BLOCK)
def test_freeze_then_unfreeze_top_block(backbone):
    model = _build(backbone)
    n_bn = sum(isinstance(layer, BN) for layer in model.layers)
    all_non_bn = _n_trainable(model) - 2 * n_bn  # every BN has trainable gamma and beta
    for layer in backbone_layers(model, backbone):
        layer.trainable = False
    assert _n_trainable(model) == 2  # head Dense kernel + bias only

    top = [layer for layer in model.layers if layer.name.startswith(TOP_BLOCK[backbone])]
    top_non_bn = sum(len(layer.weights) for layer in top if not isinstance(layer, BN))
    assert backbone_blocks(model, backbone)[-1][1] == top
    model.trainable = False  # the classic bug must not leak into unfreeze_top
    unfreeze_top(model, backbone, 1)
    assert _n_trainable(model) == top_non_bn + 2
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {
        layer.name for layer in top if layer.weights and not isinstance(layer, BN)} | {"predictions"}
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, BN))

    unfreeze_top(model, backbone, 0)
    assert _n_trainable(model) == 2
    unfreeze_top(model, backbone, "all")
    assert _n_trainable(model) == all_non_bn
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, BN))


def test_resnet50_top_block_weight_count():
    model = _shared("resnet50")
    blocks = backbone_blocks(model, "resnet50")
    assert [name for name, _ in blocks][:2] == ["stem", "conv2_block1"] and len(blocks) == 17
    top = blocks[-1][1]
    # conv5_block3: three convs with kernel + bias; BN layers stay frozen.
    assert sum(len(layer.weights) for layer in top if not isinstance(layer, BN)) == 6


@pytest.mark.parametrize("n_blocks", [-1, 18, 1.5, "top"])
def test_unfreeze_top_rejects_bad_counts(n_blocks):
    with pytest.raises(ValueError, match=r"n_blocks must be 'all' or an integer in \[0, 17\]"):
        unfreeze_top(_shared("resnet50"), "resnet50", n_blocks)


# --- serialisation ---------------------------------------------------------------------------

def test_save_load_round_trip_safe_mode(tmp_path):
    model = _build("resnet50", input_shape=(SIZE, SIZE, 3))  # includes the RGB->BGR layers
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = _images(channels=3)
    np.testing.assert_array_equal(_predict(loaded, x), _predict(model, x))
    assert gradcam_layer(loaded, "resnet50") == "conv5_block3_out"


# --- 2D ResNet-18/34 built here ---------------------------------------------------------------

def test_resnet18_is_flat_single_channel_and_has_gradcam_layer():
    model = _build("resnet18", base_width=16)
    assert model.get_layer("input_preprocessing").output.shape[-1] == 1  # no channel repeat
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert gradcam_layer(model, "resnet18") == "conv5_block2_out"
    assert _predict(model, _images()).shape == (2, 3)
    blocks = [name for name, _ in backbone_blocks(model, "resnet18")]
    assert blocks == ["stem", *(f"conv{s}_block{b}" for s in range(2, 6) for b in (1, 2))]


def test_resnet18_weights_file_round_trip_and_no_imagenet(tmp_path):
    first = resnet2d.ResNet18(input_shape=(SIZE, SIZE, 1), base_width=8)
    path = tmp_path / "r18.weights.h5"
    first.save_weights(path)
    second = resnet2d.ResNet18(input_shape=(SIZE, SIZE, 1), base_width=8, weights=str(path))
    np.testing.assert_array_equal(first.get_layer("conv5_block2_2_conv").get_weights()[0],
                                  second.get_layer("conv5_block2_2_conv").get_weights()[0])
    with pytest.raises(ValueError, match="has no ImageNet weights"):
        _build("resnet18", weights="imagenet")
