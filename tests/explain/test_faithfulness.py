"""Deletion test and curve: a faithful map beats random masking, an unfaithful one is flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.explain import FILLS, compute_maps, deletion_curve, deletion_test
from pipeline.explain.faithfulness import _filler, _n_deleted, rank_by_map
from tests.explain.nets import region_model, small_cnn, square_images


@pytest.fixture(scope="module")
def region():
    model = region_model(2)
    images = square_images(2, n=4)
    return model, images, compute_maps(model, images)


@pytest.mark.parametrize("fill", FILLS)
def test_faithful_map_beats_random(region, fill):
    model, images, maps = region
    result = deletion_test(model, images, maps, fraction=0.1, n_random=4, fill=fill)
    summary = result.summary()
    assert summary["mean_p_original"] > 0.95
    assert summary["mean_drop_map"] > 0.9  # the square is gone: p ~ 0.02
    assert 0.0 < summary["mean_drop_random"] < 0.2  # ~10% of the square's pixels hit
    assert summary["ratio"] > 5 and summary["difference"] > 0.7
    assert summary["win_rate"] == 1.0 and summary["flag"] is False
    assert result.beats_random.all()
    json.dumps(summary)  # metrics-ready: plain types only


def test_inverted_map_is_flagged(region):
    model, images, maps = region
    summary = deletion_test(model, images, 1.0 - maps, fraction=0.1).summary()
    assert summary["mean_drop_map"] < summary["mean_drop_random"]
    assert summary["flag"] is True


def test_blank_map_scores_like_random(region):
    """Ties are broken at random: an all-zero map masks random pixels, not the first rows."""
    model, images, _ = region
    blank = np.zeros(images.shape[:-1], np.float32)
    result = deletion_test(model, images, blank, fraction=0.1, n_random=8, seed=1)
    assert abs(result.drop_map.mean() - result.drop_random.mean()) < 0.05


def test_seeded_and_reproducible(region):
    model, images, maps = region
    a = deletion_test(model, images, maps, seed=3)
    b = deletion_test(model, images, maps, seed=3)
    c = deletion_test(model, images, maps, seed=4)
    assert np.array_equal(a.drop_random, b.drop_random) and not np.array_equal(a.drop_random, c.drop_random)


def test_deletion_curve(region):
    model, images, maps = region
    curve = deletion_curve(model, images, maps, fractions=(0.0, 0.05, 0.2, 0.5), n_random=2)
    mean = curve.mean()
    assert mean["fraction"] == [0.0, 0.05, 0.2, 0.5]
    assert mean["map"][0] == pytest.approx(mean["random"][0]) and mean["map"][0] > 0.95  # unmasked
    assert mean["map"][-1] < 0.05 and min(mean["random"]) > 0.5
    assert all(a >= b - 1e-6 for a, b in zip(mean["map"], mean["map"][1:], strict=False))  # nested
    auc = curve.auc()
    assert auc["map"] < auc["random"]


def test_works_for_3d_and_multiclass():
    model = small_cnn(3, size=16, n_outputs=3, activation="softmax")
    images = np.random.default_rng(0).random((2, 16, 16, 16, 1)).astype(np.float32)
    maps = compute_maps(model, images)
    predicted = np.asarray(model(images)).argmax(axis=1)
    result = deletion_test(model, images, maps, class_index=predicted, n_random=2)
    assert result.drop_map.shape == (2,) and result.drop_random.shape == (2, 2)
    assert np.allclose(result.p_original, np.asarray(model(images)).max(axis=1), atol=1e-6)
    assert np.isfinite(result.drop_map).all()


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 6)),
              elements=st.sampled_from([0.0, 0.5, 1.0, np.nan])),
       st.integers(0, 2**16))
def test_rank_by_map_orders_values_and_shuffles_ties(heatmap, seed):
    order = rank_by_map(heatmap, np.random.default_rng(seed))
    assert sorted(order.tolist()) == list(range(heatmap.size))  # a permutation
    values = np.nan_to_num(heatmap.ravel()[order], nan=-1.0)  # map values are >= 0
    assert (np.diff(values) <= 0).all()  # highest first, NaN last


def test_ties_are_not_in_raster_order():
    orders = {tuple(rank_by_map(np.zeros((8, 8)), np.random.default_rng(s))[:6]) for s in range(5)}
    assert len(orders) == 5 and tuple(range(6)) not in orders


@given(st.floats(0.0, 1.0), st.integers(1, 10_000))
def test_n_deleted(fraction, n):
    k = _n_deleted(fraction, n, at_least_one=True)
    assert 1 <= k <= n and abs(k - fraction * n) <= max(0.5, 1 - fraction * n) + 1e-9


def test_fills():
    image = np.random.default_rng(0).random((16, 16, 1)).astype(np.float32)
    assert (_filler(image, "zero") == 0).all()
    assert np.allclose(_filler(image, "mean"), image.mean())
    blurred = _filler(image, "blur")
    assert blurred.shape == image.shape and blurred.std() < image.std() / 2


def test_argument_errors(region):
    model, images, maps = region
    with pytest.raises(ValueError, match="fraction must be in"):
        deletion_test(model, images, maps, fraction=0.0)
    with pytest.raises(ValueError, match="fill must be one of"):
        deletion_test(model, images, maps, fill="noise")
    with pytest.raises(ValueError, match="n_random must be"):
        deletion_test(model, images, maps, n_random=0)
    with pytest.raises(ValueError, match="maps"):
        deletion_test(model, images, maps[:, :8])
    with pytest.raises(ValueError, match="fractions must be ascending"):
        deletion_curve(model, images, maps, fractions=(0.5, 0.1))
