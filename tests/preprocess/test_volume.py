from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.preprocess.volume import (
    crop_or_pad,
    mask_coverage,
    resample_mask,
    resample_to_spacing,
    uncrop_or_pad,
    window_hu,
)


def _ramp(shape, spacing):
    """Value = physical position (mm) of the voxel centre along axis 0."""
    return np.broadcast_to((np.arange(shape[0]) * spacing[0])[:, None, None], shape).astype(
        np.float32
    )


def test_resample_shape_and_dtype():
    volume = np.zeros((12, 14, 16), dtype=np.int16)
    out = resample_to_spacing(volume, (2.5, 0.9, 0.8), (1.0, 1.0, 1.0))
    assert out.shape == (30, 13, 13) and out.dtype == np.float32


def test_resample_keeps_voxel_centres_and_fov_centre():
    shape, spacing, target = (12, 4, 4), (2.5, 1.0, 1.0), (1.0, 1.0, 1.0)
    out = resample_to_spacing(_ramp(shape, spacing), spacing, target)
    n, m = shape[0], out.shape[0]
    centres = (n - 1) * spacing[0] / 2 + (np.arange(m) - (m - 1) / 2) * target[0]
    inside = (centres >= 0) & (centres <= (n - 1) * spacing[0])
    np.testing.assert_allclose(out[inside, 0, 0], centres[inside], atol=1e-4)
    assert out[~inside, 0, 0] == pytest.approx(np.clip(centres[~inside], 0, (n - 1) * 2.5))


def test_resample_round_trip_restores_shape_and_values():
    spacing = (3.0, 0.7, 0.7)
    h, w = np.indices((10, 10))
    smooth = _ramp((10, 10, 10), spacing) + (np.sin(0.3 * h) + np.cos(0.2 * w))[None]
    there = resample_to_spacing(smooth, spacing, (1.0, 1.0, 1.0))
    back = resample_to_spacing(there, (1.0, 1.0, 1.0), spacing)
    assert back.shape == smooth.shape
    np.testing.assert_allclose(back[2:-2, 2:-2, 2:-2], smooth[2:-2, 2:-2, 2:-2], atol=0.05)


def test_resample_order_zero_keeps_labels_binary_and_input_untouched():
    rng = np.random.default_rng(1)
    mask = (rng.random((9, 11, 13)) > 0.7).astype(np.uint8)
    before = mask.copy()
    out = resample_to_spacing(mask, (3.0, 1.0, 1.0), (1.3, 0.6, 1.7), order=0)
    assert set(np.unique(out)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask, before)


@pytest.mark.parametrize("bad", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, np.nan, 1.0)])
def test_resample_rejects_bad_spacing(bad):
    with pytest.raises(ValueError, match="Received"):
        resample_to_spacing(np.zeros((2, 2, 2)), bad, (1.0, 1.0, 1.0))


def test_resample_rejects_bad_order():
    with pytest.raises(ValueError, match="order"):
        resample_to_spacing(np.zeros((2, 2, 2)), (1, 1, 1), (1, 1, 1), order=7)


def test_crop_or_pad_shape_pad_value_and_offsets():
    volume = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    before = volume.copy()
    out, info = crop_or_pad(volume, (6, 6, 4), pad_value=-1024.0)
    assert out.shape == (6, 6, 4) and out.dtype == np.float32
    assert info["offset"] == [1, 0, -2]
    assert np.all(out[0] == -1024.0) and np.all(out[-1] == -1024.0)
    np.testing.assert_array_equal(out[1:5], volume[:, :, 2:6])
    np.testing.assert_array_equal(volume, before)
    json.dumps(info)


def test_uncrop_inverts_crop_or_pad():
    volume = np.arange(5 * 7 * 9, dtype=np.float32).reshape(5, 7, 9)
    out, info = crop_or_pad(volume, (8, 4, 9), pad_value=0.0)
    restored = uncrop_or_pad(out, info, pad_value=-1.0)
    assert restored.shape == volume.shape
    np.testing.assert_array_equal(restored[:, 1:5, :], volume[:, 1:5, :])
    assert np.all(restored[:, [0, 5, 6], :] == -1.0)


def test_crop_or_pad_rejects_bad_shape():
    with pytest.raises(ValueError, match="Received"):
        crop_or_pad(np.zeros((2, 2, 2)), (2, 2), pad_value=0.0)


def _sphere(n: int, centre: np.ndarray, diameter: float) -> np.ndarray:
    """Boolean ball on an ``n``-cube of 1 mm voxels."""
    z, y, x = np.indices((n, n, n), dtype=np.float64)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= (diameter / 2) ** 2


