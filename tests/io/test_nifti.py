from __future__ import annotations

import json
import struct

import nibabel as nib
import numpy as np
import pytest

from pipeline.io.errors import InputRejected
from pipeline.io.nifti import read_nifti
from pipeline.io.orientation import to_source_orientation
from pipeline.io.series import read_dicom_series
from tests.io.conftest import REF_SHAPE, REF_SPACING, as_orientation, write_nifti, write_series

ORIENTATIONS = ["RAS", "LPS", "PIL", "ASR", "SLA"]


@pytest.mark.parametrize("axcodes", ORIENTATIONS)
def test_any_storage_orientation_reads_back_canonical(tmp_path, ref_volume, ref_affine, axcodes):
    data, affine = as_orientation(ref_volume, ref_affine, axcodes)
    volume, meta = read_nifti(write_nifti(tmp_path / "v.nii.gz", data, affine))
    assert volume.dtype == np.float32
    np.testing.assert_array_equal(volume, ref_volume)
    np.testing.assert_allclose(meta["affine_ras"], ref_affine, atol=1e-4)
    assert meta["spacing"] == pytest.approx(REF_SPACING)
    assert meta["source_orientation"] == axcodes
    assert meta["original_shape"] == list(data.shape)
    np.testing.assert_array_equal(to_source_orientation(volume, meta["source_affine_ras"]), data)
    json.dumps(meta)


@pytest.mark.parametrize("axcodes", ORIENTATIONS)
def test_nifti_and_dicom_series_of_one_object_agree(tmp_path, ref_volume, ref_affine, axcodes):
    """Cross-format agreement: same voxels, same world geometry, whatever the storage."""
    nifti_data, nifti_affine = as_orientation(ref_volume, ref_affine, axcodes)
    from_nifti, nifti_meta = read_nifti(write_nifti(tmp_path / "v.nii", nifti_data, nifti_affine))
    dicom_data, dicom_affine = as_orientation(ref_volume, ref_affine, "LPS")
    write_series(tmp_path / "series", dicom_data, dicom_affine)
    from_dicom, dicom_meta = read_dicom_series(tmp_path / "series")
    np.testing.assert_array_equal(from_nifti, from_dicom)
    np.testing.assert_allclose(nifti_meta["affine_ras"], dicom_meta["affine_ras"], atol=1e-4)
    assert nifti_meta["spacing"] == pytest.approx(dicom_meta["spacing"])


def test_sform_preferred_over_qform(tmp_path, ref_volume, ref_affine):
    data, affine = as_orientation(ref_volume, ref_affine, "RAS")
    img = nib.Nifti1Image(data, affine)
    shifted = affine.copy()
    shifted[:3, 3] += 7.0
    img.set_qform(shifted, code=1)
    img.set_sform(affine, code=2)
    nib.save(img, str(tmp_path / "v.nii"))
    _, meta = read_nifti(tmp_path / "v.nii")
    assert meta["affine_source"] == "sform"
    np.testing.assert_allclose(meta["affine_ras"], ref_affine, atol=1e-4)


def test_qform_used_when_sform_code_is_zero(tmp_path, ref_volume, ref_affine):
    data, affine = as_orientation(ref_volume, ref_affine, "RAS")
    _, meta = read_nifti(write_nifti(tmp_path / "v.nii", data, affine, sform_code=0))
    assert meta["affine_source"] == "qform"
    np.testing.assert_allclose(meta["affine_ras"], ref_affine, atol=1e-4)


def test_unknown_orientation_rejected(tmp_path, ref_volume, ref_affine):
    path = write_nifti(tmp_path / "v.nii", ref_volume, ref_affine, qform_code=0, sform_code=0)
    with pytest.raises(InputRejected, match="orientation is unknown") as info:
        read_nifti(path)
    assert info.value.code == "no_orientation"
    volume, meta = read_nifti(path, require_orientation=False)
    assert volume.shape[0] * volume.shape[1] * volume.shape[2] == ref_volume.size
    assert meta["affine_source"] == "none"


