"""Target layer resolution: auto (from the graph alone), explicit names, errors."""

from __future__ import annotations

import keras
import pytest

from pipeline.explain import Explainer, resolve_target_layer, spatial_layers
from pipeline.models import build_model, gradcam_layer
from tests.explain.nets import small_cnn


def test_auto_is_last_spatial_layer_before_head():
    model = small_cnn(2)
    assert resolve_target_layer(model) == "last"
    assert spatial_layers(model) == ["first", "pool", "last"]  # input excluded


@pytest.mark.parametrize(("kind", "backbone", "shape"), [
    ("2d", "resnet18", (64, 64, 1)),
    ("3d", "resnet18_3d", (16, 16, 16, 1)),
])
def test_auto_matches_registry_without_using_it(kind, backbone, shape):
    model = build_model(kind=kind, backbone=backbone, input_shape=shape, n_outputs=1, activation="sigmoid",
                        base_width=16 if kind == "2d" else 4)
    auto = resolve_target_layer(model)
    assert auto == gradcam_layer(model, backbone) == "conv5_block2_out"
    assert resolve_target_layer(model, backbone=backbone) == auto
    assert not any(name.startswith("input_") for name in spatial_layers(model))  # preprocessing


def test_explicit_name_is_validated():
    model = small_cnn(2)
    assert resolve_target_layer(model, "first") == "first"
    with pytest.raises(ValueError, match=r"'nope' is not a layer.*\['first', 'pool', 'last'\]"):
        resolve_target_layer(model, "nope")
    with pytest.raises(ValueError, match=r"'head_pool' has no spatial output.*'last'"):
        resolve_target_layer(model, "head_pool")


def test_long_candidate_list_is_shortened():
    model = build_model(kind="2d", backbone="resnet18", input_shape=(32, 32, 1), n_outputs=1,
                        activation="sigmoid", base_width=16)
    with pytest.raises(ValueError, match=r"conv5_block2_out'\] \(and \d+ earlier\)"):
        resolve_target_layer(model, "predictions")


def test_model_without_feature_map_is_rejected():
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match="no layer with a spatial output"):
        resolve_target_layer(keras.Model(inputs, outputs))


def test_nested_backbone_is_inlined_for_explanation():
    inner = small_cnn(2)
    backbone = keras.Model(inner.inputs, inner.get_layer("last").output, name="backbone")
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(x))
    assert resolve_target_layer(model) == "backbone"  # on the model as built: the sub-model
    explainer = Explainer(model)
    assert explainer.layer == "last"  # on the flat explanation copy: the inner feature map
    assert Explainer(model, layer="first").layer == "first"


@pytest.mark.parametrize(("kind", "backbone", "shape", "expected"), [
    ("2d", "resnet18", (128, 128, 1), "conv4_block2_out"),      # 8x8; the last block is 4x4
    ("3d", "resnet18_3d", (32, 64, 64, 1), "conv3_block2_out"),  # 8x8x8; the last block is 2x2x2
    ("2d", "densenet121", (128, 128, 1), None),
])
def test_auto_n_picks_the_last_map_with_n_cells_per_axis(kind, backbone, shape, expected):
    width = {"resnet18": 16, "resnet18_3d": 4}.get(backbone)
    model = build_model(kind=kind, backbone=backbone, input_shape=shape, n_outputs=1, activation="sigmoid",
                        weights=None, **({"base_width": width} if width else {}))
    name = resolve_target_layer(model, "auto:8", backbone=backbone)
    grid = model.get_layer(name).output.shape[1:-1]
    assert min(grid) >= 8
    names = spatial_layers(model)
    assert all(min(model.get_layer(n).output.shape[1:-1]) < 8 for n in names[names.index(name) + 1:])
    if expected is not None:
        assert name == expected
    assert resolve_target_layer(model, "auto:1") == resolve_target_layer(model)  # every map has 1 cell
    finest = resolve_target_layer(model, "auto:1000")  # none that large: the finest map
    assert min(model.get_layer(finest).output.shape[1:-1]) == max(
        min(model.get_layer(n).output.shape[1:-1]) for n in names)


@pytest.mark.parametrize("bad", ["auto:", "auto:0", "auto:x", "auto:-2"])
def test_auto_n_needs_a_positive_integer(bad):
    from pipeline.config import ExplainParams

    with pytest.raises(ValueError, match="positive integer"):
        resolve_target_layer(small_cnn(2), bad)
    with pytest.raises(ValueError, match="auto:N"):
        ExplainParams(layer=bad)
    assert ExplainParams(layer="auto:8").layer == "auto:8"
