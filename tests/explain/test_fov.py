"""Field of view, body and marker detectors on synthetic radiographs and CT phantoms.

The phantoms imitate the ingest's output: 2D radiographs in [0, 1] with soft-edged anatomy on a
dark, noisy background, exact-zero padding from the aspect-preserving resize, black shutters and
burned-in letters; CT volumes in HU mapped through the lung window, with a table under the body.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from pipeline.explain.fov import (
    DEFAULT_HU_WINDOW,
    body_mask,
    border_mask,
    field_of_view,
    marker_mask,
)


def ellipse(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """bool ``shape`` mask of an axis-aligned ellipse."""
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    return ((yy - center[0]) / radii[0]) ** 2 + ((xx - center[1]) / radii[1]) ** 2 <= 1.0


def plant_letter(image: np.ndarray, top: int, left: int, *, size: int, value: float = 1.0) -> np.ndarray:
    """Draw a sharp "L" (stroke ``max(1, size // 3)``, ``size`` tall, ``size - 1`` wide); returns its mask."""
    stroke = max(1, size // 3)
    mask = np.zeros(image.shape, bool)
    mask[top:top + size, left:left + stroke] = True
    mask[top + size - stroke:top + size, left:left + size - 1] = True
    image[mask] = value
    return mask


def chest_radiograph(size: int = 64, *, seed: int = 0, pad: int = 0, shutter: int = 0,
                     lesion: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged trunk with two dark lungs on a dark noisy background.

    Args:
        size: Side (px).
        seed: Noise and jitter.
        pad: Columns of exact zeros on the left and right (the ingest's padding).
        shutter: Rows of black collimation shutter (near-zero noise) at the top and bottom.
        lesion: Amplitude of a soft bright blob in the right lung (0: none).

    Returns:
        ``(image, trunk)``: float32 ``(size, size)`` in [0, 1] and the bool trunk ellipse.
    """
    rng = np.random.default_rng(seed)
    shape = (size, size)
    cy, cx = size * 0.56 + rng.uniform(-1, 1), size / 2 + rng.uniform(-1, 1)
    trunk = ellipse(shape, (cy, cx), (size * 0.36, size * 0.30))
    tissue = 0.6 * ndi.gaussian_filter(trunk.astype(np.float32), 0.8)
    for side in (-1, 1):
        lung = ellipse(shape, (cy - size / 16, cx + side * size * 0.13), (size * 0.2, size * 0.09))
        tissue -= 0.3 * ndi.gaussian_filter(lung.astype(np.float32), 0.8)
    image = rng.uniform(0.0, 0.03, shape).astype(np.float32) + tissue
    image += rng.normal(0.0, 0.02, shape).astype(np.float32) * (tissue > 0.05)
    if lesion:
        yy, xx = np.mgrid[:size, :size]
        ly, lx = cy - size / 32 + rng.uniform(-size / 16, size / 16), cx + size * 0.13
        image += lesion * np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / (2 * (size / 21) ** 2))
    image = np.clip(image, 0.0, 1.0)
    if shutter:
        image[:shutter] = image[-shutter:] = rng.uniform(0.0, 0.01, (shutter, size))
    if pad:
        image[:, :pad] = image[:, -pad:] = 0.0
    return image.astype(np.float32), trunk


def ct_phantom(shape: tuple[int, int, int] = (8, 48, 48), *, seed: int = 0, table_gap: int = 2,
               table_thickness: int = 1, hu_window: tuple[float, float] = DEFAULT_HU_WINDOW
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elliptic body (40 HU) with two lungs (-850 HU) in air (-1000 HU), a table (200 HU) below.

    Returns:
        ``(volume, body, table)``: float32 ``(D, H, W)`` windowed to [0, 1] and the bool body
        (lungs included) and table masks.
    """
    rng = np.random.default_rng(seed)
    depth, height, width = shape
    cy, cx = height * 0.45, width / 2
    ry = height * 0.3
    body2d = ellipse((height, width), (cy, cx), (ry, width * 0.38))
    hu2d = np.where(body2d, 40.0, -1000.0)
    for side in (-1, 1):
        hu2d[ellipse((height, width), (cy, cx + side * width * 0.17), (ry * 0.65, width * 0.12))] = -850.0
    table2d = np.zeros((height, width), bool)
    top = int(np.ceil(cy + ry)) + table_gap
    table2d[top:top + table_thickness, 2:-2] = True
    hu2d[table2d] = 200.0
    hu = np.broadcast_to(hu2d, shape) + rng.normal(0.0, 15.0, shape)
    center, window = hu_window
    volume = np.clip((hu - (center - window / 2)) / window, 0.0, 1.0).astype(np.float32)
    return volume, np.broadcast_to(body2d, shape).copy(), np.broadcast_to(table2d, shape).copy()


# --- field of view and border --------------------------------------------------------------------

def test_field_of_view_is_the_rectangle_without_padding():
    image, _ = chest_radiograph(64, pad=6)
    fov = field_of_view(image[None, ..., None], "2d")[0]
    expected = np.zeros((64, 64), bool)
    expected[:, 6:-6] = True
    assert fov.dtype == bool and np.array_equal(fov, expected)


def test_field_of_view_blank_image_and_3d():
    assert not field_of_view(np.zeros((2, 16, 16)), "2d").any()
    assert field_of_view(np.zeros((1, 4, 8, 8, 1), np.float32), "3d").all()


def test_uint8_and_channel_axis_read_as_float():
    image, _ = chest_radiograph(64, pad=4, seed=3)
    stored = np.rint(image * 255).astype(np.uint8)
    as_float = stored.astype(np.float32) / 255
    assert np.array_equal(body_mask(stored[None, ..., None], "2d"), body_mask(as_float[None], "2d"))
    assert np.array_equal(marker_mask(stored[None, ..., None]), marker_mask(as_float[None]))


def test_border_band_lies_inside_the_field_of_view():
    fov = np.zeros((1, 50, 60), bool)
    fov[0, :, 10:50] = True  # 50 rows x 40 columns, padding on both sides
    band = border_mask(fov, fraction=0.1)[0]
    assert not band[:, :10].any() and not band[:, 50:].any()
    rows, cols = 5, 4  # ceil(0.1 * 50), ceil(0.1 * 40)
    inner = np.zeros((50, 60), bool)
    inner[rows:50 - rows, 10 + cols:50 - cols] = True
    assert np.array_equal(band, fov[0] & ~inner)


def test_border_band_of_a_volume_is_in_plane():
    band = border_mask(np.ones((1, 6, 20, 20), bool), fraction=0.1)[0]
    assert all(np.array_equal(band[0], plane) for plane in band)  # same band on every slice
    assert not band[:, 2:-2, 2:-2].any() and band[:, :2].all()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 29), st.integers(0, 29),
       st.floats(0.0, 0.5), st.floats(0.0, 0.5))
def test_border_band_invariants(height, width, top, left, f1, f2):
    fov = np.zeros((1, 32, 32), bool)
    fov[0, top:top + height, left:left + width] = True
    small, large = border_mask(fov, fraction=min(f1, f2)), border_mask(fov, fraction=max(f1, f2))
    assert not (small & ~fov).any() and not (small & ~large).any()  # inside the fov, monotone
    assert not border_mask(fov, fraction=0.0).any()
    assert np.array_equal(border_mask(fov, fraction=0.5), fov)


# --- 2D body -------------------------------------------------------------------------------------

def test_body_excludes_padding_shutters_background_and_text():
    image, trunk = chest_radiograph(96, pad=8, shutter=10, seed=1)
    letters = plant_letter(image, 12, 10, size=6) | plant_letter(image, 80, 80, size=5)
    body = body_mask(image[None], "2d")[0]
    core = ndi.binary_erosion(trunk, iterations=2)
    core[:10] = core[-10:] = False
    assert body[core].mean() > 0.99  # the trunk, dark lungs included (filled holes)
    assert not body[:, :8].any() and not body[:, -8:].any()  # padding
    assert not body[:10].any() and not body[-10:].any()  # black shutters
    assert not (body & letters).any()  # text on the background
    outside = ~ndi.binary_dilation(trunk, iterations=3)
    assert body[outside].mean() < 0.01


def test_body_of_a_tight_crop_is_the_whole_field_of_view():
    image, _ = chest_radiograph(64, seed=2)
    crop = ndi.zoom(image[22:42, 22:42], 3.2, order=1)  # lungs reach the edges
    crop = ((crop - crop.min()) / (crop.max() - crop.min())).astype(np.float32)  # windowed: 0 in the lungs
    body, fov = body_mask(crop[None], "2d")[0], field_of_view(crop[None], "2d")[0]
    assert body[fov].mean() > 0.98


def test_body_behind_a_thin_frame():
    image, trunk = chest_radiograph(64, seed=4)
    image[[0, -1], :] = image[:, [0, -1]] = 0.35  # a screen capture's frame line
    body = body_mask(image[None], "2d")[0]
    assert body[ndi.binary_erosion(trunk, iterations=2)].all()
    assert body[~ndi.binary_dilation(trunk, iterations=3)].mean() < 0.02


def test_body_of_a_blank_image_is_empty():
    assert not body_mask(np.zeros((2, 32, 32), np.float32), "2d").any()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**16), st.integers(0, 12), st.booleans())
def test_body_and_markers_are_flip_equivariant(seed, pad, letter):
    image, _ = chest_radiograph(64, seed=seed, pad=pad)
    if letter:
        plant_letter(image, 5, 10, size=5)
    images = np.stack([image, image[:, ::-1], image[::-1]])
    body, markers = body_mask(images, "2d"), marker_mask(images)
    for masks in (body, markers):
        assert np.array_equal(masks[1], masks[0][:, ::-1]) and np.array_equal(masks[2], masks[0][::-1])
    assert not (markers & ~field_of_view(images, "2d")).any()


# --- 3D body -------------------------------------------------------------------------------------

@pytest.mark.parametrize("gap,thickness", [(2, 4), (0, 1)])
def test_ct_body_fills_lungs_and_drops_the_table(gap, thickness):
    volume, body, table = ct_phantom(table_gap=gap, table_thickness=thickness)
    found = body_mask(volume[None, ..., None], "3d")[0]
    assert found[ndi.binary_erosion(body, structure=np.ones((1, 3, 3)))].all()  # lungs are body
    kept = found & table  # a seam where the table lies against the back, nothing more
    assert kept.sum() <= 0.4 * table.sum()
    assert not (kept & ~ndi.binary_dilation(body, structure=np.ones((1, 3, 3)))).any()
    assert found[~ndi.binary_dilation(body, structure=np.ones((1, 3, 3)))].mean() < 0.005


def test_ct_body_under_a_soft_tissue_window():
    window = (40.0, 400.0)  # air and lung both clip to 0
    volume, body, table = ct_phantom(hu_window=window)
    found = body_mask(volume[None], "3d", hu_window=window)[0]
    assert found[ndi.binary_erosion(body, structure=np.ones((1, 3, 3)))].all()
    assert not (found & table).any()


def test_ct_body_of_a_padded_lung_crop_is_the_crop():
    """A nodule volume of interest (all lung) padded with air by the ingest: the crop is body."""
    rng = np.random.default_rng(0)
    hu = np.full((6, 40, 40), -1024.0)
    hu[:, 8:32, 10:30] = -850.0 + rng.normal(0, 25.0, (6, 24, 20))
    hu[:, 18:22, 18:22] = 30.0  # the nodule
    center, width = DEFAULT_HU_WINDOW
    found = body_mask(((hu - center + width / 2) / width)[None], "3d")[0]
    crop = np.zeros(hu.shape, bool)
    crop[:, 8:32, 10:30] = True
    assert found[crop].mean() > 0.99 and not found[~crop].any()


def test_ct_largest_component_is_chosen_per_volume():
    small, _, _ = ct_phantom((4, 32, 32), seed=1)
    large, body, _ = ct_phantom((4, 32, 32), seed=2)
    small[:, 16:, :] = small[:, 0:1, 0:1].min()  # shrink the first patient to half
    found = body_mask(np.stack([small, large]), "3d")
    assert found[0].any() and found[1][ndi.binary_erosion(body, structure=np.ones((1, 3, 3)))].all()


# --- markers -------------------------------------------------------------------------------------

def test_markers_on_background_and_on_lung_are_found():
    image, _ = chest_radiograph(128, seed=5, pad=10)
    planted = [plant_letter(image, 6, 14, size=8), plant_letter(image, 8, 100, size=6, value=0.8),
               plant_letter(image, 60, 42, size=6)]  # the last one on the right lung
    image[110:113, 30:60:3] = 0.95  # a dotted line of text-like dashes
    found = marker_mask(image[None])[0]
    for mask in planted:
        assert found[mask].mean() > 0.6
    assert found[110:113, 30:60].any()
    assert not found[~ndi.binary_dilation(np.logical_or.reduce(planted), iterations=2)
                     & ~np.isin(np.arange(128), range(108, 115))[:, None]].any()


def test_no_markers_on_anatomy():
    image, _ = chest_radiograph(128, seed=6, lesion=0.6)  # a bright soft consolidation
    yy, xx = np.mgrid[:128, :128]
    ribs = 0.25 * (np.sin(yy / 3.0) > 0.6) * ellipse((128, 128), (70, 64), (45, 38))
    image = np.clip(image + ndi.gaussian_filter(ribs, 1.5), 0, 1).astype(np.float32)  # blurred ribs
    image[100:128, 30:98] = np.maximum(image[100:128, 30:98], 0.97)  # a saturated abdomen
    assert not marker_mask(image[None]).any()


def test_no_markers_in_blank_or_flat_images():
    assert not marker_mask(np.zeros((1, 32, 32))).any()
    assert not marker_mask(np.ones((1, 32, 32))).any()


def test_large_bright_blocks_are_not_markers():
    image, _ = chest_radiograph(128, seed=7)
    image[4:44, 4:44] = 1.0  # far larger than text
    assert not marker_mask(image[None])[0][4:44, 4:44].any()


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: body_mask(np.zeros((1, 8, 8)), "2.5d"), "kind must be one of"),
    (lambda: body_mask(np.zeros((8, 8)), "2d"), "images must be"),
    (lambda: body_mask(np.zeros((1, 8, 8, 3)), "2d"), "images must be"),
    (lambda: body_mask(np.zeros((1, 4, 8, 8)), "3d", hu_window=(0.0, -1.0)), "hu_window"),
    (lambda: body_mask(np.zeros((1, 4, 8, 8)), "3d", hu_window=(-2000.0, 100.0)), "ceiling"),
    (lambda: body_mask(np.zeros((1, 4, 8, 8)), "3d", table_radius=-1), "table_radius"),
    (lambda: body_mask(np.zeros((1, 8, 8)), "2d", dark_level=1.0), "dark_level"),
    (lambda: marker_mask(np.zeros((1, 4, 8, 8))), "images must be"),
    (lambda: marker_mask(np.zeros((1, 8, 8)), contrast=0.0), "contrast"),
    (lambda: border_mask(np.zeros((1, 8, 8), bool), fraction=0.6), "fraction"),
    (lambda: border_mask(np.zeros((8, 8), bool)), "fov must be"),
])
def test_bad_arguments_are_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
