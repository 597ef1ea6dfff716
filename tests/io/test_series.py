from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pipeline.io import series_decode
from pipeline.io.errors import InputRejected
from pipeline.io.series import read_dicom_series, series_patient_id
from tests.io.conftest import (
    PHI,
    REF_SHAPE,
    REF_SPACING,
    as_orientation,
    reference_affine,
    reference_volume,
    write_series,
)


def _axial(ref_volume, ref_affine):
    return as_orientation(ref_volume, ref_affine, "LPS")


def _reasons(meta: dict) -> dict[str, str]:
    return {e["file"]: e["reason"] for e in meta["excluded"]}


def _copy_slice(src: Path, dst: Path, **changes) -> Path:
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def test_shuffled_names_and_reversed_instances_are_sorted_by_position(axial_series, ref_volume):
    volume, meta = read_dicom_series(axial_series)
    assert volume.dtype == np.float32 and volume.shape == REF_SHAPE
    np.testing.assert_array_equal(volume, ref_volume)
    assert meta["spacing"] == pytest.approx(REF_SPACING)
    assert meta["n_files"] == meta["n_slices_used"] == REF_SHAPE[0]
    assert meta["excluded"] == [] and meta["missing_slices"] == 0
    assert meta["source_orientation"] == "LPS"
    assert meta["modality"] == "CT" and meta["kvp"] == 120.0 and meta["rows"] == REF_SHAPE[1]
    np.testing.assert_allclose(meta["affine_ras"], reference_affine(), atol=1e-4)
    json.dumps(meta)


@pytest.mark.parametrize("axcodes", ["RPS", "LPI", "PIL", "ASR", "RAS", "IRP"])
def test_any_storage_orientation_reads_back_canonical(tmp_path, ref_volume, ref_affine, axcodes):
    data, affine = as_orientation(ref_volume, ref_affine, axcodes)
    write_series(tmp_path / "s", data, affine)
    volume, meta = read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(volume, ref_volume)
    np.testing.assert_allclose(meta["affine_ras"], ref_affine, atol=1e-4)
    assert meta["spacing"] == pytest.approx(REF_SPACING)


