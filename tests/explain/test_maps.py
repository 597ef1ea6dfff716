"""Upsampling and normalisation shared by every method (pure array code, hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.explain.maps import normalize, to_input_grid, upsample

_values = st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from([np.nan, np.inf, -np.inf]))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
              elements=_values))
def test_normalize_range_and_peak(maps):
    out = normalize(maps)
    assert out.dtype == np.float32 and out.shape == maps.shape
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    for raw, m in zip(maps, out, strict=True):
        if not np.isfinite(raw).all() or raw.max() <= 1e-12:
            assert (m == 0).all()  # no finite positive evidence: blank map
        else:
            assert m.max() == pytest.approx(1.0)
            assert np.allclose(m, np.maximum(raw, 0) / raw.max(), atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, st.tuples(st.just(2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
              elements=st.floats(0, 10, width=32)),
       st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)))
def test_upsample_3d_stays_within_range(cams, shape):
    out = upsample(cams, shape)
    assert out.shape == (2, *shape)
    for raw, up in zip(cams, out, strict=True):
        assert raw.min() - 1e-4 <= up.min() and up.max() <= raw.max() + 1e-4  # linear interpolation


def test_upsample_uses_half_pixel_centres():
    cams = np.zeros((1, 4, 4), np.float32)
    cams[0, 1, 2] = 1.0  # feature cell of a stride-8 map: pixels 8..15 x 16..23
    peak = np.unravel_index(upsample(cams, (32, 32))[0].argmax(), (32, 32))
    assert 8 <= peak[0] <= 15 and 16 <= peak[1] <= 23
    vol = np.zeros((1, 2, 4, 4), np.float32)
    vol[0, 1, 1, 2] = 1.0
    peak3 = np.unravel_index(upsample(vol, (8, 32, 32))[0].argmax(), (8, 32, 32))
    assert 4 <= peak3[0] <= 7 and 8 <= peak3[1] <= 15 and 16 <= peak3[2] <= 23
    # 2D and 3D agree: a volume of identical slices upsamples to identical 2D maps.
    same = np.repeat(cams[:, None], 3, axis=1)
    assert np.allclose(upsample(same, (5, 32, 32))[0, 2], upsample(cams, (32, 32))[0], atol=1e-6)


def test_to_input_grid_blanks_maps_with_nan():
    cams = np.ones((2, 3, 3), np.float32)
    cams[1, 0, 0] = np.nan
    out = to_input_grid(cams, (6, 6))
    assert (out[0] == 1).all() and (out[1] == 0).all()


def test_upsample_rejects_rank_mismatch():
    with pytest.raises(ValueError, match="both be 2D or 3D"):
        upsample(np.zeros((1, 2, 2), np.float32), (4, 4, 4))
