"""Colour map, overlay blending, outlines and the encodings the pages embed."""

from __future__ import annotations

import base64
import gzip
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.report import imaging, render_overlay


def test_lut_runs_from_cold_to_hot() -> None:
    lut = imaging.colormap_lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert lut[0, 2] > lut[0, 0] and lut[-1, 0] > lut[-1, 2]  # blue end to red end


def test_heat_rgba_alpha_is_the_heat_value() -> None:
    heat = np.array([[0.0, 0.5, 1.0, 2.0, -1.0]], np.float32)
    rgba = imaging.heat_rgba(heat)
    assert rgba[0, :, 3].tolist() == [0, 128, 255, 255, 0]
    np.testing.assert_array_equal(rgba[0, 2, :3], imaging.colormap_lut()[255])


def test_overlay_matches_the_browser_blend() -> None:
    image = np.full((4, 4), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[1, 1] = 1.0
    out = render_overlay(image, heat, opacity=0.5)
    hot = imaging.colormap_lut()[255].astype(float)
    np.testing.assert_array_equal(out[1, 1], np.round(100 * 0.5 + hot * 0.5).astype(np.uint8))
    assert (out[0, 0] == 100).all()  # zero heat leaves the image untouched
    np.testing.assert_array_equal(render_overlay(image, heat, opacity=0.0)[..., 0], image)
    np.testing.assert_array_equal(render_overlay(image, None)[..., 1], image)


def test_outline_is_the_mask_boundary() -> None:
    mask = np.zeros((7, 7), bool)
    mask[2:5, 2:5] = True
    edge = imaging.outline(mask)
    assert edge.sum() == 8 and not edge[3, 3] and edge[2, 2]
    out = render_overlay(np.zeros((7, 7), np.uint8), None, mask=mask)
    assert tuple(out[2, 3]) == imaging.OUTLINE_RGB and tuple(out[3, 3]) == (0, 0, 0)
    rgba = imaging.outline_rgba(mask)
    assert rgba[..., 3].astype(bool).sum() == 8


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"image": np.zeros((4, 4), np.float32)}, "image must be a 2D uint8"),
    ({"heatmap": np.zeros((3, 4))}, r"heatmap must have the image's shape \(4, 4\)"),
    ({"mask": np.zeros((4, 5))}, "mask must have"),
    ({"opacity": 1.5}, "opacity must be in"),
])
def test_overlay_argument_errors(kwargs: dict, match: str) -> None:
    args = {"image": np.zeros((4, 4), np.uint8), "heatmap": np.zeros((4, 4))}
    args.update(kwargs)
    image = args.pop("image")
    with pytest.raises(ValueError, match=match):
        render_overlay(image, **args)


@settings(max_examples=40, deadline=None)
@given(
    image=hnp.arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6))),
    seed=st.integers(0, 2**16),
    opacity=st.floats(0.0, 1.0),
)
def test_overlay_stays_between_image_and_colour(image: np.ndarray, seed: int, opacity: float) -> None:
    heat = np.random.default_rng(seed).random(image.shape).astype(np.float32)
    out = render_overlay(image, heat, opacity=opacity).astype(int)
    colour = imaging.heat_rgba(heat)[..., :3].astype(int)
    grey = np.repeat(image[..., None].astype(int), 3, axis=-1)
    assert ((out >= np.minimum(grey, colour) - 1) & (out <= np.maximum(grey, colour) + 1)).all()


def test_png_and_volume_encodings_round_trip() -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    uri = imaging.png_data_uri(img)
    assert uri.startswith("data:image/png;base64,")
    png = base64.b64decode(uri.split(",", 1)[1])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), img)
    assert imaging.png_data_uri(img) == uri  # deterministic bytes
    vol = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    raw = gzip.decompress(base64.b64decode(imaging.pack_volume(vol)))
    np.testing.assert_array_equal(np.frombuffer(raw, np.uint8).reshape(vol.shape), vol)
    assert imaging.pack_volume(vol) == imaging.pack_volume(vol.copy())


def test_thumbnail_is_small() -> None:
    from PIL import Image

    uri = imaging.thumbnail_uri(np.zeros((300, 200, 3), np.uint8), max_side=96)
    thumb = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert max(thumb.size) == 96


