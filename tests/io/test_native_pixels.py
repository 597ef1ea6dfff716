"""``native_pixels`` (uncompressed little-endian Pixel Data read without pydicom's per-call decoder
set-up) returns what pydicom's decoder returns, value for value and dtype for dtype, and leaves
everything else to pydicom."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, RLELossless

from pipeline.io.dicom_pixels import decode_pixels, native_pixels, pixel_geometry


def _dataset(raw: bytes, *, ts: str, rows: int, cols: int, frames: int, bits: int, stored: int,
             signed: int, samples: int = 1) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, samples
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, stored, stored - 1, signed
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples > 1:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = raw
    return ds


@st.composite
def native_cases(draw):
    bits = draw(st.sampled_from([8, 16, 32]))
    stored = draw(st.integers(1, bits))
    rows, cols, frames = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    n_bytes = rows * cols * frames * bits // 8
    raw = draw(st.binary(min_size=n_bytes, max_size=n_bytes))  # garbage in the unused high bits
    if n_bytes % 2:  # values have even length: files carry one byte of padding
        raw += b"\x00"
    frame = draw(st.none() | st.integers(0, frames - 1))
    ts = draw(st.sampled_from([ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
    return _dataset(raw, ts=ts, rows=rows, cols=cols, frames=frames, bits=bits, stored=stored,
                    signed=draw(st.integers(0, 1))), frame


@settings(max_examples=200, deadline=None)
@given(native_cases())
def test_values_and_dtype_are_pydicoms(case):
    ds, frame = case
    ts = ds.file_meta.TransferSyntaxUID
    ours = native_pixels(ds, ts, frame, pixel_geometry(ds))
    theirs, _ = get_decoder(ts).as_array(ds, index=frame, as_rgb=True)
    assert ours is not None and ours.ndim == 1 and ours.flags.writeable
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs.ravel())


def test_signed_12_bit_values_are_sign_extended_and_unsigned_ones_masked():
    raw = np.array([0xF123, 0x0FFF, 0x8000, 0x1234], "<u2").tobytes()
    for signed, expected in ((0, [0x123, 0xFFF, 0, 0x234]), (1, [0x123, -1, 0, 0x234])):
        ds = _dataset(raw, ts=ExplicitVRLittleEndian, rows=2, cols=2, frames=1, bits=16, stored=12,
                      signed=signed)
        got = native_pixels(ds, ds.file_meta.TransferSyntaxUID, None, pixel_geometry(ds))
        assert got.tolist() == expected


@pytest.mark.parametrize("change", ["compressed", "rgb", "stored_above_allocated", "short", "one_bit"])
def test_anything_else_is_left_to_pydicom(change):
    kw = {"ts": ExplicitVRLittleEndian, "rows": 2, "cols": 2, "frames": 1, "bits": 16, "stored": 12,
          "signed": 0}
    raw = bytes(8)
    if change == "compressed":
        kw["ts"] = JPEGLSLossless
    elif change == "rgb":
        kw.update(bits=8, stored=8, samples=3)
        raw = bytes(12)
    elif change == "stored_above_allocated":
        kw["stored"] = 17
    elif change == "short":
        raw = bytes(6)
    else:
        kw.update(bits=1, stored=1)
        raw = bytes(2)
    ds = _dataset(raw, **kw)
    assert native_pixels(ds, ds.file_meta.TransferSyntaxUID, None, pixel_geometry(ds)) is None


def test_decode_pixels_gives_the_same_frames_through_either_path():
    """decode_pixels' result through the native read equals pydicom's own decoding of the same
    bytes under RLE, a syntax only pydicom decodes here."""
    from pydicom.pixels import compress

    values = np.arange(2 * 3 * 4, dtype="<u2").reshape(2, 3, 4) * 97 % 4096
    native = _dataset(values.tobytes(), ts=ExplicitVRLittleEndian, rows=3, cols=4, frames=2, bits=16,
                      stored=12, signed=0)
    encoded = _dataset(values.tobytes(), ts=ExplicitVRLittleEndian, rows=3, cols=4, frames=2, bits=16,
                       stored=12, signed=0)
    compress(encoded, RLELossless, encoding_plugin="pydicom")
    for frame in (None, 1):
        a, b = decode_pixels(native, frame=frame), decode_pixels(encoded, frame=frame)
        assert a.shape == b.shape == ((2, 3, 4) if frame is None else (1, 3, 4))
        np.testing.assert_array_equal(a, b)
