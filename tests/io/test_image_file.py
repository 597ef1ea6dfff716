"""PNG/JPEG/TIFF radiographs: formats, bit depths, colour rules, orientation and hostile files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from pipeline.io.errors import InputRejected
from pipeline.io.image_file import colour_share, read_image_file, sniff_format
from pipeline.io.radiograph import read_radiograph

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def gradient(h: int = 40, w: int = 60) -> np.ndarray:
    """A non-constant, non-symmetric 8-bit test image (so rotations are distinguishable)."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 3 + y * 2) % 256).astype(np.uint8)


def save(tmp_path: Path, name: str, image: Image.Image, **kwargs) -> Path:
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("TIFF", "tif")])
def test_8bit_gray_is_used_as_stored(tmp_path, fmt, ext):
    a = gradient()
    image, meta = read_image_file(save(tmp_path, f"a.{ext}", Image.fromarray(a), format=fmt))
    np.testing.assert_allclose(image, a / 255.0, atol=1e-6)
    assert meta["format"] == {"PNG": "png", "TIFF": "tiff"}[fmt]
    assert (meta["voi"], meta["bits_stored"], meta["colour"]) == ("as_stored", 8, "gray")
    assert (meta["rows"], meta["columns"]) == a.shape


def test_jpeg_gray_is_used_as_stored_within_compression_error(tmp_path):
    a = gradient()
    image, meta = read_image_file(save(tmp_path, "a.jpg", Image.fromarray(a), quality=100))
    assert meta["format"] == "jpeg"
    assert np.abs(image - a / 255.0).mean() < 2 / 255


@pytest.mark.parametrize("maximum,bits", [(255, 8), (1000, 10), (4095, 12), (16000, 14), (65535, 16)])
def test_16bit_png_scales_by_the_smallest_bit_depth_that_holds_the_data(tmp_path, maximum, bits):
    a = np.linspace(0, maximum, 40 * 60).reshape(40, 60).astype(np.uint16)
    path = save(tmp_path, "a.png", Image.fromarray(a))
    image, meta = read_image_file(path)
    assert meta["bits_stored"] == bits
    np.testing.assert_allclose(image, a / float(2**bits - 1), atol=1e-6)


def test_16bit_tiff(tmp_path):
    a = (np.arange(40 * 60).reshape(40, 60) * 7).astype(np.uint16)
    image, meta = read_image_file(save(tmp_path, "a.tif", Image.fromarray(a)))
    assert meta["bits_stored"] == 16
    np.testing.assert_allclose(image, a / 65535.0, atol=1e-6)


def test_float_tiff_in_unit_range_is_kept_and_other_ranges_are_percentile_clipped(tmp_path):
    a = gradient().astype(np.float32) / 255.0
    image, meta = read_image_file(save(tmp_path, "f.tif", Image.fromarray(a, mode="F")))
    np.testing.assert_allclose(image, a, atol=1e-6)
    assert meta["voi"] == "as_stored"
    image, meta = read_image_file(save(tmp_path, "g.tif", Image.fromarray(a * 1000 - 300, mode="F")))
    assert meta["voi"] == "percentile" and image.min() == 0.0 and image.max() == 1.0


def test_gray_stored_as_rgb_gives_the_same_image(tmp_path):
    a = gradient()
    rgb = np.repeat(a[..., None], 3, axis=2)
    image, meta = read_image_file(save(tmp_path, "rgb.png", Image.fromarray(rgb)))
    np.testing.assert_allclose(image, a / 255.0, atol=1e-5)
    assert meta["colour"] == "rgb_luminance" and meta["colour_share"] == 0.0


def test_a_tinted_radiograph_is_accepted_and_reduced_to_luminance(tmp_path):
    """A photo of a film with a blue cast: every pixel on one line through RGB space."""
    a = gradient().astype(np.float32)
    tint = np.array([0.45, 0.65, 0.85], dtype=np.float32)  # stays below 255
    rgb = np.rint(a[..., None] * tint + 20).astype(np.uint8)
    image, meta = read_image_file(save(tmp_path, "tint.png", Image.fromarray(rgb)))
    assert meta["colour_share"] < 0.01
    np.testing.assert_allclose(image, (rgb.astype(np.float32) @ LUMA) / 255.0, atol=1e-5)
    assert np.corrcoef(image.ravel(), a.ravel())[0, 1] > 0.999


def truly_colour(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)


def test_truly_colour_images_are_quarantined_unless_allowed(tmp_path):
    path = save(tmp_path, "photo.png", Image.fromarray(truly_colour()))
    with pytest.raises(InputRejected) as info:
        read_image_file(path)
    assert info.value.code == "colour" and "max_colour_share" in info.value.reason
    image, meta = read_image_file(path, max_colour_share=1.0)
    assert meta["colour_share"] > 0.5 and image.shape == (40, 60)


