"""Maps of an ensemble model: the normalised mean of its members' maps, for the ensemble's class,
with the target layer resolved inside each member (2D via tf-explain per member, 3D tf-keras-vis)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.explain import Explainer, average_maps, compute_maps, deletion_test
from pipeline.explain.maps import normalize
from pipeline.models import build_ensemble
from pipeline.train.card import load_model
from tests.explain.nets import box, region_model, small_cnn, square_images


def _noise(rank: int, n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n,) + (size,) * rank + (1,)).astype(np.float32)


def _saved_ensemble(tmp_path, members):
    """Through ``model.keras`` (safe mode), as the stages see it."""
    build_ensemble(members).save(tmp_path / "model.keras")
    return load_model(tmp_path / "model.keras")


@pytest.mark.parametrize(("rank", "method"), [(2, "gradcam"), (2, "gradcam++"), (3, "gradcam"),
                                              (3, "scorecam")])
def test_ensemble_map_is_the_normalised_mean_of_the_members_maps(tmp_path, rank, method):
    size, k = (32, 1) if rank == 2 else (16, 3)
    activation = "sigmoid" if k == 1 else "softmax"
    ensemble = _saved_ensemble(tmp_path, [small_cnn(rank, size=size, n_outputs=k, activation=activation,
                                                    seed=s) for s in (0, 1)])
    images = _noise(rank, 3, size)
    explainer = Explainer(ensemble)
    assert len(explainer.members) == 2 and explainer.view is None
    assert explainer.layer == "last"  # resolved inside each member
    got = explainer.maps(images, method=method, batch_size=2, max_n=4)
    classes = ensemble.predict_on_batch(images).argmax(axis=1) if k > 1 else 0  # the ensemble's class
    singles = [compute_maps(ensemble.get_layer(name), images, method=method, class_index=classes,
                            batch_size=2, max_n=4) for name in ("member_0", "member_1")]
    assert not np.allclose(singles[0], singles[1], atol=1e-3)  # two different members
    np.testing.assert_allclose(got, normalize(np.mean(singles, axis=0)), atol=1e-5)
    assert got.shape == images.shape[:-1] and np.allclose(got.reshape(3, -1).max(axis=1), 1.0)


def test_target_layer_settings_resolve_inside_each_member(tmp_path):
    ensemble = _saved_ensemble(tmp_path, [small_cnn(2, seed=s) for s in (0, 1)])
    assert Explainer(ensemble, layer="first").layer == "first"
    assert Explainer(ensemble, layer="auto:32").layer == "first"  # 32x32 before pooling, 16x16 after
    assert Explainer(ensemble, layer="auto:16").layer == "last"
    with pytest.raises(ValueError, match="it must be 'auto', 'auto:N'"):
        Explainer(ensemble, layer="member_0")  # a member is not a feature map of a member


@pytest.mark.parametrize("rank", [2, 3])
def test_ensemble_of_region_models_localises_and_passes_the_deletion_test(tmp_path, rank):
    ensemble = _saved_ensemble(tmp_path, [region_model(rank), region_model(rank)])
    images = square_images(rank, n=2)
    maps = compute_maps(ensemble, images)
    for heatmap in maps:
        assert heatmap[box(rank, "square")].mean() > 0.7
        assert heatmap[box(rank, "distractor")].max() == 0.0
    result = deletion_test(ensemble, images, maps, fraction=0.05, n_random=3)
    assert result.summary()["difference"] > 0.0 and not result.summary()["flag"]


def test_mixed_precision_ensemble_maps_are_finite(tmp_path, bfloat16_policy):
    members = [small_cnn(2, seed=s) for s in (0, 1)]
    ensemble = _saved_ensemble(tmp_path, members)
    assert ensemble.output.dtype == "float32"
    maps = compute_maps(ensemble, _noise(2, 2, 32))
    assert maps.dtype == np.float32 and np.isfinite(maps).all() and maps.max() == pytest.approx(1.0)


def test_average_maps_normalises_the_mean_and_keeps_blank_members_as_zero():
    a = np.zeros((1, 4, 4), np.float32)
    a[0, 0, 0] = 1.0
    b = np.zeros((1, 4, 4), np.float32)
    b[0, 3, 3], b[0, 0, 0] = 1.0, 0.5
    mean = average_maps([a, b])
    assert mean[0, 0, 0] == pytest.approx(1.0) and mean[0, 3, 3] == pytest.approx(1 / 1.5)
    assert (average_maps([a, np.zeros_like(a)]) == a).all()  # blank member: same peak, renormalised
    assert (average_maps([np.zeros_like(a)] * 2) == 0).all()
    with pytest.raises(ValueError, match="of one shape"):
        average_maps([a, np.zeros((1, 4, 5), np.float32)])
    with pytest.raises(ValueError, match="of one shape"):
        average_maps([])
