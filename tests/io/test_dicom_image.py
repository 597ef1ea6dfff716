"""Every DICOM pitfall of RELIABILITY.md, on files written by the test."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.demo.dicom_files import save_dataset, write_file
from pipeline.demo.dicom_writer import (
    CR_IMAGE_STORAGE,
    IMPLICIT_VR_LITTLE_ENDIAN,
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE_8BIT,
    JPEG_LS_LOSSLESS,
    RLE_LOSSLESS,
    SECONDARY_CAPTURE_STORAGE,
    make_image_dataset,
)
from pipeline.demo.fake_phi import PHI
from pipeline.io.dicom_image import read_dicom_image, read_image_mask
from pipeline.io.errors import InputRejected

PHI_VALUES = PHI(
    patient_name="LEAKY^PATIENT", patient_id="MRN-LEAK-42", birth_date="19010203", sex="F",
    accession_number="ACC-LEAK-77", institution_name="Leak General", referring_physician="DR^LEAK",
    study_date="20200101",
)


def phantom(rows: int = 48, cols: int = 40) -> np.ndarray:
    """Physical image in [0, 1], asymmetric so flips and inversions are visible."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    img = 0.15 + 0.6 * (x / (cols - 1)) * (y / (rows - 1))
    img[rows // 4: rows // 2, cols // 5: cols // 3] = 0.95  # bright block, upper left
    return img


def stored(phys: np.ndarray, bits: int, *, invert: bool = False) -> np.ndarray:
    top = 2**bits - 1
    values = np.rint(phys * top).astype(np.int64)
    return (top - values) if invert else values


def save(tmp_path: Path, name: str, ds, ts: str = "1.2.840.10008.1.2.1") -> Path:
    path = tmp_path / name
    save_dataset(ds, path, transfer_syntax=ts)
    return path


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_monochrome1_is_inverted_after_windowing(tmp_path):
    phys = phantom()
    m2 = save(tmp_path, "m2.dcm", make_image_dataset(stored(phys, 12).astype(np.uint16),
                                                    bits_stored=12, phi=PHI_VALUES))
    m1 = save(tmp_path, "m1.dcm", make_image_dataset(
        stored(phys, 12, invert=True).astype(np.uint16), bits_stored=12, photometric="MONOCHROME1"))
    a, meta_a = read_dicom_image(m2, window="percentile")
    b, meta_b = read_dicom_image(m1, window="percentile")
    assert meta_b["photometric"] == "MONOCHROME1"
    np.testing.assert_allclose(a, b, atol=0.02)
    assert corr(a, phys) > 0.99  # bright block stays bright: white = dense
    assert a.dtype == np.float32 and a.shape == phys.shape and 0 <= a.min() and a.max() <= 1


def test_monochrome1_with_file_window(tmp_path):
    phys = phantom()
    ds = make_image_dataset(stored(phys, 12, invert=True).astype(np.uint16), bits_stored=12,
                            photometric="MONOCHROME1", window=(2048, 4096))
    img, meta = read_dicom_image(save(tmp_path, "m1w.dcm", ds))
    assert meta["voi"] == "window"
    np.testing.assert_allclose(img, phys, atol=0.01)


@pytest.mark.parametrize("slope,intercept", [(2.0, -1000.0), (-1.0, 4095.0), (0.5, 100.0)])
def test_rescale_then_window_in_rescaled_units(tmp_path, slope, intercept):
    phys = phantom()
    target = phys * 4000.0 - 1000.0  # intended modality values
    raw = np.rint((target - intercept) / slope).astype(np.int64)
    signed = raw.min() < 0
    ds = make_image_dataset(raw.astype(np.int16 if signed else np.uint16), bits_stored=16,
                            signed=signed, rescale=(slope, intercept), window=(1000.0, 4000.0))
    img, meta = read_dicom_image(save(tmp_path, "r.dcm", ds))
    assert meta["rescale_slope"] == slope and meta["voi"] == "window"
    np.testing.assert_allclose(img, phys, atol=0.01)


def test_explicit_window_uses_modality_units(tmp_path):
    phys = phantom()
    ds = make_image_dataset(stored(phys, 12).astype(np.uint16), bits_stored=12,
                            rescale=(1.0, -1024.0), window=(0.0, 10.0))
    img, meta = read_dicom_image(save(tmp_path, "e.dcm", ds), window=(1024 - 1024 + 2047.5 - 1024, 4095))
    assert meta["voi"] == "explicit"
    np.testing.assert_allclose(img, phys, atol=0.01)


def test_voi_lut_sequence_preferred_over_window(tmp_path):
    phys = phantom()
    lut = (np.linspace(0, 1, 4096) ** 0.5 * 1023).astype(np.uint16)  # gamma-like LUT
    ds = make_image_dataset(stored(phys, 12).astype(np.uint16), bits_stored=12, voi_lut=lut,
                            window=(10, 20))
    img, meta = read_dicom_image(save(tmp_path, "lut.dcm", ds))
    assert meta["voi"] == "voi_lut"
    np.testing.assert_allclose(img, np.sqrt(phys), atol=0.01)


def test_sigmoid_voi_function(tmp_path):
    phys = phantom()
    ds = make_image_dataset(stored(phys, 12).astype(np.uint16), bits_stored=12,
                            window=(2048, 1024), extra={"VOILUTFunction": "SIGMOID"})
    img, _ = read_dicom_image(save(tmp_path, "sig.dcm", ds))
    expected = 1 / (1 + np.exp(-4 * (stored(phys, 12) - 2048) / 1024))
    np.testing.assert_allclose(img, expected, atol=1e-3)


def test_garbage_in_unused_high_bits_is_masked(tmp_path):
    phys = phantom()
    clean = stored(phys, 12).astype(np.uint16)
    dirty = make_image_dataset(clean, bits_stored=12, unused_bits_rng=np.random.default_rng(0))
    raw = np.frombuffer(dirty.PixelData, dtype="<u2")
    assert (raw >> 12).any()  # the garbage really is in the file
    img, _ = read_dicom_image(save(tmp_path, "g.dcm", dirty), window="percentile")
    ref, _ = read_dicom_image(save(tmp_path, "c.dcm", make_image_dataset(clean, bits_stored=12)),
                              window="percentile")
    np.testing.assert_array_equal(img, ref)


def test_signed_pixels(tmp_path):
    phys = phantom()
    values = (np.rint(phys * 2000) - 1000).astype(np.int16)
    ds = make_image_dataset(values, bits_stored=12, signed=True, window=(0, 2000))
    img, meta = read_dicom_image(save(tmp_path, "s.dcm", ds))
    assert meta["pixel_representation"] == 1
    np.testing.assert_allclose(img, phys, atol=0.01)


@pytest.mark.parametrize("ts,bits,tol", [
    (IMPLICIT_VR_LITTLE_ENDIAN, 12, 0.0), (RLE_LOSSLESS, 12, 0.0), (JPEG_2000_LOSSLESS, 12, 0.0),
    (JPEG_LS_LOSSLESS, 12, 0.0), (JPEG_2000, 12, 0.05), (JPEG_BASELINE_8BIT, 8, 0.05),
])
def test_compressed_transfer_syntaxes_decode_through_plugins(tmp_path, ts, bits, tol):
    phys = phantom(64, 64)
    ds = make_image_dataset(stored(phys, bits).astype(np.uint8 if bits == 8 else np.uint16),
                            bits_allocated=8 if bits == 8 else 16, bits_stored=bits)
    ref, _ = read_dicom_image(save(tmp_path, "ref.dcm", ds), window="percentile")
    img, meta = read_dicom_image(save(tmp_path, "c.dcm", ds, ts), window="percentile")
    assert meta["transfer_syntax"] == ts
    assert np.abs(img - ref).mean() <= tol + 1e-6


def test_missing_codec_is_quarantined_with_the_syntax_named(tmp_path):
    ds = make_image_dataset(stored(phantom(), 8).astype(np.uint8), bits_allocated=8)
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 64])  # an MPEG-2 "stream"
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 MP@ML: no decoder
    path = tmp_path / "mpeg.dcm"
    write_file(ds, path)
    with pytest.raises(InputRejected) as info:
        read_dicom_image(path)
    assert info.value.code == "missing_codec"
    assert "1.2.840.10008.1.2.4.100" in info.value.reason