def test_a_few_coloured_annotation_pixels_do_not_make_a_colour_image(tmp_path):
    rgb = np.repeat(gradient()[..., None], 3, axis=2)
    rgb[5:9, 5:12] = (255, 0, 0)  # a red arrow burned into the image
    image, meta = read_image_file(save(tmp_path, "arrow.jpg", Image.fromarray(rgb), quality=95))
    assert meta["colour_share"] < 0.1


def test_rgba_is_composited_over_black(tmp_path):
    a = gradient()
    alpha = np.full_like(a, 255)
    alpha[:, :30] = 0  # transparent left half
    rgba = np.dstack([a, a, a, alpha])
    image, meta = read_image_file(save(tmp_path, "a.png", Image.fromarray(rgba, mode="RGBA")))
    assert meta["colour"] == "rgba_luminance_over_black"
    assert image[:, :30].max() == 0.0
    np.testing.assert_allclose(image[:, 30:], a[:, 30:] / 255.0, atol=1e-5)


def test_opaque_rgba_is_plain_rgb(tmp_path):
    a = gradient()
    rgba = np.dstack([a, a, a, np.full_like(a, 255)])
    image, meta = read_image_file(save(tmp_path, "a.png", Image.fromarray(rgba, mode="RGBA")))
    assert meta["colour"] == "rgb_luminance"
    np.testing.assert_allclose(image, a / 255.0, atol=1e-5)


def test_gray_with_alpha(tmp_path):
    a = gradient()
    la = Image.fromarray(np.dstack([a, np.full_like(a, 128)]), mode="LA")
    image, meta = read_image_file(save(tmp_path, "la.png", la))
    np.testing.assert_allclose(image, a * (128 / 255) / 255.0, atol=1e-5)


def test_palette_image_is_expanded(tmp_path):
    a = gradient()
    palette_image = Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    expected = np.asarray(palette_image.convert("RGB")).astype(np.float32) @ LUMA / 255.0
    image, meta = read_image_file(save(tmp_path, "p.png", palette_image))
    assert meta["mode"] == "P"
    np.testing.assert_allclose(image, expected, atol=1e-5)


def test_bilevel_image(tmp_path):
    a = (gradient() > 100).astype(np.uint8) * 255
    image, _ = read_image_file(save(tmp_path, "b.png", Image.fromarray(a).convert("1")))
    np.testing.assert_array_equal(image, a / 255.0)


@pytest.mark.parametrize("orientation,expected", [
    (1, lambda a: a),
    (3, lambda a: np.rot90(a, 2)),
    (6, lambda a: np.rot90(a, -1)),  # stored rotated: turn 90 degrees clockwise to display
    (8, lambda a: np.rot90(a, 1)),
    (2, lambda a: a[:, ::-1]),
])
def test_exif_orientation_is_applied(tmp_path, orientation, expected):
    a = gradient()
    exif = Image.Exif()
    exif[0x0112] = orientation
    image, meta = read_image_file(save(tmp_path, "o.png", Image.fromarray(a), exif=exif))
    np.testing.assert_allclose(image, expected(a) / 255.0, atol=1e-6)
    assert meta["exif_orientation"] == orientation


def test_multipage_tiff_uses_the_frame_policy(tmp_path):
    pages = [Image.fromarray(np.full((20, 30), v, np.uint8)) for v in (10, 20, 30)]
    for p in pages:  # non-constant pages (a constant one is rejected as blank)
        p.putpixel((0, 0), 255)
    path = tmp_path / "m.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    values = {f: read_image_file(path, frame=f)[0][5, 5] * 255 for f in ("first", "middle", "last", "max")}
    assert values == pytest.approx({"first": 10, "middle": 20, "last": 30, "max": 30})


def test_percentile_and_explicit_windows_use_stored_units(tmp_path):
    a = gradient()
    path = save(tmp_path, "a.png", Image.fromarray(a))
    image, meta = read_image_file(path, window=(100.0, 50.0))
    np.testing.assert_allclose(image, np.clip((a - 75.0) / 50.0, 0, 1), atol=1e-6)
    assert meta["voi"] == "explicit"
    image, meta = read_image_file(path, window="percentile", percentiles=(5.0, 95.0))
    lo, hi = np.percentile(a, [5, 95])
    np.testing.assert_allclose(image, np.clip((a - lo) / (hi - lo), 0, 1), atol=1e-5)


