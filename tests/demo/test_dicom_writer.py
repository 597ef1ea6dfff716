"""Tests for pipeline.demo.dicom_writer, dicom_files and fake_phi: every transfer syntax and pitfall
round-trips."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from pipeline.demo import dicom_writer as dw
from pipeline.demo.dicom_files import TRANSFER_SYNTAXES, save_dataset, write_file
from pipeline.demo.fake_phi import PHI, fake_phi

LOSSLESS = (dw.EXPLICIT_VR_LITTLE_ENDIAN, dw.IMPLICIT_VR_LITTLE_ENDIAN, dw.RLE_LOSSLESS,
            dw.JPEG_2000_LOSSLESS, dw.JPEG_LS_LOSSLESS)


def _phi() -> PHI:
    return fake_phi(np.random.default_rng(0), 7)


def _gradient(rows: int = 48, cols: int = 40, top: int = 4095) -> np.ndarray:
    """A smooth test image with some structure, values in [0, top]."""
    r, c = np.mgrid[0:rows, 0:cols]
    img = 0.5 + 0.3 * np.sin(r / 7.0) * np.cos(c / 5.0) + 0.2 * (c / cols)
    return np.rint(np.clip(img, 0, 1) * top)


def _cases() -> dict[str, dict]:
    g12 = _gradient().astype(np.uint16)
    g8 = _gradient(top=255).astype(np.uint8)
    rgb = np.stack([g8, g8[::-1], 255 - g8], axis=-1)
    signed = (g12.astype(np.int32) - 2048).astype(np.int16)
    return {
        "12bit": {"pixels": g12, "bits_stored": 12},
        "8bit": {"pixels": g8, "bits_allocated": 8},
        "signed16": {"pixels": signed, "signed": True, "rescale": (1.0, 2048.0)},
        "multiframe": {"pixels": np.stack([g12, g12[::-1], g12[:, ::-1]]), "bits_stored": 12},
        "rgb": {"pixels": rgb, "photometric": "RGB", "bits_allocated": 8,
                "sop_class_uid": dw.SECONDARY_CAPTURE_STORAGE},
    }


def _syntax_cases() -> list[tuple[str, str]]:
    out = []
    for name, case in _cases().items():
        for ts in TRANSFER_SYNTAXES:
            eight_bit = case.get("bits_allocated") == 8
            if ts == dw.JPEG_BASELINE_8BIT and not eight_bit:
                continue
            out.append((name, ts))
    return out


@pytest.mark.parametrize(("case", "syntax"), _syntax_cases())
def test_every_transfer_syntax_round_trips(tmp_path: Path, case: str, syntax: str) -> None:
    kwargs = _cases()[case]
    ds = dw.make_image_dataset(phi=_phi(), **kwargs)
    path = tmp_path / "x.dcm"
    save_dataset(ds, path, transfer_syntax=syntax)
    back = pydicom.dcmread(path)
    assert back.file_meta.TransferSyntaxUID == syntax
    assert back.SOPInstanceUID == back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    arr = back.pixel_array
    want = kwargs["pixels"]
    assert arr.shape == want.shape
    diff = np.abs(arr.astype(np.float64) - want.astype(np.float64))
    if syntax in LOSSLESS:
        assert diff.max() == 0
    else:
        top = 255.0 if want.dtype == np.uint8 else 4095.0
        assert diff.mean() < 0.02 * top
        assert back.LossyImageCompression == "01"


@pytest.mark.parametrize("syntax", TRANSFER_SYNTAXES)
def test_preamble_is_zeroed(tmp_path: Path, syntax: str) -> None:
    ds = dw.make_image_dataset(_gradient(top=255).astype(np.uint8), bits_allocated=8)
    ds.preamble = b"MZ" + b"\x90" * 126  # an executable-looking preamble must not survive
    path = tmp_path / "x.dcm"
    save_dataset(ds, path, transfer_syntax=syntax)
    head = path.read_bytes()[:132]
    assert head[:128] == b"\x00" * 128
    assert head[128:] == b"DICM"


def test_write_file_keeps_the_syntax_and_zeroes_the_preamble(tmp_path: Path) -> None:
    ds = dw.make_image_dataset(_gradient().astype(np.uint16), bits_stored=12)
    ds.preamble = b"\x7fELF" + b"\x01" * 124
    write_file(ds, tmp_path / "x.dcm")
    assert (tmp_path / "x.dcm").read_bytes()[:132] == b"\x00" * 128 + b"DICM"
    assert ds.preamble[:4] == b"\x7fELF"  # the caller's dataset is untouched
    back = pydicom.dcmread(tmp_path / "x.dcm")
    assert back.file_meta.TransferSyntaxUID == dw.EXPLICIT_VR_LITTLE_ENDIAN


def test_save_does_not_modify_input_and_is_byte_reproducible(tmp_path: Path) -> None:
    ds = dw.make_image_dataset(_gradient().astype(np.uint16), bits_stored=12, phi=_phi())
    pixel_data = ds.PixelData
    save_dataset(ds, tmp_path / "a.dcm", transfer_syntax=dw.JPEG_2000_LOSSLESS)
    assert ds.PixelData is pixel_data
    assert ds.file_meta.TransferSyntaxUID == dw.EXPLICIT_VR_LITTLE_ENDIAN
    again = dw.make_image_dataset(_gradient().astype(np.uint16), bits_stored=12, phi=_phi())
    save_dataset(again, tmp_path / "b.dcm", transfer_syntax=dw.JPEG_2000_LOSSLESS)
    assert (tmp_path / "a.dcm").read_bytes() == (tmp_path / "b.dcm").read_bytes()


def test_unused_high_bits_hold_garbage_that_pydicom_masks(tmp_path: Path) -> None:
    pixels = _gradient().astype(np.uint16)
    ds = dw.make_image_dataset(pixels, bits_stored=12,
                               unused_bits_rng=np.random.default_rng(1))
    path = tmp_path / "x.dcm"
    save_dataset(ds, path)
    back = pydicom.dcmread(path)
    raw = np.frombuffer(back.PixelData, dtype="<u2")
    assert np.all(raw >> 12 != 0)  # every word carries garbage above BitsStored
    assert np.array_equal(raw & 0x0FFF, pixels.ravel())
    assert np.array_equal(back.pixel_array, pixels)


def test_unused_high_bits_with_signed_data_are_sign_extended_by_pydicom(tmp_path: Path) -> None:
    pixels = (_gradient().astype(np.int32) - 2048).astype(np.int16)
    ds = dw.make_image_dataset(pixels, bits_stored=12, signed=True,
                               unused_bits_rng=np.random.default_rng(2))
    save_dataset(ds, tmp_path / "x.dcm")
    assert np.array_equal(pydicom.dcmread(tmp_path / "x.dcm").pixel_array, pixels)


def _physical() -> np.ndarray:
    """An 'attenuation' image in [0, 1]: higher = denser = whiter on display."""
    return _gradient(top=1000) / 1000.0


def _display(ds: pydicom.Dataset) -> np.ndarray:
    """Reference reader: modality LUT -> VOI (LINEAR window, PS3.3 C.11.2.1.2) -> MONO1
    inversion, normalised to [0, 1]."""
    arr = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if "WindowCenter" in ds:
        c, w = float(ds.WindowCenter), float(ds.WindowWidth)
        arr = np.clip((arr - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0)
    arr = (arr - arr.min()) / np.ptp(arr)
    return 1.0 - arr if ds.PhotometricInterpretation == "MONOCHROME1" else arr


@pytest.mark.parametrize(
    ("photometric", "slope", "window"),
    [("MONOCHROME1", 1.0, None), ("MONOCHROME1", 0.5, True), ("MONOCHROME2", -1.0, None),
     ("MONOCHROME1", -1.0, True), ("MONOCHROME2", 2.0, True)],
)
def test_monochrome1_and_negative_slope_decode_to_the_physical_image(
        tmp_path: Path, photometric: str, slope: float, window: bool | None) -> None:
    p = _physical()
    t = 1.0 - p if photometric == "MONOCHROME1" else p  # rescaled values rise with t
    lo, hi = 100, 3900
    stored = lo + (t if slope > 0 else 1.0 - t) * (hi - lo)  # negative slope: stored flipped
    intercept = 0.0 if slope > 0 else float(hi)
    values = slope * np.array([lo, hi]) + intercept
    win = (float(values.mean()), float(abs(np.ptp(values)) + 1)) if window else None
    ds = dw.make_image_dataset(np.rint(stored).astype(np.uint16), bits_stored=12,
                               photometric=photometric, rescale=(slope, intercept), window=win)
    save_dataset(ds, tmp_path / "x.dcm")
    shown = _display(pydicom.dcmread(tmp_path / "x.dcm"))
    assert np.corrcoef(shown.ravel(), p.ravel())[0, 1] > 0.999
    # A reader that skips rescale and inversion sees the image inverted exactly when one
    # (not both) of MONOCHROME1 and a negative slope applies.
    naive = pydicom.dcmread(tmp_path / "x.dcm").pixel_array.astype(np.float64)
    inverted = (photometric == "MONOCHROME1") != (slope < 0)
    assert (np.corrcoef(naive.ravel(), p.ravel())[0, 1] < 0) == inverted


def test_voi_lut_sequence_and_sigmoid(tmp_path: Path) -> None:
    pixels = _gradient().astype(np.uint16)
    lut = np.rint(np.sqrt(np.linspace(0, 1, 4096)) * 65535).astype(np.uint16)
    ds = dw.make_image_dataset(pixels, bits_stored=12, voi_lut=lut)
    save_dataset(ds, tmp_path / "lut.dcm", transfer_syntax=dw.IMPLICIT_VR_LITTLE_ENDIAN)
    back = pydicom.dcmread(tmp_path / "lut.dcm")
    assert list(back.VOILUTSequence[0].LUTDescriptor) == [4096, 0, 16]
    assert np.array_equal(apply_voi_lut(back.pixel_array, back), lut[pixels])

    sig = dw.make_image_dataset(pixels, bits_stored=12, window=(2048.0, 2000.0),
                                extra={"VOILUTFunction": "SIGMOID"})
    save_dataset(sig, tmp_path / "sig.dcm")
    back = pydicom.dcmread(tmp_path / "sig.dcm")
    assert back.VOILUTFunction == "SIGMOID"
    out = apply_voi_lut(back.pixel_array, back)
    assert np.corrcoef(out.ravel(), pixels.ravel())[0, 1] > 0.9


def test_multiframe_and_rgb_headers(tmp_path: Path) -> None:
    cases = _cases()
    mf = dw.make_image_dataset(**cases["multiframe"])
    assert mf.NumberOfFrames == 3 and mf.SamplesPerPixel == 1
    rgb = dw.make_image_dataset(**cases["rgb"])
    assert rgb.SamplesPerPixel == 3 and rgb.PlanarConfiguration == 0
    assert rgb.PhotometricInterpretation == "RGB" and "NumberOfFrames" not in rgb
    save_dataset(rgb, tmp_path / "rgb.dcm", transfer_syntax=dw.JPEG_BASELINE_8BIT)
    back = pydicom.dcmread(tmp_path / "rgb.dcm")
    assert back.PhotometricInterpretation == "YBR_FULL"
    assert back.pixel_array.shape == (48, 40, 3)


def test_ct_slice_geometry_and_hu(tmp_path: Path) -> None:
    hu = _gradient().astype(np.int32) - 1024
    stored = (hu + 1024).astype(np.uint16)
    kwargs = dict(position=(-160.0, -150.5, 42.5), orientation=(1, 0, 0, 0, 1, 0),
                  pixel_spacing=(3.5, 3.25), slice_thickness=2.5, instance_number=9,
                  series_uid="1.2.3.4", study_uid="1.2.3", frame_of_reference_uid="1.2.3.5",
                  phi=_phi())
    ds = dw.make_ct_slice_dataset(stored, **kwargs)
    save_dataset(ds, tmp_path / "ct.dcm", transfer_syntax=dw.RLE_LOSSLESS)
    back = pydicom.dcmread(tmp_path / "ct.dcm")
    assert back.SOPClassUID == dw.CT_IMAGE_STORAGE
    assert [float(v) for v in back.ImagePositionPatient] == [-160.0, -150.5, 42.5]
    assert [float(v) for v in back.PixelSpacing] == [3.5, 3.25]
    assert float(back.SliceLocation) == 42.5 and back.InstanceNumber == 9
    assert back.SeriesInstanceUID == "1.2.3.4" and back.FrameOfReferenceUID == "1.2.3.5"
    assert back.BitsStored == 12 and back.PixelRepresentation == 0
    assert np.array_equal(apply_modality_lut(back.pixel_array, back), hu)

    signed = dw.make_ct_slice_dataset(hu.astype(np.int16), rescale=(1.0, 0.0), **kwargs)
    assert signed.PixelRepresentation == 1 and signed.BitsStored == 16
    with pytest.raises(ValueError, match="int16 or uint16"):
        dw.make_ct_slice_dataset(hu.astype(np.float32), **kwargs)


def test_invalid_arguments_raise_value_errors(tmp_path: Path) -> None:
    g = _gradient().astype(np.uint16)
    with pytest.raises(ValueError, match=r"stored values must lie in \[0, 255\]"):
        dw.make_image_dataset(g, bits_stored=8)
    with pytest.raises(ValueError, match="DICOM keywords. Received: 'NotAKeyword'"):
        dw.make_image_dataset(g, extra={"NotAKeyword": 1})
    with pytest.raises(ValueError, match="photometric must be one of"):
        dw.make_image_dataset(g, photometric="PALETTE COLOR")
    ds = dw.make_image_dataset(g, bits_stored=12)
    with pytest.raises(ValueError, match="JPEG Baseline needs 8-bit"):
        save_dataset(ds, tmp_path / "unused.dcm", transfer_syntax=dw.JPEG_BASELINE_8BIT)
    with pytest.raises(ValueError, match="transfer_syntax must be one of"):
        save_dataset(ds, tmp_path / "unused.dcm", transfer_syntax="1.2.3")


def test_fake_phi_is_realistic_and_unique_per_index() -> None:
    rng = np.random.default_rng(3)
    phis = [fake_phi(rng, i) for i in range(50)]
    assert len({p.patient_id for p in phis}) == 50
    for p in phis:
        assert re.fullmatch(r"[A-Z]+\^[A-Z]+\^\d+", p.patient_name)
        assert re.fullmatch(r"MRN\d{7}", p.patient_id)
        assert re.fullmatch(r"(19[3-9]\d|200[0-5])(0[1-9]|1[0-2])(0[1-9]|1\d|2[0-8])", p.birth_date)
        assert re.fullmatch(r"ACC\d{6}", p.accession_number)
    ds = dw.make_image_dataset(_gradient().astype(np.uint16), bits_stored=12, phi=phis[0])
    assert ds.PatientID == phis[0].patient_id and ds.AccessionNumber == phis[0].accession_number
    assert str(ds.PatientName) == phis[0].patient_name