@pytest.mark.parametrize("policy,expected", [("first", 0), ("middle", 1), ("last", 2)])
def test_multiframe_frame_policy(tmp_path, policy, expected):
    phys = phantom()
    frames = np.stack([stored(np.clip(phys * (0.5 + 0.25 * i), 0, 1), 12) for i in range(3)])
    ds = make_image_dataset(frames.astype(np.uint16), bits_stored=12, window=(2047.5, 4095))
    img, meta = read_dicom_image(save(tmp_path, "mf.dcm", ds), frame=policy)
    assert meta["frames"] == 3 and meta["frame_used"] == expected
    np.testing.assert_allclose(img, np.clip(phys * (0.5 + 0.25 * expected), 0, 1), atol=0.01)
    mip, _ = read_dicom_image(save(tmp_path, "mf.dcm", ds), frame="max")
    np.testing.assert_allclose(mip, np.clip(phys, 0, 1) * 1.0, atol=0.01)


def test_number_of_frames_one_is_a_plain_image(tmp_path):
    phys = phantom()
    ds = make_image_dataset(stored(phys, 12).astype(np.uint16), bits_stored=12,
                            extra={"NumberOfFrames": 1}, window=(2047.5, 4095))
    img, _ = read_dicom_image(save(tmp_path, "nf1.dcm", ds))
    assert img.shape == phys.shape
    np.testing.assert_allclose(img, phys, atol=0.01)