def _png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.mark.parametrize("case,code", [
    ("empty", "empty"),
    ("truncated_jpeg", "truncated"),
    ("truncated_png", "truncated"),
    ("corrupt_png", "corrupt"),
    ("bomb", "too_large"),
    ("text", "unsupported_format"),
])
def test_broken_files_are_rejected_with_their_own_code(tmp_path, case, code):
    path = tmp_path / "x.img"
    a = (np.random.default_rng(0).random((200, 200)) * 255).astype(np.uint8)
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated_jpeg":
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif case == "truncated_png":
        data = _png_bytes(a)
        path.write_bytes(data[: len(data) // 2])
    elif case == "corrupt_png":
        data = bytearray(_png_bytes(a))
        idat = data.index(b"IDAT")
        data[idat + 10: idat + 60] = b"\x00" * 50  # garbage inside the compressed stream
        path.write_bytes(bytes(data))
    elif case == "bomb":  # a valid header declaring 40000 x 40000 pixels, almost no data
        ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                         + _chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + _chunk(b"IEND", b""))
    else:
        path.write_text("patient,notes\n")
    with pytest.raises(InputRejected) as info:
        read_image_file(path)
    assert info.value.code == code, info.value.reason
    assert "\n" not in info.value.reason


def test_the_pixel_cap_is_checked_before_decoding(tmp_path):
    path = save(tmp_path, "a.png", Image.fromarray(gradient()))
    with pytest.raises(InputRejected) as info:
        read_image_file(path, max_pixel_bytes=1000)
    assert info.value.code == "too_large"


def test_blank_image_is_rejected(tmp_path):
    with pytest.raises(InputRejected) as info:
        read_image_file(save(tmp_path, "b.png", Image.fromarray(np.zeros((20, 20), np.uint8))))
    assert info.value.code == "blank"


def test_format_is_told_by_content_not_extension(tmp_path):
    a = gradient()
    png_named_dcm = save(tmp_path, "study.dcm", Image.fromarray(a), format="PNG")
    assert sniff_format(png_named_dcm) == "png"
    source = read_radiograph(png_named_dcm)
    assert source.dataset is None and source.meta["format"] == "png"
    np.testing.assert_allclose(source.image, a / 255.0, atol=1e-6)
    text = tmp_path / "x.png"
    text.write_text("hello")
    with pytest.raises(InputRejected) as info:
        read_radiograph(text)  # no image signature: the DICOM reader decides, and says no
    assert info.value.code == "not_dicom"


def test_radiograph_reads_dicom_through_its_one_handle_and_names_what_it_cannot_open(tmp_path):
    """read_radiograph opens a file once, sniffs it and reads DICOM from the same handle: the
    same image and metadata as opening the DICOM path directly, the dataset knows its file,
    and the handle is closed. A folder, a missing and an empty file get their own codes."""
    import gc
    import warnings

    from pipeline.demo.dicom_files import write_file
    from pipeline.demo.dicom_writer import make_image_dataset
    from pipeline.io.dicom_image import read_dicom_image

    pixels = (gradient().astype(np.uint16) * 16)
    path = tmp_path / "cr.dcm"
    write_file(make_image_dataset(pixels, bits_stored=12, window=(2048, 4096)), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # an unclosed handle fails the test
        source = read_radiograph(path)
        gc.collect()
    image, meta = read_dicom_image(path)
    np.testing.assert_array_equal(source.image, image)
    assert source.meta == {"format": "dicom", **meta}
    assert source.dataset.filename == str(path)

    (tmp_path / "series").mkdir()
    (tmp_path / "empty.dcm").write_bytes(b"")
    for name, code in (("series", "bad_path"), ("missing.dcm", "unreadable"), ("empty.dcm", "empty")):
        with pytest.raises(InputRejected) as info:
            read_radiograph(tmp_path / name)
        assert info.value.code == code, (name, info.value.reason)


def test_text_chunks_never_reach_the_metadata(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("PatientName", "DOE^JANE")
    path = save(tmp_path, "t.png", Image.fromarray(gradient()), pnginfo=info)
    _, meta = read_image_file(path)
    assert "DOE" not in repr(meta)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays(np.uint8, st.tuples(st.integers(2, 24), st.integers(2, 24))))
def test_png_round_trip_is_exact_for_any_8bit_image(tmp_path, a):
    if a.min() == a.max():
        return  # constant images are rejected (tested above)
    path = tmp_path / "h.png"
    Image.fromarray(a).save(path)
    image, _ = read_image_file(path)
    np.testing.assert_array_equal(np.rint(image * 255).astype(np.uint8), a)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(2, 20), st.integers(2, 20)),
              elements=st.floats(0, 255, width=32)),
       st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0), st.floats(0.05, 1.0)),
       st.floats(0, 40))
def test_colour_share_is_zero_for_any_gray_or_tinted_image(gray, tint, offset):
    rgb = gray[..., None] * np.asarray(tint, np.float32) + np.float32(offset)
    assert colour_share(rgb) < 1e-4
