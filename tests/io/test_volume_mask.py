from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.io.errors import InputRejected
from pipeline.io.nifti import read_nifti
from pipeline.io.series import read_dicom_series
from pipeline.io.volume_mask import read_volume_mask
from tests.io.conftest import REF_SHAPE, as_orientation, write_nifti, write_series


@pytest.fixture
def mask() -> np.ndarray:
    """Canonical (D, H, W) mask: an asymmetric block plus a corner voxel."""
    out = np.zeros(REF_SHAPE, dtype=np.uint8)
    out[2:5, 3:9, 10:15] = 1
    out[0, 0, 0] = 3  # any value > 0 is foreground
    return out


@pytest.fixture
def image_meta(tmp_path, ref_volume, ref_affine) -> dict:
    data, affine = as_orientation(ref_volume, ref_affine, "RAS")
    return read_nifti(write_nifti(tmp_path / "image.nii.gz", data, affine))[1]


def _write_mask(path: Path, mask: np.ndarray, affine: np.ndarray, axcodes: str) -> Path:
    data, source_affine = as_orientation(mask, affine, axcodes)
    return write_nifti(path, data, source_affine)


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "SLA"])
def test_nifti_mask_follows_its_image_orientation(tmp_path, mask, ref_affine, image_meta, axcodes):
    path = _write_mask(tmp_path / "mask.nii.gz", mask, ref_affine, axcodes)
    out = read_volume_mask(path, image_meta=image_meta)
    assert out.dtype == np.uint8 and out.shape == REF_SHAPE
    np.testing.assert_array_equal(out, (mask > 0).astype(np.uint8))


def test_shifted_mask_grid_rejected(tmp_path, mask, ref_affine, image_meta):
    shifted = ref_affine.copy()
    shifted[:3, 3] += (0.0, 0.0, 5.0)
    path = _write_mask(tmp_path / "mask.nii.gz", mask, shifted, "RAS")
    with pytest.raises(InputRejected, match="mask grid does not match its image") as info:
        read_volume_mask(path, image_meta=image_meta)
    assert info.value.code == "mask_mismatch"


def test_mask_shape_mismatch_rejected(tmp_path, mask, ref_affine, image_meta):
    path = _write_mask(tmp_path / "mask.nii.gz", mask[:-1], ref_affine, "RAS")
    with pytest.raises(InputRejected, match="mask grid does not match its image"):
        read_volume_mask(path, image_meta=image_meta)


def test_larger_mask_rejected_as_mismatch(tmp_path, ref_affine, image_meta):
    big = np.zeros((REF_SHAPE[0] + 1,) + REF_SHAPE[1:], dtype=np.uint8)
    path = _write_mask(tmp_path / "mask.nii.gz", big, ref_affine, "RAS")
    with pytest.raises(InputRejected, match="mask grid does not match its image"):
        read_volume_mask(path, image_meta=image_meta)


def test_mask_matches_interpolated_dicom_grid(tmp_path, mask, ref_volume, ref_affine):
    data, affine = as_orientation(ref_volume, ref_affine, "LPS")
    write_series(tmp_path / "s", data, affine, slices=[k for k in range(12) if k != 5])
    _, meta = read_dicom_series(tmp_path / "s")
    assert meta["missing_slices"] == 1
    path = _write_mask(tmp_path / "mask.nii", mask, ref_affine, "LPS")
    np.testing.assert_array_equal(read_volume_mask(path, image_meta=meta), mask > 0)


def test_npy_mask_is_taken_as_canonical(tmp_path, mask, image_meta):
    np.save(tmp_path / "mask.npy", mask.astype(bool))
    out = read_volume_mask(tmp_path / "mask.npy", image_meta=image_meta)
    np.testing.assert_array_equal(out, mask > 0)
    assert out.dtype == np.uint8


def test_npy_shape_mismatch_rejected(tmp_path, mask, image_meta):
    np.save(tmp_path / "mask.npy", mask.transpose(2, 1, 0))
    with pytest.raises(InputRejected, match="mask grid does not match its image"):
        read_volume_mask(tmp_path / "mask.npy", image_meta=image_meta)


class _Payload:
    """Unpickling this would create a file: it must never happen."""

    sentinel: Path

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def test_pickled_npy_rejected_without_unpickling(tmp_path, image_meta):
    payload = _Payload()
    payload.sentinel = tmp_path / "pwned"
    np.save(tmp_path / "mask.npy", np.array([payload], dtype=object), allow_pickle=True)
    with pytest.raises(InputRejected, match="refused") as info:
        read_volume_mask(tmp_path / "mask.npy", image_meta=image_meta)
    assert info.value.code == "unreadable"
    assert not payload.sentinel.exists()


def test_npy_nan_rejected(tmp_path, image_meta):
    values = np.zeros(REF_SHAPE, dtype=np.float32)
    values[1, 1, 1] = np.nan
    np.save(tmp_path / "mask.npy", values)
    with pytest.raises(InputRejected, match="non-finite"):
        read_volume_mask(tmp_path / "mask.npy", image_meta=image_meta)


def test_unknown_format_rejected(tmp_path, image_meta):
    (tmp_path / "mask.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputRejected, match="unsupported mask format"):
        read_volume_mask(tmp_path / "mask.png", image_meta=image_meta)