def test_per_frame_rescale_of_enhanced_objects(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    phys = phantom()
    raw = stored(phys, 12).astype(np.uint16)
    ds = make_image_dataset(np.stack([raw, raw // 2]), bits_stored=12, window=(2047.5, 4095))
    groups = []
    for slope in (1.0, 2.0):  # frame 1 stored at half scale, slope 2 restores it
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = slope, 0.0, "US"
        item = Dataset()
        item.PixelValueTransformationSequence = Sequence([pvt])
        groups.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    img, _ = read_dicom_image(save(tmp_path, "enh.dcm", ds), frame="last")
    np.testing.assert_allclose(img, phys, atol=0.01)


def test_rgb_secondary_capture_becomes_luminance(tmp_path):
    phys = phantom()
    gray = stored(phys, 8).astype(np.uint8)
    rgb = np.stack([gray, gray, gray], axis=-1)
    ds = make_image_dataset(rgb, photometric="RGB", bits_allocated=8, modality="OT",
                            sop_class_uid=SECONDARY_CAPTURE_STORAGE)
    img, meta = read_dicom_image(save(tmp_path, "rgb.dcm", ds))
    assert meta["voi"] == "rgb_luminance"
    np.testing.assert_allclose(img, phys, atol=0.01)


# --- hostile and broken input -------------------------------------------------------------

def _reject(path: Path, code: str) -> InputRejected:
    with pytest.raises(InputRejected) as info:
        read_dicom_image(path)
    assert info.value.code == code, info.value.reason
    assert "\n" not in info.value.reason
    for value in ("LEAKY", "MRN-LEAK-42", "19010203", "ACC-LEAK-77", "Leak General"):
        assert value not in info.value.reason
    return info.value


def _good(tmp_path: Path, name: str = "good.dcm", **kw) -> Path:
    ds = make_image_dataset(stored(phantom(), 12).astype(np.uint16), bits_stored=12,
                            phi=PHI_VALUES, **kw)
    return save(tmp_path, name, ds)


def test_png_renamed_dcm_is_rejected(tmp_path):
    from PIL import Image

    path = tmp_path / "fake.dcm"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="PNG")
    _reject(path, "not_dicom")


def test_empty_and_text_files_are_rejected(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    _reject(tmp_path / "empty.dcm", "empty")
    (tmp_path / "t.dcm").write_text("hello, this is not an image\n" * 20)
    _reject(tmp_path / "t.dcm", "not_dicom")


@pytest.mark.parametrize("magic", [b"MZ", b"\x7fELF"])
def test_executable_preamble_polyglot_is_rejected(tmp_path, magic):
    data = bytearray(_good(tmp_path).read_bytes())
    data[: len(magic)] = magic
    (tmp_path / "poly.dcm").write_bytes(bytes(data))
    _reject(tmp_path / "poly.dcm", "polyglot")


def test_missing_preamble_is_accepted_through_explicit_fallback(tmp_path, caplog):
    data = _good(tmp_path).read_bytes()[132:]  # drop preamble + DICM, keep the dataset
    (tmp_path / "nopre.dcm").write_bytes(data)
    with caplog.at_level("INFO"):
        img, _ = read_dicom_image(tmp_path / "nopre.dcm", window="percentile")
    assert corr(img, phantom()) > 0.99
    assert "no DICOM preamble" in caplog.text and "LEAKY" not in caplog.text


def test_truncated_pixel_data_is_rejected_not_half_filled(tmp_path):
    data = _good(tmp_path).read_bytes()
    (tmp_path / "trunc.dcm").write_bytes(data[:-500])
    _reject(tmp_path / "trunc.dcm", "truncated")


def test_decompression_bomb_rejected_before_decoding(tmp_path):
    ds = make_image_dataset(stored(phantom(), 12).astype(np.uint16), bits_stored=12, phi=PHI_VALUES)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
    path = tmp_path / "bomb.dcm"
    write_file(ds, path)
    err = _reject(path, "too_large")
    assert "decompression-bomb" in err.reason


def test_zero_dimension_rejected(tmp_path):
    ds = make_image_dataset(stored(phantom(), 12).astype(np.uint16), bits_stored=12)
    ds.Rows = 0
    write_file(ds, tmp_path / "zero.dcm")
    _reject(tmp_path / "zero.dcm", "bad_dimensions")


def test_no_pixel_data_and_non_image_sop_rejected(tmp_path):
    ds = make_image_dataset(stored(phantom(), 12).astype(np.uint16), bits_stored=12, phi=PHI_VALUES)
    del ds.PixelData
    write_file(ds, tmp_path / "nopix.dcm")
    _reject(tmp_path / "nopix.dcm", "not_image")
    ds = make_image_dataset(stored(phantom(), 12).astype(np.uint16), bits_stored=12)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"  # RT Structure Set
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    write_file(ds, tmp_path / "rtstruct.dcm")
    _reject(tmp_path / "rtstruct.dcm", "not_image")


def test_deeply_nested_sequences_rejected_cleanly(tmp_path):
    good = _good(tmp_path).read_bytes()
    # Hand-build 3000 nested undefined-length sequence items (explicit VR LE): recursion bait.
    depth = 3000
    open_seq = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)  # ContentSequence
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_end = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    seq_end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    nested = (open_seq + item) * depth + (item_end + seq_end) * depth
    # insert before PixelData (7FE0,0010), which is the last element
    cut = good.rfind(b"\xe0\x7f\x10\x00")
    (tmp_path / "nest.dcm").write_bytes(good[:cut] + nested + good[cut:])
    _reject(tmp_path / "nest.dcm", "nested")


def test_blank_image_rejected(tmp_path):
    ds = make_image_dataset(np.full((16, 16), 7, np.uint16), bits_stored=12)
    with pytest.raises(InputRejected, match="constant"):
        read_dicom_image(save(tmp_path, "blank.dcm", ds), window="percentile")


def test_cr_modality_meta_holds_no_phi(tmp_path):
    path = _good(tmp_path, sop_class_uid=CR_IMAGE_STORAGE, modality="CR",
                 extra={"PixelSpacing": [0.2, 0.2]})
    _, meta = read_dicom_image(path, window="percentile")
    assert meta["modality"] == "CR" and meta["pixel_spacing"] == [0.2, 0.2]
    text = repr(meta)
    for value in ("LEAKY", "MRN-LEAK-42", "19010203", "ACC-LEAK-77", "Leak General"):
        assert value not in text


def test_image_masks(tmp_path):
    from PIL import Image

    mask = np.zeros((48, 40), np.uint8)
    mask[10:20, 5:15] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    np.save(tmp_path / "m.npy", mask > 0)
    for name in ("m.png", "m.npy"):
        out = read_image_mask(tmp_path / name, shape=(48, 40))
        assert out.dtype == np.uint8 and out.sum() == 100 and set(np.unique(out)) == {0, 1}
    with pytest.raises(InputRejected, match="does not match"):
        read_image_mask(tmp_path / "m.png", shape=(40, 48))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputRejected, match="unreadable"):
        read_image_mask(tmp_path / "obj.npy", shape=(1,))


def test_corrupt_compressed_data_is_a_decode_error_not_a_missing_codec(tmp_path):
    from pydicom.encaps import encapsulate

    ds = make_image_dataset(stored(phantom(), 12).astype(np.uint16), bits_stored=12, phi=PHI_VALUES)
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01" + b"\xff" * 40])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLE_LOSSLESS
    write_file(ds, tmp_path / "bad_rle.dcm")
    _reject(tmp_path / "bad_rle.dcm", "decode_error")


def test_compressed_file_cut_at_end_of_file_is_truncated(tmp_path):
    ds = make_image_dataset(stored(phantom(64, 64), 12).astype(np.uint16), bits_stored=12)
    data = save(tmp_path, "j2k.dcm", ds, JPEG_2000_LOSSLESS).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - len(data) // 3])
    err = _reject(tmp_path / "cut.dcm", "truncated")
    assert "truncated" in err.reason
