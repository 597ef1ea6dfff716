"""Deletion test and curve: a faithful map beats random masking, an unfaithful one is flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.explain import FILLS, DeletionResult, compute_maps, deletion_curve, deletion_test
from pipeline.explain.imputation import noisy_linear_imputation
from pipeline.explain.masking import _filler, _n_deleted, rank_by_map
from tests.explain.nets import GEOMETRY, region_model, small_cnn, square_images


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


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 9)),
              elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, np.nan])),
       st.integers(0, 2**16), st.integers(0, 90))
def test_the_top_of_the_ranking_is_the_full_rankings_prefix(heatmap, seed, top):
    """Partition-then-sort gives the same first ``top`` indices as sorting everything, ties (in
    the random keys' order) and NaN included, and leaves the generator in the same state."""
    rng_full, rng_top = np.random.default_rng(seed), np.random.default_rng(seed)
    full = rank_by_map(heatmap, rng_full)
    head = rank_by_map(heatmap, rng_top, top=top)
    np.testing.assert_array_equal(head, full[:top])
    assert rng_full.random() == rng_top.random()  # the same draws: later masks are unchanged


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


# ------------------------------------------------------------------------------ ROAD


def _ramp(shape: tuple[int, ...], channels: int = 2) -> np.ndarray:
    """``(1, *shape, C)`` linear ramps, a different slope per channel."""
    grid = np.indices(shape, dtype=np.float32)
    slopes = np.array([0.3, -0.2, 0.5][: len(shape)], np.float32)
    ramp = np.tensordot(slopes, grid, axes=1)
    return np.stack([ramp * (c + 1) + c for c in range(channels)], axis=-1)[None]


@pytest.mark.parametrize(("shape", "hole"), [((20, 24), np.s_[3:14, 5:20]),
                                             ((12, 14, 16), np.s_[2:9, 3:11, 4:14])])
def test_road_restores_a_linear_ramp(shape, hole):
    """Each removed pixel is its neighbours' weighted mean: exact for a ramp (interior hole)."""
    image = _ramp(shape)
    removed = np.zeros((1, *shape), bool)
    removed[(0, *hole)] = True
    removed[(0, *(n // 2 + 1 for n in shape))] = False  # a known island inside the hole
    before = image.copy()
    out = noisy_linear_imputation(image, removed, noise=0.0)
    np.testing.assert_array_equal(image, before)  # input untouched
    np.testing.assert_allclose(out, image, atol=1e-4)
    flat = image[0, ..., 0].copy()
    flat[hole] = flat.mean()  # what a mean fill would give: far off
    assert np.abs(flat - image[0, ..., 0]).max() > 1.0


def test_road_on_broadcast_batches_and_isolated_pixels():
    image = _ramp((16, 16), channels=1)[0]
    removed = np.zeros((3, 16, 16), bool)
    removed[0, 4:12, 4:12] = True
    removed[1, 1:15:3, 2:15:4] = True  # scattered pixels, as a random deletion mask
    out = noisy_linear_imputation(np.broadcast_to(image, (3, *image.shape)), removed, noise=0.0)
    np.testing.assert_allclose(out, np.broadcast_to(image, out.shape), atol=1e-4)


@pytest.mark.parametrize("shape", [(18, 20), (10, 12, 14)])
def test_road_imputes_an_image_the_same_alone_or_in_any_batch(shape):
    """Each image's system is solved on its own, to its own tolerance: the deletion test's
    variants do not change with the batch size that chunks them (a compact hole next to
    scattered pixels, which converge in far fewer iterations)."""
    rng = np.random.default_rng(3)
    images = rng.normal(size=(3, *shape, 2)).astype(np.float32)
    removed = rng.random((3, *shape)) < 0.1  # scattered, as random deletions
    removed[(1, *(slice(2, n - 3) for n in shape))] = True  # compact, as a map's top pixels
    together = noisy_linear_imputation(images, removed, noise=0.0)
    for i in range(3):
        alone = noisy_linear_imputation(images[i:i + 1], removed[i:i + 1], noise=0.0)
        np.testing.assert_array_equal(alone[0], together[i])
    reordered = noisy_linear_imputation(images[::-1], removed[::-1], noise=0.0)
    np.testing.assert_array_equal(reordered[::-1], together)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([(9, 11), (5, 6, 7)]), st.floats(0.0, 1.0),
       st.floats(0.0, 0.5), st.integers(1, 3))
def test_road_values_are_finite_in_range_and_only_where_removed(seed, shape, share, noise, channels):
    rng = np.random.default_rng(seed)
    images = (rng.normal(size=(2, *shape, channels)) * 100).astype(np.float32)
    removed = rng.random((2, *shape)) < share
    out = noisy_linear_imputation(images, removed, noise=noise, rng=rng)
    assert out.shape == images.shape and out.dtype == np.float32 and np.isfinite(out).all()
    axes = tuple(range(1, images.ndim - 1))
    lo, hi = images.min(axis=axes, keepdims=True), images.max(axis=axes, keepdims=True)
    assert (out >= lo).all() and (out <= hi).all()
    np.testing.assert_array_equal(out[~removed], images[~removed])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([(1, 7), (6, 9), (3, 4, 5), (2, 6, 3)]), st.floats(0.05, 0.9),
       st.integers(1, 2))
def test_road_solves_the_neighbour_mean_equations_up_to_the_borders(seed, shape, share, channels):
    """Without noise, every removed pixel is the weighted mean of its in-bounds neighbours
    (weight 1 / number of offset axes), removed neighbours included: at edges and corners too,
    and never across two images of the batch."""
    import itertools

    rng = np.random.default_rng(seed)
    images = rng.normal(size=(3, *shape, channels)).astype(np.float32)
    removed = rng.random((3, *shape)) < share
    removed[0] = False  # a batch member with nothing removed, next to ones with borders removed
    removed[(1, *(0,) * len(shape))] = removed[(2, *(n - 1 for n in shape))] = True  # corners
    for member in removed[1:]:  # an image removed entirely is filled with its mean instead
        if member.all():
            member[tuple(n // 2 for n in shape)] = False
    out = noisy_linear_imputation(images, removed, noise=0.0).astype(np.float64)
    for index in zip(*np.nonzero(removed), strict=True):
        total, weights = np.zeros(channels), 0.0
        for offset in itertools.product((-1, 0, 1), repeat=len(shape)):
            at = tuple(i + o for i, o in zip(index[1:], offset, strict=True))
            if any(offset) and all(0 <= a < n for a, n in zip(at, shape, strict=True)):
                weight = 1.0 / sum(map(abs, offset))
                total += weight * out[(index[0], *at)]
                weights += weight
        # a mean of known values lies within their range: the final clip changes nothing
        np.testing.assert_allclose(out[index], total / weights, atol=1e-4)
    np.testing.assert_array_equal(out[~removed], images[~removed])


def test_road_with_every_pixel_removed_gives_the_mean_and_noise_is_seeded():
    image = _ramp((8, 8))
    out = noisy_linear_imputation(image, np.ones((1, 8, 8), bool), noise=0.0)
    np.testing.assert_allclose(out, np.broadcast_to(image.mean(axis=(1, 2), keepdims=True), out.shape))
    removed = np.zeros((1, 8, 8), bool)
    removed[0, 2:6, 2:6] = True
    a, b, c = (noisy_linear_imputation(image, removed, noise=0.05, rng=np.random.default_rng(s))
               for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0 < np.abs(a - image).max() < 0.05 * image.std() * 6
    with pytest.raises(ValueError, match="rng is required"):
        noisy_linear_imputation(image, removed)
    with pytest.raises(ValueError, match="noise must be"):
        noisy_linear_imputation(image, removed, noise=-1.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="removed"):
        noisy_linear_imputation(image, removed[:, :4], noise=0.0)


@pytest.mark.parametrize("rank", [2, 3])
def test_road_deletion_passes_a_map_on_the_region_and_flags_a_random_one(rank):
    """The region model reads one square: a map on it passes, a random map is flagged."""
    model = region_model(rank)
    images = square_images(rank, n=4)
    geo = GEOMETRY[rank]
    on_square = np.zeros(images.shape[:-1], np.float32)
    on_square[(slice(None), *(slice(*geo["square"]),) * rank)] = 1.0
    good = deletion_test(model, images, on_square, fraction=0.1, n_random=4, fill="road")
    assert good.fill == "road" and good.order == "morf"
    summary = good.summary()
    assert summary["fill"] == "road" and summary["order"] == "morf"
    assert summary["mean_drop_map"] > 0.9 and summary["flag"] is False
    assert abs(summary["mean_drop_random"]) < 0.1  # scattered pixels are imputed back
    noise = np.random.default_rng(5).random(images.shape[:-1]).astype(np.float32)
    bad = deletion_test(model, images, noise, fraction=0.1, n_random=4, fill="road").summary()
    assert bad["flag"] is True and bad["mean_drop_map"] < 0.1


def test_lerf_order_rewards_a_map_whose_lowest_pixels_do_not_matter(region):
    model, images, maps = region
    good = deletion_test(model, images, maps, fraction=0.1, n_random=4, order="lerf")
    summary = good.summary()
    assert summary["order"] == "lerf" and summary["mean_drop_map"] < summary["mean_drop_random"]
    assert summary["flag"] is False and good.beats_random.all()
    inverted = deletion_test(model, images, 1.0 - maps, fraction=0.1, order="lerf").summary()
    assert inverted["mean_drop_map"] > 0.9 and inverted["flag"] is True
    curve = deletion_curve(model, images, maps, fractions=(0.0, 0.2, 0.5), n_random=2, order="lerf")
    assert curve.order == "lerf" and curve.auc()["map"] > curve.auc()["random"]


def test_deletion_result_keeps_its_positional_constructor():
    """``pipeline.explain.run._merge`` builds results from five positional fields."""
    result = DeletionResult(0.1, "mean", np.ones(2), np.array([0.5, 0.6]), np.zeros((2, 3)))
    assert result.order == "morf" and result.summary()["flag"] is False
    lerf = DeletionResult(0.1, "road", np.ones(2), np.zeros(2), np.ones((2, 3)), "lerf")
    assert lerf.summary()["flag"] is False and lerf.summary()["order"] == "lerf"


def test_argument_errors(region):
    model, images, maps = region
    with pytest.raises(ValueError, match="fraction must be in"):
        deletion_test(model, images, maps, fraction=0.0)
    with pytest.raises(ValueError, match="fill must be one of"):
        deletion_test(model, images, maps, fill="noise")
    with pytest.raises(ValueError, match=r"order must be one of \['morf', 'lerf'\]"):
        deletion_test(model, images, maps, order="random")
    with pytest.raises(ValueError, match="n_random must be"):
        deletion_test(model, images, maps, n_random=0)
    with pytest.raises(ValueError, match="maps"):
        deletion_test(model, images, maps[:, :8])
    with pytest.raises(ValueError, match="fractions must be ascending"):
        deletion_curve(model, images, maps, fractions=(0.5, 0.1))


def test_summary_on_predicted_images_ignores_maps_of_an_absent_class():
    """Negatives (p ~ 0) where masking 'creates' the finding must not flag a map that is
    faithful on the images the model calls positive; with too few of those, all are scored."""
    from pipeline.explain import DeletionResult

    p = np.array([0.9, 0.95, 0.8, 0.02, 0.01, 0.03, 0.02])
    drop_map = np.array([0.5, 0.6, 0.4, -0.3, -0.4, -0.3, -0.5])  # negatives: masking raises p
    drop_random = np.tile(np.array([[0.05], [0.05], [0.05], [0.0], [0.0], [0.0], [0.0]]), (1, 3))
    result = DeletionResult(0.1, "mean", p, drop_map, drop_random)
    everything = result.summary()
    assert everything["flag"] and everything["scored_on"] == "all" and everything["n_images"] == 7
    predicted = result.summary(scored_on="predicted")
    assert not predicted["flag"] and predicted["scored_on"] == "predicted"
    assert predicted["n_images"] == 3 and predicted["n_all_images"] == 7
    assert predicted["win_rate"] == 1.0
    few = result.summary(scored_on="predicted", min_images=4)
    assert few["scored_on"].startswith("all (fewer than 4") and few["n_images"] == 7
    with pytest.raises(ValueError, match="scored_on"):
        result.summary(scored_on="positives")
