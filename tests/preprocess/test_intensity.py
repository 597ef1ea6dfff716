"""VOI windowing: float32 implementation against pydicom's reference apply_windowing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

from pipeline.preprocess.intensity import percentiles, voi_window


def _dataset(center: float, width: float, function: str, *, signed: bool, slope: float,
             intercept: float) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 12
    ds.PixelRepresentation = int(signed)
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.WindowCenter = center
    ds.WindowWidth = width
    ds.VOILUTFunction = function
    return ds


def _pydicom_normalised(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """pydicom's output mapped from its output range [y_min, y_max] to [0, 1]."""
    bits = ds.BitsStored
    y_min, y_max = ((0.0, 2.0**bits - 1) if not ds.PixelRepresentation
                    else (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1))
    y_min, y_max = (y * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for y in (y_min, y_max))
    return (apply_windowing(values.astype(np.float64), ds) - y_min) / (y_max - y_min)


@settings(max_examples=150, deadline=None)
@given(
    center=st.floats(-1000, 3000),
    width=st.floats(1, 4000),
    function=st.sampled_from(["LINEAR", "LINEAR_EXACT", "SIGMOID"]),
    signed=st.booleans(),
    slope=st.sampled_from([1.0, 0.5, 2.0, -1.0]),
    intercept=st.sampled_from([0.0, -1024.0, 100.0]),
)
def test_voi_window_matches_pydicom(center, width, function, signed, slope, intercept):
    values = np.linspace(-2048, 4096, 997)
    ds = _dataset(center, width, function, signed=signed, slope=slope, intercept=intercept)
    ours = voi_window(values, center, width, function)
    assert ours.dtype == np.float32
    assert ours.min() >= 0.0 and ours.max() <= 1.0
    # float32 rounding of |values| <= 4096 is <= 2.5e-4 / width: far below one uint8 step (1/255)
    with np.errstate(over="ignore"):
        reference = _pydicom_normalised(values, ds)
    np.testing.assert_allclose(ours, reference, atol=5e-4)


def test_linear_width_one_is_a_threshold():
    out = voi_window(np.array([99.0, 99.5, 99.6, 100.0]), 100.0, 1.0)
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.0, 1.0])


def test_absent_function_means_linear():
    values = np.arange(0, 200, dtype=np.float64)
    np.testing.assert_array_equal(voi_window(values, 100, 50, ""), voi_window(values, 100, 50, "LINEAR"))


@pytest.mark.parametrize(("width", "function", "match"), [
    (0.5, "LINEAR", ">= 1"),
    (0.0, "LINEAR_EXACT", "> 0"),
    (-1.0, "SIGMOID", "> 0"),
    (10.0, "GAMMA", "'LINEAR', 'LINEAR_EXACT' or 'SIGMOID'"),
])
def test_bad_window_names_the_rule(width, function, match):
    with pytest.raises(ValueError, match=match):
        voi_window(np.zeros(3), 0.0, width, function)


@settings(max_examples=100, deadline=None)
@given(
    data=st.lists(st.integers(-40000, 70000), min_size=1, max_size=400),
    qs=st.lists(st.floats(0, 100), min_size=1, max_size=4),
    dtype=st.sampled_from([np.int16, np.int32, np.int64, np.uint16, np.uint8]),
    large=st.booleans(),
)
def test_integer_percentiles_equal_numpy_and_both_paths_agree_to_the_bit(data, qs, dtype, large):
    """Small integer arrays are sorted, larger ones counted (``np.bincount``): both give numpy's
    percentiles, and the same bits as each other (a sample's intensities do not depend on the
    path its size picks)."""
    from unittest import mock

    from pipeline.preprocess import intensity

    info = np.iinfo(dtype)
    values = np.clip(np.array(data), info.min, info.max).astype(dtype)
    if large:  # past the sorting limit: the histogram path
        values = np.resize(values, intensity._SORT_MAX_SIZE + 1 + len(data))
    got = percentiles(values, tuple(qs))
    # the reference in int64: numpy interpolates int16 data in int16 and can overflow
    np.testing.assert_allclose(got, np.percentile(values.astype(np.int64), qs), rtol=1e-12, atol=1e-9)
    limit = 0 if values.size <= intensity._SORT_MAX_SIZE else values.size  # the other path
    with mock.patch.object(intensity, "_SORT_MAX_SIZE", limit):
        np.testing.assert_array_equal(percentiles(values, tuple(qs)), got)


def test_percentiles_of_float_and_wide_integer_data_fall_back_to_numpy():
    rng = np.random.default_rng(0)
    floats = rng.normal(size=1000)
    wide = np.array([0, 1, 2, 1 << 40], dtype=np.int64)
    for values in (floats, wide):
        np.testing.assert_allclose(percentiles(values, (0.5, 50, 99.5)),
                                   np.percentile(values, [0.5, 50, 99.5]))
