"""The typed sample geometry: what ingest applies, recorded once, inverted by report and predict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.preprocess.geometry import (
    PadResize,
    ResampleCrop,
    geometry_from_json,
    geometry_of,
)
from pipeline.preprocess.image import resize_with_pad
from pipeline.preprocess.volume import crop_or_pad, resample_to_spacing

sides = st.integers(min_value=1, max_value=300)


@settings(max_examples=60, deadline=None)
@given(h=sides, w=sides, out_h=st.integers(8, 96), out_w=st.integers(8, 96))
def test_pad_resize_is_what_resize_with_pad_applies_and_survives_the_manifest(h, w, out_h, out_w):
    image = np.zeros((h, w), np.float32)
    resized, loose = resize_with_pad(image, (out_h, out_w))
    geo = PadResize.fit((h, w), (out_h, out_w))
    assert resized.shape == geo.output_shape == (out_h, out_w)
    assert loose == {"scale": geo.scale, "pad_top": geo.pad_top, "pad_left": geo.pad_left}
    ch, cw = geo.content_shape
    assert geo.pad_top + ch <= out_h and geo.pad_left + cw <= out_w
    assert geometry_from_json(geo.to_json()) == geo
    assert geometry_of({"geometry": geo.to_json()}) == geo


@settings(max_examples=40, deadline=None)
@given(h=st.integers(4, 200), w=st.integers(4, 200))
def test_pad_resize_inverse_puts_a_model_grid_mark_back_on_the_source_pixel(h, w):
    geo = PadResize.fit((h, w), (32, 32))
    y, x = h // 2, w // 3
    source = np.zeros((h, w), np.float32)
    source[y, x] = 1.0
    grid, _ = resize_with_pad(source, (32, 32), mode="image")
    back = geo.to_source(grid, nearest=False)
    assert back.shape == (h, w)
    by, bx = np.unravel_index(np.argmax(back), back.shape)
    tol_y, tol_x = 1.5 / geo.scale + 1, 1.5 / geo.scale + 1
    assert abs(by - y) <= tol_y and abs(bx - x) <= tol_x
    with pytest.raises(ValueError, match="grid must be"):
        geo.to_source(np.zeros((16, 16)), nearest=True)


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(2, 20), st.integers(2, 24), st.integers(2, 24)),
       out=st.tuples(st.integers(2, 16), st.integers(2, 16), st.integers(2, 16)),
       spacing=st.tuples(*[st.sampled_from([0.7, 1.0, 2.5, 5.0])] * 3))
def test_resample_crop_records_both_steps_and_undoes_the_crop(shape, out, spacing):
    rng = np.random.default_rng(0)
    volume = rng.normal(size=shape).astype(np.float32)
    target = (2.0, 2.0, 2.0)
    resampled = resample_to_spacing(volume, spacing, target)
    cropped, info = crop_or_pad(resampled, out, pad_value=0.0)
    geo = ResampleCrop.from_steps(volume.shape, spacing, target, info)
    assert geometry_from_json(geo.to_json()) == geo
    assert geo.resampled_shape == resampled.shape and geo.output_shape == out
    back = geo.to_resampled(cropped)
    assert back.shape == resampled.shape
    inside = np.zeros(resampled.shape, bool)
    kept = tuple(slice(c, c + min(n, o))
                 for c, n, o in zip(geo.crop_before, resampled.shape, out, strict=True))
    inside[kept] = True
    np.testing.assert_allclose(back[inside], resampled[inside])  # the voxels the model saw
    assert np.all(back[~inside] == 0.0)  # cropped away: nothing to show


def test_resample_to_spacing_onto_a_given_grid_inverts_the_rounded_one():
    volume = np.zeros((7, 9, 11), np.float32)
    volume[2:5, 2:7, 3:8] = 1.0  # centred at (3, 4, 5)
    down = resample_to_spacing(volume, (1.0, 1.0, 1.0), (2.5, 2.5, 2.5))
    assert down.shape == (3, 4, 4)  # rounded
    up = resample_to_spacing(down, (2.5, 2.5, 2.5), (1.0, 1.0, 1.0), output_shape=volume.shape,
                             outside="zero")
    assert up.shape == volume.shape
    from scipy import ndimage

    centre = np.array(ndimage.center_of_mass(up))
    np.testing.assert_allclose(centre, (3, 4, 5), atol=0.5)  # field-of-view centres stay aligned
    edge = resample_to_spacing(np.ones((2, 2, 2)), (1, 1, 1), (1, 1, 1), output_shape=(4, 4, 4))
    zero = resample_to_spacing(np.ones((2, 2, 2)), (1, 1, 1), (1, 1, 1), output_shape=(4, 4, 4),
                               outside="zero")
    assert edge.min() == 1.0 and zero.min() == 0.0
    with pytest.raises(ValueError, match="outside must be"):
        resample_to_spacing(volume, (1, 1, 1), (1, 1, 1), outside="wrap")


@pytest.mark.parametrize("text", ['{"kind": "4d"}', '{"kind": "2d", "scale": 1}', "not json", "{}"])
def test_unreadable_geometry_says_to_rerun_ingest(text):
    with pytest.raises(ValueError, match="rerun ingest|kind must be"):
        geometry_from_json(text)
    with pytest.raises(ValueError, match="rerun ingest"):
        geometry_of({"sample_id": "S1"})