@settings(max_examples=40, deadline=None)
@given(data=st.data(), steps=st.tuples(*[st.integers(1, 4)] * 3), blocks=st.tuples(*[st.integers(1, 4)] * 3))
def test_mask_coverage_conserves_volume_and_stays_in_unit_range(data, steps, blocks):
    shape = tuple(s * b for s, b in zip(steps, blocks, strict=True))
    mask = data.draw(st.lists(st.booleans(), min_size=int(np.prod(shape)),
                              max_size=int(np.prod(shape))))
    mask = np.array(mask, dtype=bool).reshape(shape)
    spacing = (0.5, 1.0, 2.0)
    target = tuple(sp * s for sp, s in zip(spacing, steps, strict=True))
    cov = mask_coverage(mask, spacing, target)
    assert cov.shape == blocks and cov.dtype == np.float32
    assert cov.min() >= 0.0 and cov.max() <= 1.0
    assert cov.sum() * np.prod(target) == pytest.approx(mask.sum() * np.prod(spacing), abs=1e-3)


def test_mask_coverage_is_the_block_average_for_integer_ratios():
    rng = np.random.default_rng(3)
    mask = rng.random((6, 9, 4)) > 0.5
    cov = mask_coverage(mask, (1.0, 1.0, 1.0), (2.0, 3.0, 1.0))
    np.testing.assert_allclose(cov, mask.reshape(3, 2, 3, 3, 4, 1).mean(axis=(1, 3, 5)), atol=1e-6)


@pytest.mark.parametrize("diameter", [3.0, 4.0, 6.0])
def test_resample_mask_never_drops_a_lesion_smaller_than_a_voxel(diameter):
    """At 5 mm, nearest neighbour loses most 4 mm spheres; the kept voxel is the best-covered."""
    rng = np.random.default_rng(int(diameter))
    lost_by_nearest = 0
    for _ in range(25):
        centre = 20.0 + rng.uniform(-2.5, 2.5, 3)
        ball = _sphere(41, centre, diameter)
        before = ball.copy()
        out = resample_mask(ball, (1, 1, 1), (5, 5, 5))
        np.testing.assert_array_equal(ball, before)
        assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
        assert 1 <= out.sum() <= 2
        nearest = resample_to_spacing(ball.astype(np.float32), (1, 1, 1), (5, 5, 5), order=0)
        if not (nearest > 0.5).any():
            lost_by_nearest += 1
            cov = mask_coverage(ball, (1, 1, 1), (5, 5, 5))
            assert out.sum() == 1 and cov[out > 0].max() == cov.max()
    assert diameter > 5 or lost_by_nearest > 0  # the case keep_small exists for
    empty = resample_mask(np.zeros((10, 10, 10)), (1, 1, 1), (5, 5, 5))
    assert empty.shape == (2, 2, 2) and not empty.any()


@pytest.mark.parametrize("diameter", [10.0, 16.0, 30.0])
def test_resample_mask_keeps_larger_lesion_volumes(diameter):
    rng = np.random.default_rng(7)
    ratios = []
    for _ in range(10):
        ball = _sphere(61, 30.0 + rng.uniform(-2.5, 2.5, 3), diameter)
        out = resample_mask(ball, (1.0, 1.0, 1.0), (5.0, 5.0, 5.0))
        nearest = resample_to_spacing(ball.astype(np.float32), (1, 1, 1), (5, 5, 5), order=0)
        np.testing.assert_array_equal(out, nearest > 0.5)  # nothing added when nothing is lost
        ratios.append(out.sum() * 125.0 / ball.sum())
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.1)


def test_resample_mask_without_keep_small_is_nearest_neighbour():
    rng = np.random.default_rng(2)
    mask = rng.random((9, 11, 13)) > 0.9
    out = resample_mask(mask, (3.0, 1.0, 1.0), (1.3, 2.6, 1.7), keep_small=False)
    nearest = resample_to_spacing(mask.astype(np.float32), (3.0, 1.0, 1.0), (1.3, 2.6, 1.7), order=0)
    np.testing.assert_array_equal(out, nearest > 0.5)


dims = st.integers(min_value=1, max_value=9)


@settings(max_examples=60, deadline=None)
@given(shape_in=st.tuples(dims, dims, dims), shape_out=st.tuples(dims, dims, dims))
def test_crop_or_pad_property(shape_in, shape_out):
    volume = np.zeros(shape_in, dtype=np.float32)
    centre = tuple((n - 1) // 2 for n in shape_in)
    volume[centre] = 1.0
    out, info = crop_or_pad(volume, shape_out, pad_value=-5.0)
    assert out.shape == shape_out
    mapped = tuple(c + o for c, o in zip(centre, info["offset"], strict=True))
    assert all(0 <= i < n for i, n in zip(mapped, shape_out, strict=True))
    assert out[mapped] == 1.0 and np.count_nonzero(out == 1.0) == 1
    back = uncrop_or_pad(out, info, pad_value=0.0)
    assert back.shape == shape_in and back[centre] == 1.0


def test_window_hu_linear_and_clipped():
    values = np.array([-1000.0, -160.0, 40.0, 140.0, 240.0, 3000.0])
    out = window_hu(values, 40.0, 400.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 0.75, 1.0, 1.0])


def test_window_hu_rejects_non_positive_width():
    with pytest.raises(ValueError, match="width"):
        window_hu(np.zeros(3), 0.0, 0.0)
