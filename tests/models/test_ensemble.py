"""The ensemble model: mean of the members' probabilities, safe-mode round trip, float32 output."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.models import build_ensemble, build_model, ensemble_members
from pipeline.train.card import load_model


def _member(seed: int, *, kind: str = "2d", n_outputs: int = 1, activation: str = "sigmoid"):
    keras.utils.set_random_seed(seed)
    if kind == "2d":
        return build_model(kind="2d", backbone="resnet18", input_shape=(32, 32, 1), n_outputs=n_outputs,
                           activation=activation, weights=None, base_width=4)
    return build_model(kind="3d", backbone="resnet18_3d", input_shape=(8, 16, 16, 1), n_outputs=n_outputs,
                       activation=activation, weights=None, base_width=4)


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_saved_ensemble_loads_in_safe_mode_and_outputs_the_members_mean(tmp_path, kind):
    activation, k = ("sigmoid", 1) if kind == "2d" else ("softmax", 3)
    ensemble = build_ensemble([_member(s, kind=kind, n_outputs=k, activation=activation) for s in (0, 1, 2)])
    ensemble.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")  # safe_mode=True, no custom objects
    members = ensemble_members(loaded)
    assert [m.name for m in members] == ["member_0", "member_1", "member_2"]
    x = np.random.default_rng(0).random((3, *loaded.inputs[0].shape[1:]), dtype=np.float32)
    out = np.asarray(loaded.predict_on_batch(x))
    mean = np.mean([np.asarray(m(x, training=False)) for m in members], axis=0)
    np.testing.assert_allclose(out, mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out, np.asarray(ensemble(x, training=False)), rtol=1e-6, atol=1e-7)
    assert out.shape == (3, k)
    for got, ref in zip(loaded.get_weights(), ensemble.get_weights(), strict=True):
        np.testing.assert_array_equal(got, ref)


def test_mixed_precision_members_give_a_float32_output(tmp_path):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        ensemble = build_ensemble([_member(0), _member(1)])
        ensemble.save(tmp_path / "model.keras")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    loaded = load_model(tmp_path / "model.keras")
    assert loaded.output.dtype == "float32"
    assert ensemble_members(loaded)[0].get_layer("conv1_conv").compute_dtype == "bfloat16"
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    assert np.asarray(loaded.predict_on_batch(x)).dtype == np.float32


def test_single_models_are_not_ensembles_and_bad_members_are_refused():
    single = _member(0)
    assert ensemble_members(single) is None
    with pytest.raises(ValueError, match="at least 2 members. Received: 1"):
        build_ensemble([single])
    other = build_model(kind="2d", backbone="resnet18", input_shape=(48, 48, 1), n_outputs=1,
                        activation="sigmoid", weights=None, base_width=4)
    with pytest.raises(ValueError, match="share one input and one output shape"):
        build_ensemble([single, other])