def test_4d_singleton_is_squeezed(tmp_path, ref_volume, ref_affine):
    data, affine = as_orientation(ref_volume, ref_affine, "RAS")
    volume, meta = read_nifti(write_nifti(tmp_path / "v.nii", data[..., None], affine))
    np.testing.assert_array_equal(volume, ref_volume)
    assert meta["original_shape"] == list(data.shape)


def test_4d_rejected(tmp_path, ref_volume, ref_affine):
    data = np.stack([ref_volume, ref_volume], axis=-1)
    path = write_nifti(tmp_path / "v.nii", data, ref_affine)
    with pytest.raises(InputRejected, match="not a 3D volume"):
        read_nifti(path)


def test_2d_rejected(tmp_path, ref_affine):
    path = write_nifti(tmp_path / "v.nii", np.zeros((4, 5), np.float32), ref_affine)
    with pytest.raises(InputRejected, match="not a 3D volume"):
        read_nifti(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rejected(tmp_path, ref_volume, ref_affine, bad):
    data = ref_volume.copy()
    data[3, 4, 5] = bad
    with pytest.raises(InputRejected, match="non-finite"):
        read_nifti(write_nifti(tmp_path / "v.nii", data, ref_affine))


def test_scl_slope_and_inter_applied(tmp_path, ref_affine):
    stored = np.arange(np.prod(REF_SHAPE), dtype=np.int16).reshape(REF_SHAPE[::-1])
    write_nifti(tmp_path / "v.nii", stored, ref_affine)
    raw = bytearray((tmp_path / "v.nii").read_bytes())
    raw[112:120] = struct.pack("<ff", 2.0, -10.0)  # scl_slope, scl_inter (NIfTI-1 offsets)
    (tmp_path / "v.nii").write_bytes(bytes(raw))
    proxy = nib.load(str(tmp_path / "v.nii")).dataobj
    assert (proxy.slope, proxy.inter) == (2.0, -10.0)  # nibabel moves scl_* into the proxy
    volume, meta = read_nifti(tmp_path / "v.nii")
    np.testing.assert_allclose(volume, stored.transpose(2, 1, 0) * 2.0 - 10.0)
    assert meta["dtype"] == "int16"


def test_voxel_cap_checked_on_header(tmp_path, ref_volume, ref_affine):
    path = write_nifti(tmp_path / "v.nii", ref_volume, ref_affine)
    with pytest.raises(InputRejected, match="exceed the cap") as info:
        read_nifti(path, max_voxels=ref_volume.size - 1)
    assert info.value.code == "too_large"


def test_metre_units_converted_to_mm(tmp_path, ref_volume, ref_affine):
    data, affine = as_orientation(ref_volume, ref_affine, "RAS")
    img = nib.Nifti1Image(data, affine / np.array([1000.0, 1000.0, 1000.0, 1.0])[:, None])
    img.header.set_xyzt_units("meter")
    nib.save(img, str(tmp_path / "v.nii"))
    _, meta = read_nifti(tmp_path / "v.nii")
    assert meta["spacing"] == pytest.approx(REF_SPACING)
    np.testing.assert_allclose(meta["affine_ras"], ref_affine, atol=1e-3)


@pytest.mark.parametrize("content", [b"", b"not a nifti at all" * 40, b"\x5c\x01" + bytes(400)])
def test_garbage_rejected(tmp_path, content):
    path = tmp_path / "v.nii"
    path.write_bytes(content)
    with pytest.raises(InputRejected):
        read_nifti(path)


def test_truncated_data_rejected(tmp_path, ref_volume, ref_affine):
    path = write_nifti(tmp_path / "v.nii", ref_volume, ref_affine)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputRejected):
        read_nifti(path)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(InputRejected, match="not found"):
        read_nifti(tmp_path / "absent.nii.gz")
