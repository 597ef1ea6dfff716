from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.preprocess.image import resize_with_pad
from pipeline.preprocess.intensity import linear_window, percentile_window


@settings(max_examples=40, deadline=None)
@given(h=st.integers(16, 300), w=st.integers(16, 300), oh=st.integers(8, 64), ow=st.integers(8, 64),
       y=st.floats(0.2, 0.8), x=st.floats(0.2, 0.8))
def test_resize_with_pad_keeps_aspect_and_mask_alignment(h, w, oh, ow, y, x):
    image = np.zeros((h, w), np.float32)
    mask = np.zeros((h, w), np.uint8)
    cy, cx = int(y * h), int(x * w)
    ry, rx = max(2, h // 5), max(2, w // 5)
    image[max(0, cy - ry):cy + ry, max(0, cx - rx):cx + rx] = 1.0
    mask[max(0, cy - ry):cy + ry, max(0, cx - rx):cx + rx] = 1
    out, geo = resize_with_pad(image, (oh, ow))
    mout, mgeo = resize_with_pad(mask, (oh, ow), mode="mask")
    assert out.shape == (oh, ow) and mout.shape == (oh, ow)
    assert geo == mgeo
    assert set(np.unique(mout)) <= {0, 1}
    # the mask's centre of mass maps back onto the original object's centre
    if mout.sum():
        my, mx = np.argwhere(mout).mean(axis=0)
        by = (my - geo["pad_top"] + 0.5) / geo["scale"]
        bx = (mx - geo["pad_left"] + 0.5) / geo["scale"]
        oy, ox = np.argwhere(mask).mean(axis=0)
        assert abs(by - oy) <= 1.5 / geo["scale"] + 1 and abs(bx - ox) <= 1.5 / geo["scale"] + 1
        # and image content sits where the mask is, when the object spans 3+ output pixels (at 2,
        # area averaging off the pixel grid leaves every output pixel partly outside it:
        # h=16, w=24 -> 8x8 gave a mean of 0.41 under the mask)
        if min(ry, rx) * 2 * geo["scale"] >= 3:
            assert out[mout == 1].mean() > 0.5


def test_padding_is_centred_and_zero():
    out, geo = resize_with_pad(np.ones((100, 50), np.float32), (64, 64))
    assert geo == {"scale": 0.64, "pad_top": 0, "pad_left": 16}
    assert out[:, :16].max() == 0 and out[:, 48:].max() == 0 and out[:, 16:48].min() > 0.999


def test_channels_are_kept():
    out, _ = resize_with_pad(np.ones((10, 20, 1), np.float32), (16, 16))
    assert out.shape == (16, 16, 1)


def test_linear_window_maps_edges():
    out = linear_window(np.array([-1000.0, -600, 0, 150, 2000]), center=-600, width=1500)
    np.testing.assert_allclose(out, [0.2333333, 0.5, 0.9, 1.0, 1.0], atol=1e-6)
    assert out.dtype == np.float32


def test_percentile_window_ignores_outliers_and_handles_constant():
    values = np.concatenate([np.linspace(0, 100, 1000), [1e6]])
    out = percentile_window(values, 1, 99)
    assert out.max() == 1.0 and out.min() == 0.0 and 0.4 < out[500] < 0.6
    assert percentile_window(np.full(10, 3.0)).max() == 0.0


@settings(max_examples=30, deadline=None)
@given(h=st.integers(8, 64), w=st.integers(8, 64), channel=st.booleans(),
       mode=st.sampled_from(["image", "mask"]))
def test_same_size_and_unpadded_resizes_equal_the_general_path_and_never_alias_the_input(h, w, channel, mode):
    """Same size: no resampling (cv2 would only copy); exact fit: cv2's output, no padding copy.
    Either way a new array with the same values the padded path gives."""
    import cv2

    rng = np.random.default_rng(h * 100 + w)
    image = rng.random((h, w, 1) if channel else (h, w)).astype(np.float32)
    same, geo = resize_with_pad(image, (h, w), mode=mode)
    assert geo == {"scale": 1.0, "pad_top": 0, "pad_left": 0}
    np.testing.assert_array_equal(same, image)
    assert not np.shares_memory(same, image)

    doubled, geo = resize_with_pad(image, (2 * h, 2 * w), mode=mode)  # scales exactly, no padding
    interp = cv2.INTER_NEAREST if mode == "mask" else cv2.INTER_LINEAR
    expected = cv2.resize(image, (2 * w, 2 * h), interpolation=interp).reshape(doubled.shape)
    np.testing.assert_array_equal(doubled, expected)
    assert geo == {"scale": 2.0, "pad_top": 0, "pad_left": 0} and doubled.shape[2:] == image.shape[2:]
