"""JPEG Lossless DICOM (common in CR/DX archives) decodes exactly without any GPL component.

pylibjpeg-libjpeg (GPL-3.0) is an opt-in extra; the default decoder for the JPEG 1992 syntaxes
is GDCM (BSD). The files are encoded here with GDCM itself (pydicom cannot encode JPEG 1992).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.demo.dicom_files import save_dataset
from pipeline.demo.dicom_writer import make_image_dataset
from pipeline.io.dicom import open_dicom
from pipeline.io.dicom_image import image_from_dataset
from pipeline.io.dicom_pixels import PREFERRED_PLUGINS, decode_pixels

JPEG_LOSSLESS = {"1.2.840.10008.1.2.4.57": "JPEGLosslessProcess14",
                 "1.2.840.10008.1.2.4.70": "JPEGLosslessProcess14_1"}


def _gdcm_transcode(src: Path, dst: Path, syntax: str) -> Path:
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    return dst


@pytest.mark.parametrize("uid", sorted(JPEG_LOSSLESS))
def test_jpeg_lossless_radiograph_decodes_bit_exact_with_gdcm(tmp_path, uid):
    rng = np.random.default_rng(7)
    stored = rng.integers(0, 4096, size=(60, 44)).astype(np.uint16)  # 12-bit, like CR/DX
    src = tmp_path / "raw.dcm"
    save_dataset(make_image_dataset(stored, bits_stored=12, uid_key="jl"), src)
    path = _gdcm_transcode(src, tmp_path / "jl.dcm", JPEG_LOSSLESS[uid])

    ds = open_dicom(path)
    assert str(ds.file_meta.TransferSyntaxUID) == uid
    assert PREFERRED_PLUGINS[uid][0] == "gdcm"  # the BSD decoder first, also the faster one
    np.testing.assert_array_equal(decode_pixels(ds)[0], stored)

    from pydicom.pixels.decoders.base import get_decoder

    forced, _ = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, decoding_plugin="gdcm")
    np.testing.assert_array_equal(forced, stored)  # GDCM alone suffices: no libjpeg needed
    image, meta = image_from_dataset(ds, window="percentile", percentiles=(0.0, 100.0))
    assert image.shape == stored.shape and 0.0 <= image.min() and image.max() <= 1.0


def test_the_gpl_decoder_is_not_a_default_dependency():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("pylibjpeg-libjpeg") for dep in project["dependencies"])
    assert any(dep.startswith("pylibjpeg-libjpeg") for dep in project["optional-dependencies"]["jpeg-gpl"])