def test_peak_index_prefers_heat_then_mask_then_centre() -> None:
    heat = np.zeros((4, 5, 6), np.float32)
    heat[1, 2, 3] = 0.9
    mask = np.zeros((4, 5, 6), bool)
    mask[3, 4, 5] = True
    assert imaging.peak_index(heat, mask, heat.shape) == (1, 2, 3)
    assert imaging.peak_index(np.zeros_like(heat), mask, heat.shape) == (3, 4, 5)
    assert imaging.peak_index(None, None, heat.shape) == (2, 2, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 5)])
def test_pack_png_round_trips_images_and_volumes(dtype: type, shape: tuple[int, ...]) -> None:
    from PIL import Image

    values = np.random.default_rng(2).integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    packed = imaging.pack_png(values)
    assert packed == imaging.pack_png(values.copy())  # deterministic bytes
    np.testing.assert_array_equal(imaging.unpack_png(packed, shape), values)
    strip = Image.open(io.BytesIO(base64.b64decode(packed)))
    assert strip.mode == "L"  # 8-bit greyscale, the only kind the page's decoder reads
    rows = int(np.prod(shape[:-1]))
    assert strip.size == (shape[-1], rows * (2 if dtype == np.uint16 else 1))  # 16 bits: 2 planes


def test_pack_png_refuses_other_types() -> None:
    with pytest.raises(ValueError, match="uint8 or uint16"):
        imaging.pack_png(np.zeros((3, 3), np.float32))


def _ramp() -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, 200, dtype=np.float32), (30, 1))


def test_radiograph_intensity_recovers_a_linear_model_window() -> None:
    full = _ramp()
    shown = np.clip((full - 0.2) / 0.5, 0.0, 1.0)  # the model's window: 20%..70% of the range
    got = imaging.radiograph_intensity(full, shown, bits=16)
    assert got.unit == "%" and got.values.dtype == np.uint16 and int(got.values.max()) == 4095
    assert got.window == pytest.approx((45.0, 50.0), abs=1e-3) and got.exact
    # the page's mapping: value = offset + scale * level, windowed linearly
    value = got.offset + got.scale * got.values.astype(np.float64)
    center, width = got.window
    page = np.rint(np.clip((value - (center - width / 2)) / width, 0, 1) * 255)
    assert np.abs(page - np.rint(shown * 255)).max() <= 1


def test_radiograph_intensity_flags_a_non_linear_window_and_keeps_8_bit_sources() -> None:
    full = _ramp()
    sigmoid = 1.0 / (1.0 + np.exp(-8.0 * (full - 0.5)))
    assert not imaging.radiograph_intensity(full, sigmoid, bits=12).exact
    eight = imaging.radiograph_intensity(full, full, bits=8)
    assert eight.values.dtype == np.uint8 and int(eight.values.max()) == 255
    assert eight.window == pytest.approx((50.0, 100.0), abs=1e-3)


def test_hu_intensity_keeps_whole_hu_and_ct_presets() -> None:
    hu = np.array([[[-1024.4, -600.0], [40.2, 1800.0]]], np.float32)
    got = imaging.hu_intensity(hu, (-600, 1500))
    np.testing.assert_array_equal(got.offset + got.scale * got.values, np.rint(hu))
    assert got.unit == "HU" and got.window == (-600.0, 1500.0) and got.exact
    assert set(got.presets) == {"Lung", "Mediastinum", "Bone"}
    assert imaging.hu_intensity(hu, (-600, 1500), presets=False).presets == {}


def test_peak_index_is_the_hottest_voxel_not_the_heaviest_slice() -> None:
    grids = np.indices((12, 20, 24), dtype=np.float32)
    broad = 0.6 * np.exp(-sum((g - c) ** 2 for g, c in zip(grids, (3, 5, 5), strict=True)) / 18.0)
    heat = broad.copy()
    heat[9, 15, 19] = 0.95  # one hot voxel, far from where most of the heat is
    assert int(np.argmax(broad.sum(axis=(1, 2)))) == 3
    assert imaging.peak_index(heat, None, heat.shape) == (9, 15, 19)
    plateau = np.zeros((5, 5, 5), np.float32)
    plateau[1:4, 0:3, 2] = 1.0  # ties: the one nearest their centroid
    assert imaging.peak_index(plateau, None, plateau.shape) == (2, 1, 2)
