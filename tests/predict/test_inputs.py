"""pipeline.predict.inputs: files, folders and CSVs of paths -> studies, every input accounted for."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.predict.inputs import (
    CSV_EMPTY_PATH,
    CSV_WITHOUT_PATH,
    IMAGE_FOR_3D,
    NESTED_CSV,
    NOT_FOUND,
    UNSUPPORTED_3D,
    VOLUME_FOR_2D,
    discover,
)

DICOM_HEAD = b"\0" * 128 + b"DICM"
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


def _archive(root: Path) -> Path:
    """A nested folder: DICOM files, a series folder, NIfTI, PNG and junk (content by signature)."""
    for rel, data in {"b/x1.dcm": DICOM_HEAD, "b/x2": DICOM_HEAD + b"no suffix",
                      "a/series/s1": DICOM_HEAD, "a/series/s2": DICOM_HEAD, "a/vol.nii.gz": b"nifti",
                      "a/deep/er/img.png": PNG_HEAD, "c/notes.txt": b"junk", "top.nii": b"nifti"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _rel(found, root):
    return [(c.path.relative_to(root).as_posix(), c.rejection) for c in found]


def test_folder_for_a_2d_model_every_file_is_a_study_but_volumes(tmp_path):
    root = _archive(tmp_path / "in")
    found = discover([root], kind="2d")
    assert [c.position for c in found] == list(range(8))
    assert _rel(found, root) == [  # sorted by name at every level
        ("a/deep/er/img.png", None), ("a/series/s1", None), ("a/series/s2", None),
        ("a/vol.nii.gz", VOLUME_FOR_2D), ("b/x1.dcm", None), ("b/x2", None),
        ("c/notes.txt", None),  # the reader says why (not DICOM)
        ("top.nii", VOLUME_FOR_2D)]


def test_folder_for_a_3d_model_groups_series_and_rejects_the_rest(tmp_path):
    root = _archive(tmp_path / "in")
    assert _rel(discover([root], kind="3d"), root) == [
        ("a/deep/er/img.png", IMAGE_FOR_3D), ("a/series", None), ("a/vol.nii.gz", None),
        ("b", None),  # a folder of DICOM files is one series
        ("c/notes.txt", UNSUPPORTED_3D), ("top.nii", None)]
    # a series folder named directly, and a file named directly goes to the reader
    assert _rel(discover([root / "a" / "series", root / "c" / "notes.txt"], kind="3d"), root) == [
        ("a/series", None), ("c/notes.txt", None)]


def test_csv_of_paths_relative_to_its_folder(tmp_path):
    root = _archive(tmp_path / "in")
    other = tmp_path / "elsewhere.png"
    other.write_bytes(PNG_HEAD)
    listing = root / "lists" / "batch.csv"
    listing.parent.mkdir()
    listing.write_text("id,path\n1,../b/x1.dcm\n2,\n3,../missing.dcm\n"
                       f"4,{other}\n5,../a/series\n6,batch.csv\n")
    found = discover([listing, tmp_path / "gone.dcm"], kind="2d")
    assert [(c.path, c.rejection) for c in found] == [
        (root / "lists" / "../b/x1.dcm", None), (listing, CSV_EMPTY_PATH),
        (root / "lists" / "../missing.dcm", NOT_FOUND), (other, None),
        (root / "lists" / "../a/series/s1", None), (root / "lists" / "../a/series/s2", None),
        (root / "lists" / "batch.csv", NESTED_CSV), (tmp_path / "gone.dcm", NOT_FOUND)]
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.dcm\n")
    assert [c.rejection for c in discover([bad], kind="3d")] == [CSV_WITHOUT_PATH]


def test_discovery_needs_a_known_kind(tmp_path):
    with pytest.raises(ValueError, match=r"kind must be one of \['2d', '3d'\]. Received: '4d'"):
        discover([tmp_path], kind="4d")