def test_flipped_rows_and_sagittal_put_an_object_in_the_same_place(tmp_path, ref_affine):
    obj = np.zeros(REF_SHAPE, dtype=np.float32)
    obj[2:4, 1:3, 12:15] = 500.0  # inferior, anterior, patient-left corner block
    results = []
    for axcodes in ("LPS", "RPS", "PIL"):
        data, affine = as_orientation(obj, ref_affine, axcodes)
        write_series(tmp_path / axcodes, data, affine)
        volume, _ = read_dicom_series(tmp_path / axcodes)
        results.append(volume)
        assert sorted(map(tuple, np.argwhere(volume > 0)))[0] == (2, 1, 12)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_missing_slice_is_interpolated_from_true_positions(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    write_series(tmp_path / "s", data, affine, slices=[k for k in range(12) if k != 5])
    volume, meta = read_dicom_series(tmp_path / "s")
    assert meta["missing_slices"] == 1 and meta["n_slices_used"] == 11
    assert volume.shape == REF_SHAPE and meta["spacing_irregular"] is False
    np.testing.assert_allclose(volume, ref_volume, atol=1e-3)  # the object is linear along D
    np.testing.assert_allclose(meta["affine_ras"], ref_affine, atol=1e-4)


def test_missing_slice_rejected_on_request(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    write_series(tmp_path / "s", data, affine, slices=[k for k in range(12) if k != 5])
    with pytest.raises(InputRejected, match="^missing slices") as info:
        read_dicom_series(tmp_path / "s", on_missing_slices="reject")
    assert info.value.code == "missing_slices"


def test_unknown_missing_slice_mode_is_an_argument_error(axial_series):
    with pytest.raises(ValueError, match="Received: 'drop'"):
        read_dicom_series(axial_series, on_missing_slices="drop")


def test_irregular_spacing_is_resampled_and_flagged(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    steps = np.array([2.5, 2.0, 3.0, 2.2, 2.8, 2.5, 2.0, 3.1, 2.4, 2.6, 2.1])
    z = np.concatenate([[0.0], np.cumsum(steps)])
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    positions = lps[:3, 3] + z[:, None] * np.array([0.0, 0.0, 1.0])
    write_series(tmp_path / "s", data, affine, positions_lps=positions)
    volume, meta = read_dicom_series(tmp_path / "s")
    assert meta["spacing_irregular"] is True and meta["missing_slices"] == 0
    spacing = meta["slice_spacing_median"]
    grid = z[0] + spacing * np.arange(volume.shape[0])
    assert grid[-1] == pytest.approx(z[-1], abs=spacing / 2)
    np.testing.assert_allclose(volume[:, 3, 4], np.interp(grid, z, ref_volume[:, 3, 4]), atol=1e-3)


def test_duplicate_position_keeps_lowest_instance_number(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    paths = write_series(tmp_path / "s", data, affine)
    junk = np.full(data.shape[:2][::-1], 7, dtype=np.int16)
    _copy_slice(paths[3], tmp_path / "s" / "dup.dcm", InstanceNumber=5000, PixelData=junk.tobytes())
    volume, meta = read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(volume, ref_volume)
    assert "duplicate slice position" in _reasons(meta)["dup.dcm"]
    assert meta["n_files"] == 13 and meta["n_slices_used"] == 12


def test_localizer_other_series_and_non_dicom_files_are_excluded(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    directory = tmp_path / "s"
    paths = write_series(directory, data, affine)
    _copy_slice(paths[0], directory / "scout.dcm", ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    write_series(directory / "other", data, affine, series_uid="1.2.3.999", seed=1,
                 slices=range(9))
    (directory / "notes.txt").write_text("not an image\n")
    (directory / "fake.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    volume, meta = read_dicom_series(directory)
    np.testing.assert_array_equal(volume, ref_volume)
    reasons = _reasons(meta)
    assert "localizer" in reasons["scout.dcm"]
    assert "not a DICOM file" in reasons["notes.txt"] and "not a DICOM file" in reasons["fake.dcm"]
    others = [f for f in reasons if f.startswith("other/")]
    assert len(others) == 9
    assert {reasons[f] for f in others} == {"different series in the same directory"}
    assert meta["n_files"] == 12 + 1 + 9 + 2


def test_per_slice_rescale_gives_correct_hu(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    write_series(tmp_path / "s", data, affine,
                 rescale=lambda k: (0.5, -2048.0) if k % 2 else (1.0, -1024.0))
    volume, _ = read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(volume, ref_volume)


def test_truncated_slice_rejects_the_whole_series(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    paths = write_series(tmp_path / "s", data, affine)
    ds = pydicom.dcmread(paths[4])
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(paths[4], enforce_file_format=True)
    with pytest.raises(InputRejected, match="truncated") as info:
        read_dicom_series(tmp_path / "s")
    assert paths[4].name in info.value.reason and info.value.code == "truncated"


def test_raw_slice_without_preamble_or_meta_is_read_through_the_fallback(
        tmp_path, ref_volume, ref_affine):
    """A raw dataset (no preamble, no file meta) opens via the logged fallback and decodes."""
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    data, affine = _axial(ref_volume, ref_affine)
    paths = write_series(tmp_path / "s", data, affine)
    ds = pydicom.dcmread(paths[7])
    with open(paths[7], "wb") as fh:
        out = DicomFileLike(fh)
        out.is_little_endian, out.is_implicit_VR = True, False
        write_dataset(out, ds)
    volume, meta = read_dicom_series(tmp_path / "s")
    assert meta["n_slices_used"] == len(paths)
    np.testing.assert_allclose(volume, ref_volume)


def test_slice_with_corrupt_compressed_pixels_rejects_the_series(tmp_path, ref_volume, ref_affine):
    from pydicom.encaps import encapsulate

    data, affine = _axial(ref_volume, ref_affine)
    paths = write_series(tmp_path / "s", data, affine)
    ds = pydicom.dcmread(paths[5])
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01" + b"\xff" * 40])  # nonsense RLE frame
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.5"
    ds.save_as(paths[5], enforce_file_format=True)
    with pytest.raises(InputRejected, match="could not be decoded") as info:
        read_dicom_series(tmp_path / "s")
    assert paths[5].name in info.value.reason and info.value.code == "decode_error"


def test_voxel_cap_rejects_before_any_decoding(axial_series, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decode_pixels must not run")

    monkeypatch.setattr(series_decode, "decode_pixels", fail)
    with pytest.raises(InputRejected, match="exceeds the cap") as info:
        read_dicom_series(axial_series, max_voxels=int(np.prod(REF_SHAPE)) - 1)
    assert info.value.code == "too_large"


def test_too_few_slices_rejected(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    write_series(tmp_path / "s", data, affine, slices=range(5))
    with pytest.raises(InputRejected, match="too few slices"):
        read_dicom_series(tmp_path / "s")


def test_empty_directory_rejected(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(InputRejected, match="no usable DICOM"):
        read_dicom_series(tmp_path)


def test_gantry_tilt_is_flagged_not_corrected(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    step = REF_SPACING[0] * np.array([0.0, math.tan(math.radians(15.0)), 1.0])
    positions = lps[:3, 3] + np.arange(REF_SHAPE[0])[:, None] * step
    write_series(tmp_path / "s", data, affine, positions_lps=positions)
    volume, meta = read_dicom_series(tmp_path / "s")
    assert meta["gantry_tilt_deg"] == pytest.approx(15.0, abs=0.01)
    assert meta["slice_spacing_median"] == pytest.approx(REF_SPACING[0])
    np.testing.assert_array_equal(volume, ref_volume)
    # the affine keeps the true (sheared) slice step: last slice centre is where it was written
    last = np.array(meta["affine_ras"]) @ np.array([0, 0, REF_SHAPE[0] - 1, 1.0])
    np.testing.assert_allclose(last[:3], (np.diag([-1.0, -1.0, 1.0]) @ positions[-1]), atol=1e-3)


def test_untilted_series_reports_zero_tilt(axial_series):
    assert read_dicom_series(axial_series)[1]["gantry_tilt_deg"] == 0.0


def test_no_phi_in_meta_or_errors(tmp_path, ref_volume, ref_affine):
    data, affine = _axial(ref_volume, ref_affine)
    paths = write_series(tmp_path / "s", data, affine, slices=[k for k in range(12) if k != 5])
    _, meta = read_dicom_series(tmp_path / "s")
    texts = [json.dumps(meta)]
    with pytest.raises(InputRejected) as missing:
        read_dicom_series(tmp_path / "s", on_missing_slices="reject")
    ds = pydicom.dcmread(paths[0])
    ds.PixelData = ds.PixelData[:10]
    ds.save_as(paths[0], enforce_file_format=True)
    with pytest.raises(InputRejected) as truncated:
        read_dicom_series(tmp_path / "s")
    texts += [str(missing.value), str(truncated.value)]
    for text in texts:
        for value in PHI.values():
            assert value not in text
            assert value.split("^")[0] not in text


def test_patient_id_is_only_available_separately(axial_series):
    assert series_patient_id(axial_series) == PHI["PatientID"]


def test_reference_fixture_is_self_consistent():
    volume = reference_volume()
    assert len(np.unique(volume)) == volume.size  # every voxel identifiable
