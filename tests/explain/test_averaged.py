"""View-averaged maps (``explain.tta``): the mean of a map over shifted and mirrored views, each
moved back onto the original grid (:mod:`pipeline.explain.averaged`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.explain.averaged import view_averaged_maps
from tests.explain.nets import GEOMETRY, region_model, small_cnn, square_images


def _normalised(a: np.ndarray) -> np.ndarray:
    peak = a.reshape(len(a), -1).max(axis=1).reshape(-1, *([1] * (a.ndim - 1)))
    return (a / np.maximum(peak, 1e-12)).astype(np.float32)


def _intensity(batch: np.ndarray) -> np.ndarray:
    """A map that is the image itself (values in (0, 1]): moves exactly with the image."""
    return np.asarray(batch[..., 0], np.float32)


@settings(max_examples=25, deadline=None)
@given(rank=st.sampled_from([2, 3]), mode=st.sampled_from(["flip", "shift", "flip_shift"]),
       seed=st.integers(0, 2**16))
def test_an_equivariant_map_comes_back_unchanged(rank, mode, seed):
    """Each view's map, moved back, equals the original's wherever the view covers the pixel; the
    per-pixel mean over the covering views is therefore the original map, borders included."""
    shape = (2, 20, 24, 1) if rank == 2 else (2, 6, 20, 24, 1)
    images = np.random.default_rng(seed).random(shape).astype(np.float32) + 0.01
    got = view_averaged_maps(_intensity, images, mode)
    np.testing.assert_allclose(got, _normalised(_intensity(images)), atol=1e-6)


def test_none_is_the_plain_map_and_a_bad_mode_names_the_choices():
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    assert view_averaged_maps(_intensity, images, "none") is not None
    np.testing.assert_array_equal(view_averaged_maps(_intensity, images, "none"), images[..., 0])
    with pytest.raises(ValueError, match=r"tta must be one of \['none', 'flip', 'shift', 'flip_shift'\]"):
        view_averaged_maps(_intensity, images, "rotate")


def _coarse(batch: np.ndarray, cell: int = 16) -> np.ndarray:
    """A map read off a coarse grid (cell means, repeated back): peaks snap to whole cells."""
    n, h, w = batch.shape[:3]
    cells = batch[..., 0].reshape(n, h // cell, cell, w // cell, cell).mean(axis=(2, 4))
    return _normalised(np.repeat(np.repeat(cells, cell, axis=1), cell, axis=2))


def test_averaging_puts_a_coarse_maps_peak_nearer_the_evidence():
    """A blob straddling a cell border: one coarse map's peak is a whole cell, up to a cell away;
    the averaged map peaks within a few pixels of the blob's centre."""
    size, centre = 128, np.array([66.0, 34.0])  # 2 px past the cell borders at 64 and 32
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * 6.0**2))
    images = blob[None, ..., None].astype(np.float32)

    def peak_distance(maps: np.ndarray) -> float:
        top = np.argwhere(maps[0] >= maps[0].max() - 1e-6).mean(axis=0)
        return float(np.linalg.norm(top - centre))

    plain = peak_distance(_coarse(images))
    averaged = peak_distance(view_averaged_maps(_coarse, images, "flip_shift"))
    assert plain > 5.0 and averaged < plain / 2, (plain, averaged)


@pytest.mark.parametrize("rank", [2, 3])
def test_explainer_averages_the_views_with_the_class_of_the_original(rank):
    from pipeline.explain import Explainer

    model = small_cnn(rank, size=16, n_outputs=3, activation="softmax")
    images = np.random.default_rng(1).random((3,) + (16,) * rank + (1,)).astype(np.float32)
    explainer = Explainer(model, layer="last")
    classes = np.asarray(model(images)).argmax(axis=1)
    got = explainer.maps(images, method="gradcam", tta="flip_shift")
    expected = view_averaged_maps(lambda b: explainer.maps(b, method="gradcam", class_index=classes),
                                  images, "flip_shift")
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got.shape == images.shape[:-1] and got.max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="tta must be one of"):
        explainer.maps(images, tta="mirror")


@pytest.mark.parametrize("rank", [2, 3])
def test_averaged_maps_still_find_the_evidence_and_pass_the_deletion_check(rank):
    from pipeline.explain import Explainer, deletion_test

    model, images = region_model(rank), square_images(rank, n=4)
    maps = Explainer(model, layer="features").maps(images, method="gradcam", tta="flip_shift")
    geo = GEOMETRY[rank]
    inside = (slice(None), *(slice(*geo["square"]),) * rank)
    outside = (slice(None), *(slice(*geo["distractor"]),) * rank)
    assert maps[inside].mean() > 3 * maps[outside].mean()
    result = deletion_test(model, images, maps, fraction=0.05, n_random=3, seed=0, batch_size=4)
    assert not result.summary(scored_on="predicted")["flag"]
