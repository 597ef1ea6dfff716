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
