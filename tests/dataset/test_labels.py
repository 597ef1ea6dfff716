from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.dataset.labels import DatasetError, read_labels


def _folder(tmp_path: Path, csv_bytes: bytes, files=("a.dcm", "b.dcm", "m.png")) -> Path:
    for f in files:
        (tmp_path / f).write_bytes(b"x")
    (tmp_path / "labels.csv").write_bytes(csv_bytes)
    return tmp_path


def test_good_and_bad_rows_are_all_accounted_for(tmp_path):
    csv = (
        b"path,label,patient_id,split,mask\n"
        b"a.dcm,normal,p1,,\n"
        b"b.dcm,opacity,p2,test,m.png\n"
        b"missing.dcm,normal,p3,,\n"
        b"a.dcm,normal,p1,,\n"
        b"b.dcm,cancer,p2,,\n"
        b"../etc/passwd,normal,p4,,\n"
        b",normal,p5,,\n"
        b"b.dcm,normal,p2,holdout,\n"
    )
    rows, rejected = read_labels(_folder(tmp_path, csv), labels=("normal", "opacity"))
    assert [(r.path, r.label, r.split, r.mask) for r in rows] == [
        ("a.dcm", "normal", None, None), ("b.dcm", "opacity", "test", "m.png")]
    codes = {r.row: r.code for r in rejected}
    assert codes == {4: "missing_file", 5: "duplicate", 6: "bad_label", 7: "bad_path",
                     8: "bad_row", 9: "bad_row"}
    assert len(rows) + len(rejected) == 8  # every data row is accounted for
    assert all("\n" not in r.reason for r in rejected)
    assert "allowed: ['normal', 'opacity']" in next(r.reason for r in rejected if r.row == 6)


def test_non_utf8_lines_are_quarantined_not_fatal(tmp_path):
    csv = b"path,label\n" + b"a.dcm,normal\n" + b"b\xe9.dcm,normal\n"
    rows, rejected = read_labels(_folder(tmp_path, csv), labels=("normal", "opacity"))
    assert [r.path for r in rows] == ["a.dcm"]
    assert rejected[0].row == 3 and "not valid UTF-8" in rejected[0].reason


def test_bom_and_crlf_are_accepted(tmp_path):
    csv = b"\xef\xbb\xbfpath,label\r\na.dcm,normal\r\n"
    rows, rejected = read_labels(_folder(tmp_path, csv), labels=("normal", "opacity"))
    assert [r.path for r in rows] == ["a.dcm"] and not rejected


@pytest.mark.parametrize(("csv", "message"), [
    (b"file,label\na.dcm,normal\n", "missing required column(s) ['path']"),
    (b"path,label,view,view\na.dcm,normal,PA,AP\n", "column names must be unique"),
])
def test_malformed_csv_header_is_a_clear_dataset_error(tmp_path, csv, message):
    with pytest.raises(DatasetError) as info:
        read_labels(_folder(tmp_path, csv), labels=("normal",))
    assert message in str(info.value)


def test_missing_labels_csv(tmp_path):
    with pytest.raises(DatasetError, match="labels.csv not found"):
        read_labels(tmp_path, labels=("normal",))


def test_multilabel_cells_are_split_validated_and_normalised(tmp_path):
    csv = b"path,label\na.dcm,effusion|opacity\nb.dcm,\nm.png,opacity|tumour\n"
    rows, rejected = read_labels(_folder(tmp_path, csv), labels=("opacity", "effusion"),
                                 multilabel=True)
    assert [(r.path, r.label) for r in rows] == [("a.dcm", "opacity|effusion"), ("b.dcm", "")]
    assert rejected[0].code == "bad_label" and "'tumour'" in rejected[0].reason


def test_extra_columns_are_subgroup_attributes_and_phi_columns_are_never_read(tmp_path):
    csv = (b"path,label,view,Sex,site,PatientName,StudyDate,accession_number,notes,Patient ID\n"
           b"a.dcm,normal,PA,F,north,DOE^JANE,20200101,A123,seen by Dr X,MRN42\n"
           b"b.dcm,normal,AP,," + b"x" * 100 + b",,,,,\n")
    rows, rejected = read_labels(_folder(tmp_path, csv), labels=("normal",))
    assert rows[0].attributes == (("view", "PA"), ("Sex", "F"), ("site", "north"))
    assert dict(rows[1].attributes)["site"] == "x" * 64  # categories, not text: cut at 64
    dropped = [r for r in rejected if r.scope == "column"]
    assert sorted(r.reason.split("'")[1] for r in dropped) == sorted(
        ["PatientName", "StudyDate", "accession_number", "notes", "Patient ID"])
    assert {r.code for r in dropped} == {"phi_column"} and all(r.row is None for r in dropped)
    text = repr(rows) + repr(rejected)
    for value in ("DOE", "20200101", "A123", "Dr X", "MRN42"):
        assert value not in text


@pytest.mark.parametrize("name,phi", [
    ("view", False), ("sex", False), ("age", False), ("site", False), ("finding", False),
    ("opacity", False), ("covid", False), ("No Finding", False), ("AP/PA", False),
    ("Patient ID", True), ("patientid", True), ("PatientName", True), ("birth_date", True),
    ("AcquisitionTime", True), ("MRN", True), ("accession", True), ("study_uid", True),
    ("zip", True), ("email", True), ("referring physician", True), ("report", True),
])
def test_phi_deny_list(name, phi):
    from pipeline.dataset.labels import is_phi_column

    assert is_phi_column(name) is phi
